import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The HTTP this library does: GETs and form POSTs to a provider, every answer's body read up
/// to `maxBodyBytes` before anything decodes it, every request under `timeout`.
struct ProviderHTTP: Sendable {
    let client: HTTPClient
    let maxBodyBytes: Int
    let timeout: TimeAmount

    struct Answer: Sendable {
        var status: UInt
        var body: Data
        var isSuccess: Bool { (200..<300).contains(status) }
    }

    /// What a failed request is reported as (discovery, token, user endpoint, keys).
    enum Purpose: Sendable {
        case discovery, keys, token, userInfo
    }

    func get(_ url: URL, bearer: String? = nil, purpose: Purpose) async throws(OIDCError) -> Answer {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        return try await execute(request, url: url, purpose: purpose)
    }

    func postForm(_ url: URL, form: [(String, String)], basic: (user: String, password: String)?,
                  purpose: Purpose) async throws(OIDCError) -> Answer {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        if let basic {
            // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
            let credentials = FormEncoding.encode(basic.user) + ":" + FormEncoding.encode(basic.password)
            request.headers.add(name: "Authorization", value: "Basic \(Data(credentials.utf8).base64EncodedString())")
        }
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        return try await execute(request, url: url, purpose: purpose)
    }

    private func execute(_ request: HTTPClientRequest, url: URL, purpose: Purpose) async throws(OIDCError) -> Answer {
        // The URL's host only: a query can hold nothing secret here, but the habit is cheap.
        let target = "\(url.scheme ?? "?")://\(url.host ?? "?")\(url.port.map { ":\($0)" } ?? "")\(url.path)"
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw purpose == .discovery
                ? .discoveryFailed("\(target) could not be reached (\(Self.describe(error)))")
                : .unreachable("\(target): \(Self.describe(error))")
        }
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw .invalidResponse("the answer from \(target) is larger than \(maxBodyBytes) bytes")
        } catch {
            throw .unreachable("\(target): reading the answer failed (\(Self.describe(error)))")
        }
        return Answer(status: UInt(response.status.code), body: Data(body.readableBytesView))
    }

    private static func describe(_ error: any Error) -> String {
        OIDCError.excerpt(String(describing: error))
    }
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5): only unreserved characters stay as they
/// are, so `+`, `&`, `=` and spaces in values cannot change the form's meaning.
enum FormEncoding {
    private static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    static func encode(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if unreserved.contains(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
    }
}
