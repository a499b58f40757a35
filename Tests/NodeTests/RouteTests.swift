import Catalog
import Cluster
import Foundation
import HTTPSupport
import Hummingbird
import HummingbirdTesting
import Live
import NIOCore
import Prometheus
import XCTest
@testable import App

/// Every route group of a node, through the router `buildApplication` assembles (the same
/// one `serve` runs), with a real SQLite file and edge store in a temporary folder.
final class RouteTests: XCTestCase {
    static let token = "operator-token-for-tests"
    static let clusterKey = Data(repeating: 7, count: 32).base64EncodedString()

    func makeApp() async throws -> NodeApplication {
        var config = NodeConfiguration()
        config.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("routes-" + UUID().uuidString).path
        config.adminToken = Self.token
        config.clusterKey = Self.clusterKey
        config.nodeID = "n1"
        config.region = "eu"
        config.ladder = "none"
        return try await buildApplication(config)
    }

    /// Runs `body` against the router, then closes what the app opened.
    func withRouter(_ body: @escaping @Sendable (any TestClientProtocol, NodeApplication) async throws -> Void) async throws {
        let app = try await makeApp()
        do {
            try await app.http.test(.router) { client in try await body(client, app) }
        } catch {
            await app.close()
            throw error
        }
        await app.close()
    }

    static var operatorHeaders: HTTPFields { [.authorization: "Bearer \(token)"] }

    static func problem(_ response: TestResponse) throws -> Problem.Document {
        XCTAssertEqual(response.headers[.contentType], Problem.contentType)
        return try JSONDecoder().decode(Problem.Document.self, from: Data(buffer: response.body))
    }

    static func createStream(_ client: any TestClientProtocol, title: String = "Test") async throws -> StreamResponse {
        try await client.execute(uri: "/api/streams", method: .post, headers: operatorHeaders,
                                 body: ByteBuffer(string: #"{"title": "\#(title)"}"#)) { r in
            XCTAssertEqual(r.status, .created)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(StreamResponse.self, from: Data(buffer: r.body))
        }
    }

    // MARK: Operator API

    func testNoOperatorRouteAnswersWithoutTheToken() async throws {
        try await withRouter { client, app in
            let operatorRoutes = app.router.routes.filter { "\($0.path)".hasPrefix("/api") && !"\($0.path)".hasPrefix("/api/route") }
            XCTAssertGreaterThanOrEqual(operatorRoutes.count, 5, "\(app.router.routes)")
            for route in operatorRoutes {
                let uri = "\(route.path)".split(separator: "/").map { $0.hasPrefix(":") || $0.hasPrefix("{") ? "x" : String($0) }
                    .joined(separator: "/")
                for headers: HTTPFields in [[:], [.authorization: "Bearer wrong"], [.authorization: Self.token]] {
                    try await client.execute(uri: "/" + uri, method: route.method, headers: headers, body: ByteBuffer(string: "{}")) { r in
                        XCTAssertEqual(r.status, .unauthorized, "\(route) with \(headers)")
                        XCTAssertEqual(r.headers[.wwwAuthenticate], "Bearer realm=\"streamtube\"")
                        XCTAssertEqual(try Self.problem(r).status, 401)
                    }
                }
            }
        }
    }

    func testStreamsCreateListGetHealth() async throws {
        try await withRouter { client, _ in
            let s = try await Self.createStream(client, title: "Concert")
            XCTAssertEqual(s.title, "Concert")
            XCTAssertEqual(s.rtmpURL, "rtmp://localhost:1935/live/\(s.key)")
            XCTAssertTrue(s.watchURL.hasSuffix("/watch/\(s.id)"))
            try await client.execute(uri: "/api/streams", method: .get, headers: Self.operatorHeaders) { r in
                XCTAssertEqual(r.status, .ok)
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                XCTAssertEqual(try decoder.decode([StreamResponse].self, from: Data(buffer: r.body)).map(\.id), [s.id])
            }
            try await client.execute(uri: "/api/streams/\(s.id)", method: .get, headers: Self.operatorHeaders) { r in
                XCTAssertEqual(r.status, .ok)
            }
            try await client.execute(uri: "/api/streams/\(s.id)/health", method: .get, headers: Self.operatorHeaders) { r in
                XCTAssertEqual(r.status, .ok)
                let health = try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any]
                XCTAssertEqual(health?["state"] as? String, "offline")
            }
            try await client.execute(uri: "/api/streams/nosuchstream", method: .get, headers: Self.operatorHeaders) { r in
                XCTAssertEqual(r.status, .notFound)
                XCTAssertEqual(try Self.problem(r).detail, "no stream nosuchstream")
            }
        }
    }

    func testBadStreamBodiesAreProblems() async throws {
        try await withRouter { client, _ in
            for body in ["not json", #"{"title": ""}"#, #"{"title": "x", "ladder": "720p:abc"}"#, #"{"title": "x", "x264Preset": "warp"}"#] {
                try await client.execute(uri: "/api/streams", method: .post, headers: Self.operatorHeaders, body: ByteBuffer(string: body)) { r in
                    XCTAssertEqual(r.status, .badRequest, body)
                    XCTAssertFalse(try Self.problem(r).detail.isEmpty)
                }
            }
            try await client.execute(uri: "/api/streams", method: .get, headers: Self.operatorHeaders) { r in
                XCTAssertEqual(String(buffer: r.body), "[]", "nothing stored half-made")
            }
        }
    }

    func testClusterAnswerIsTyped() async throws {
        try await withRouter { client, _ in
            try await client.execute(uri: "/api/cluster", method: .get, headers: Self.operatorHeaders) { r in
                XCTAssertEqual(r.status, .ok)
                let cluster = try JSONDecoder().decode(ClusterResponse.self, from: Data(buffer: r.body))
                XCTAssertEqual(cluster.localID, "n1")
            }
        }
    }

    // MARK: Health and metrics

    func testHealthzAndMetricsArePublic() async throws {
        try await withRouter { client, _ in
            try await client.execute(uri: "/healthz", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let h = try JSONDecoder().decode(HealthResponse.self, from: Data(buffer: r.body))
                XCTAssertEqual(h.status, "ok")
                XCTAssertEqual(h.nodeID, "n1")
                XCTAssertEqual(h.region, "eu")
                XCTAssertNotNil(h.media["libavcodec"])
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
            }
        }
    }

    // MARK: Node to node

    func testNodeRoutesNeedATokenForTheirPurpose() async throws {
        try await withRouter { client, _ in
            let s = try await Self.createStream(client)
            let tokens = ClusterTokens(clusterKey: Array(Data(base64Encoded: Self.clusterKey)!))
            let otherCluster = ClusterTokens(clusterKey: Array(repeating: 9, count: 32))
            let records = "/internal/streams?id=\(s.id)"
            for token in [nil, tokens.token(scope: s.id), otherCluster.token(scope: PeerRecords.scope),
                          tokens.token(scope: PeerRecords.scope, now: Date(timeIntervalSinceNow: -1000))] {
                let headers: HTTPFields = token.map { [.streamTubeClusterToken: $0] } ?? [:]
                try await client.execute(uri: records, method: .get, headers: headers) { r in
                    XCTAssertEqual(r.status, .unauthorized, "records with \(token ?? "no token")")
                }
            }
            try await client.execute(uri: records, method: .get, headers: [.streamTubeClusterToken: tokens.token(scope: PeerRecords.scope)]) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(try PeerRecords.decoder.decode(StreamRecord.self, from: Data(buffer: r.body)).key, s.key)
            }
            let replica = Replicator.path + s.id
            for token in [nil, tokens.token(scope: PeerRecords.scope), tokens.token(scope: "otherstream"), otherCluster.token(scope: s.id)] {
                let headers: HTTPFields = token.map { [.streamTubeClusterToken: $0] } ?? [:]
                try await client.execute(uri: replica, method: .post, headers: headers, body: ByteBuffer(bytes: [0, 0, 0, 9, 1])) { r in
                    XCTAssertEqual(r.status, .unauthorized, "replica with \(token ?? "no token")")
                }
            }
            try await client.execute(uri: replica, method: .post, headers: [.streamTubeClusterToken: tokens.token(scope: s.id)],
                                     body: ByteBuffer(bytes: [0, 0, 0, 9, 1])) { r in
                XCTAssertEqual(r.status, .badRequest, "a truncated bundle is refused, not applied")
            }
        }
    }

    // MARK: LL-HLS and viewer routing

    func testLiveRoutesOfOfflineAndUnknownStreams() async throws {
        try await withRouter { client, _ in
            let s = try await Self.createStream(client)
            for (uri, detail) in [("/live/\(s.id)/master.m3u8", "stream \(s.id) is offline"),
                                  ("/live/nosuch/master.m3u8", "no stream nosuch"),
                                  ("/live/bad..id/master.m3u8", "no stream bad..id"),
                                  ("/live/\(s.id)/source/index.m3u8", "stream is offline"),
                                  ("/live/\(s.id)/source/seg1.m4s", "no such segment"),
                                  ("/live/\(s.id)/1080p/index.m3u8", "no such rendition"),
                                  ("/live/\(s.id)/source/seg005.m4s", "no such segment")] {
                try await client.execute(uri: uri, method: .get) { r in
                    XCTAssertEqual(r.status, .notFound, uri)
                    XCTAssertEqual(try Self.problem(r).detail, detail, uri)
                }
            }
            try await client.execute(uri: "/api/route/\(s.id)", method: .get) { r in
                XCTAssertEqual(r.status, .ok, "viewer routing is public")
                let route = try JSONDecoder().decode(RouteAnswer.self, from: Data(buffer: r.body))
                XCTAssertEqual(route.stream, s.id)
                XCTAssertEqual(route.edge, "n1")
                XCTAssertTrue(route.playlistURL.hasSuffix("/live/\(s.id)/master.m3u8"))
            }
            try await client.execute(uri: "/api/route/nosuch", method: .get) { r in
                XCTAssertEqual(r.status, .notFound)
            }
        }
    }

    // MARK: Pages

    func testWatchPage() async throws {
        try await withRouter { client, _ in
            let s = try await Self.createStream(client, title: "A <b>bold</b> show")
            try await client.execute(uri: "/watch/\(s.id)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "text/html; charset=utf-8")
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains("A &lt;b&gt;bold&lt;/b&gt; show"))
                XCTAssertTrue(html.contains(#"data-stream="\#(s.id)""#))
            }
            try await client.execute(uri: "/watch/nosuch", method: .get) { r in
                XCTAssertEqual(r.status, .notFound)
                XCTAssertTrue(String(buffer: r.body).contains("No such stream"))
            }
        }
    }
}
