import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import XCTest
@testable import OIDC

/// The whole flow against oidc-provider-mock, the provider the integration tests use, started by
/// `Tests/integration/oidc.py`. Skipped, with the reason, when its Python environment
/// (`.venv-test`, from `ops/install-deps --test`) is not there; `OIDC_MOCK_PYTHON` names another.
final class OIDCMockProviderTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private func python() throws -> String {
        let candidates = [ProcessInfo.processInfo.environment["OIDC_MOCK_PYTHON"],
                          Self.root.appendingPathComponent(".venv-test/bin/python").path].compactMap { $0 }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: candidate)
            probe.arguments = ["-c", "import oidc_provider_mock, pytest"]
            probe.standardError = FileHandle.nullDevice
            try probe.run()
            probe.waitUntilExit()
            if probe.terminationStatus == 0 { return candidate }
        }
        throw XCTSkip("oidc-provider-mock is not installed (looked in \(candidates.joined(separator: ", "))); run ops/install-deps --test, or set OIDC_MOCK_PYTHON")
    }

    /// Starts the mock; returns the process and its issuer.
    private func startMock() throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try python())
        // It stops when its standard input closes: at the end of the test, or if this process dies.
        process.arguments = [Self.root.appendingPathComponent("Tests/integration/oidc.py").path, "--until-stdin-closes"]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while !text.contains("\n"), Date() < deadline, process.isRunning {
            text += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        }
        guard let issuer = text.split(separator: "\n").first.map(String.init), issuer.hasPrefix("http://127.0.0.1:") else {
            Self.stop(process)
            throw OIDCError.discoveryFailed("oidc-provider-mock did not start (printed \(text))")
        }
        return (process, issuer)
    }

    /// The browser's side: no redirects followed, since the callback's Location is what we want.
    /// Made per test (XCTest makes instances it never runs, and a client must be shut down).
    private var browser: HTTPClient!

    override func setUp() async throws {
        browser = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
    }

    override func tearDown() async throws {
        try await browser?.shutdown()
        browser = nil
    }

    /// Closes its standard input (it stops itself and the mock), then waits up to 10 s for it.
    private static func stop(_ process: Process) {
        try? (process.standardInput as? Pipe)?.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(50_000) }
        if process.isRunning { process.terminate() }
    }

    private func send(_ method: HTTPMethod, _ url: String, form: String? = nil, json: String? = nil) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await browser.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return response
    }

    func testSignInAgainstOIDCProviderMock() async throws {
        let (process, issuer) = try startMock()
        defer { Self.stop(process) }

        // A user with an email the provider vouches for.
        let put = try await send(.PUT, issuer + "/users/ada-1",
                                 json: #"{"email": "ada@example.test", "email_verified": true, "name": "Ada Lovelace"}"#)
        XCTAssertEqual(put.status.code, 204)

        let redirect = "http://127.0.0.1:8080/auth/oidc/callback"
        let client = try OIDCClient(configuration: .generic(issuer: URL(string: issuer)!, clientID: "streamtube",
                                                            secret: "any-secret", name: "Mock"),
                                    httpClient: .shared)
        let attempt = try await client.begin(redirectURI: redirect)

        // The page the browser would show, then its form: `sub`, and the "Authorize" button.
        let page = try await send(.GET, attempt.url.absoluteString)
        XCTAssertEqual(page.status.code, 200)
        let answer = try await send(.POST, attempt.url.absoluteString, form: "sub=ada-1")
        XCTAssertEqual(answer.status.code, 302)
        let location = try XCTUnwrap(answer.headers.first(name: "Location"))
        XCTAssert(location.hasPrefix(redirect + "?"), location)
        var query: [String: String] = [:]
        for item in URLComponents(string: location)?.queryItems ?? [] { query[item.name] = item.value }

        let identity = try await client.finish(callbackQuery: query, pending: attempt, redirectURI: redirect)
        XCTAssertEqual(identity, ExternalIdentity(provider: "oidc", subject: "ada-1", email: "ada@example.test",
                                                  emailVerified: true, name: "Ada Lovelace"))

        // The same code again: the provider refuses it.
        do throws(OIDCError) {
            _ = try await client.finish(callbackQuery: query, pending: attempt, redirectURI: redirect)
            XCTFail("a replayed code was accepted")
        } catch {
            guard case .tokenExchangeFailed(400, _) = error else { return XCTFail("\(error)") }
        }

        // "Deny": the provider's refusal comes through.
        let second = try await client.begin(redirectURI: redirect)
        let denied = try await send(.POST, second.url.absoluteString, form: "action=deny")
        var deniedQuery: [String: String] = [:]
        for item in URLComponents(string: denied.headers.first(name: "Location") ?? "")?.queryItems ?? [] {
            deniedQuery[item.name] = item.value
        }
        do throws(OIDCError) {
            _ = try await client.finish(callbackQuery: deniedQuery, pending: second, redirectURI: redirect)
            XCTFail("a denied sign-in was accepted")
        } catch {
            guard case .providerRefused("access_denied", _) = error else { return XCTFail("\(error)") }
        }
    }
}
