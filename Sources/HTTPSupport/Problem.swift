// One error format for every route: `application/problem+json` (RFC 9457), with a detail a
// person can act on.
import Foundation
import Hummingbird
import NIOCore

/// An error a route throws (or returns) to answer with a problem document.
package struct Problem: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    package var status: HTTPResponse.Status
    /// What went wrong and what to do about it.
    package var detail: String
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    package var headers: HTTPFields

    package init(_ status: HTTPResponse.Status, _ detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.detail = detail
        self.headers = headers
    }

    package var description: String { "\(status.code) \(detail)" }

    package static func notFound(_ detail: String) -> Problem { Problem(.notFound, detail) }
    package static func badRequest(_ detail: String) -> Problem { Problem(.badRequest, detail) }

    /// The document: `type`, `title`, `status`, `detail`.
    package struct Document: Codable, Equatable, Sendable {
        package var type: String
        package var title: String
        package var status: Int
        package var detail: String
    }

    package var document: Document {
        Document(type: "about:blank", title: status.reasonPhrase, status: Int(status.code), detail: detail)
    }

    package static let contentType = "application/problem+json"

    package var response: Response {
        var fields = headers
        fields[.contentType] = Self.contentType
        fields[.cacheControl] = "no-cache"
        fields[.accessControlAllowOrigin] = "*"
        let data = (try? JSONEncoder.sorted.encode(document)) ?? Data()
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response { response }
}

extension JSONEncoder {
    /// Keys sorted, so answers are stable.
    package static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }
}

/// Turns whatever a route throws into a problem document: `Problem` as it is, Hummingbird's
/// `HTTPError` (a body too large, a bad parameter) with its status and message, anything
/// else a 500 whose detail says nothing of the internals.
package struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    package init() {}

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return problem.response
        } catch let error as HTTPError {
            let detail = error.body ?? (error.status == .notFound ? "nothing at \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return Problem(error.status, detail, headers: error.headers).response
        } catch let error as any HTTPResponseError {
            return Problem(error.status, error.status.reasonPhrase).response
        } catch {
            context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return Problem(.internalServerError, "the node could not answer this request; see its log").response
        }
    }
}
