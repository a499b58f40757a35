import Catalog
import Cluster
import Foundation
import Gossip
import HTTPSupport
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import Live
import NIOCore
import Origin
import Prometheus
import Web
import XCTest
@testable import App

/// Every route group of a node, through the router `buildApplication` assembles (the same
/// one `serve` runs), with a real SQLite file and edge store in a temporary folder.
final class RouteTests: XCTestCase {
    static let token = "operator-token-for-tests"
    static let clusterKey = Data(repeating: 7, count: 32).base64EncodedString()

    /// A node as the route tests see it (no ladder, a fixed operator token and cluster key, a new data folder).
    static func makeApp(publicURL: String? = nil) async throws -> NodeApplication {
        var config = NodeConfiguration()
        config.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("routes-" + UUID().uuidString).path
        config.adminToken = Self.token
        config.clusterKey = Self.clusterKey
        config.nodeID = "n1"
        config.region = "eu"
        config.ladder = "none"
        // A recording ends with its stream here (no reconnect grace): tests look at it at once.
        config.recordingReconnectGrace = 0
        config.publicURL = publicURL
        return try await buildApplication(config)
    }

    func makeApp() async throws -> NodeApplication { try await Self.makeApp() }

    /// Runs `body` against the router, then closes what the app opened.
    func withRouter(_ body: @escaping @Sendable (any TestClientProtocol, NodeApplication) async throws -> Void) async throws {
        try await Self.withRouter(publicURL: nil, body)
    }

    /// Runs `body` against the router of an app with `publicURL`, then closes what the app opened.
    static func withRouter(publicURL: String?, _ body: @escaping @Sendable (any TestClientProtocol, NodeApplication) async throws -> Void) async throws {
        let app = try await makeApp(publicURL: publicURL)
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

    func testAStreamMayKeepItsSourceRendition() async throws {
        try await withRouter { client, _ in
            try await client.execute(uri: "/api/streams", method: .post, headers: Self.operatorHeaders,
                                     body: ByteBuffer(string: #"{"title": "Kept", "keepSource": true}"#)) { r in
                XCTAssertEqual(r.status, .created)
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                XCTAssertEqual(try decoder.decode(StreamResponse.self, from: Data(buffer: r.body)).keepSource, true)
            }
            let plain = try await Self.createStream(client)
            XCTAssertNil(plain.keepSource, "not kept unless asked")
        }
    }

    func testNoOperatorRouteAnswersWithoutTheToken() async throws {
        try await withRouter { client, app in
            func uri(_ route: Router<NodeRequestContext>.RouteDescription) -> String {
                "/" + "\(route.path)".split(separator: "/").map { $0.hasPrefix(":") || $0.hasPrefix("{") ? "x" : String($0) }
                    .joined(separator: "/")
            }
            let api = app.router.routes.filter { "\($0.path)".hasPrefix("/api") && !"\($0.path)".hasPrefix("/api/route") }
            // The platform's public API (/api/v1) is for accounts, not the operator: see below.
            let operatorRoutes = api.filter { !"\($0.path)".hasPrefix("/api/v1") }
            XCTAssertGreaterThanOrEqual(operatorRoutes.count, 5, "\(app.router.routes)")
            for route in operatorRoutes {
                for headers: HTTPFields in [[:], [.authorization: "Bearer wrong"], [.authorization: Self.token]] {
                    try await client.execute(uri: uri(route), method: route.method, headers: headers, body: ByteBuffer(string: "{}")) { r in
                        XCTAssertEqual(r.status, .unauthorized, "\(route) with \(headers)")
                        XCTAssertEqual(r.headers[.wwwAuthenticate], "Bearer realm=\"streamtube\"")
                        XCTAssertEqual(try Self.problem(r).status, 401)
                    }
                }
            }
            // /api/v1: a session or a personal API token, never the operator token; every route but
            // the document and the sign-in for a token answers 401 without one.
            let open: Set<String> = ["/api/v1/openapi.json", "/api/v1/auth/token"]
            let accountRoutes = api.filter { "\($0.path)".hasPrefix("/api/v1") && !open.contains("\($0.path)") }
            XCTAssertGreaterThanOrEqual(accountRoutes.count, 10, "\(app.router.routes)")
            XCTAssertEqual(Set(api.map { "\($0.path)" }).intersection(open), open, "the open ones are there")
            for route in accountRoutes {
                for headers: HTTPFields in [[:], [.authorization: "Bearer wrong"], [.authorization: "Bearer \(Self.token)"],
                                            [.authorization: Self.token], [.cookie: "st_session=\(String(repeating: "a", count: 43))"],
                                            [.authorization: "Bearer stp_\(String(repeating: "a", count: 43))"]] {
                    let withCookie = headers[.cookie] != nil && !["GET", "HEAD"].contains(route.method.rawValue)
                    try await client.execute(uri: uri(route), method: route.method, headers: headers, body: ByteBuffer(string: "{}")) { r in
                        // A change sent with a cookie must carry the anti-forgery token first.
                        XCTAssertEqual(r.status, withCookie ? .forbidden : .unauthorized, "\(route) with \(headers)")
                        XCTAssertEqual(try Self.problem(r).status, withCookie ? 403 : 401)
                    }
                }
            }
        }
    }

    func testStreamsCreateListGetHealth() async throws {
        try await withRouter { client, _ in
            let s = try await Self.createStream(client, title: "Concert")
            XCTAssertEqual(s.title, "Concert")
            XCTAssertEqual(s.rtmpURL, "rtmp://localhost:1935/live/\(s.key!)")
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

    func testAStreamIsRenamed() async throws {
        try await withRouter { client, app in
            let s = try await Self.createStream(client, title: "Draft")
            XCTAssertNil(s.owner, "made with the operator token: no owner")
            try await client.execute(uri: "/api/streams/\(s.id)", method: .patch, headers: Self.operatorHeaders,
                                     body: ByteBuffer(string: #"{"title": " Final "}"#)) { r in
                XCTAssertEqual(r.status, .ok)
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                let renamed = try decoder.decode(StreamResponse.self, from: Data(buffer: r.body))
                XCTAssertEqual(renamed.title, "Final")
                XCTAssertEqual(renamed.id, s.id)
                XCTAssertEqual(renamed.key, s.key)
            }
            let stored = try await app.streams.catalog.store.record(id: s.id)
            XCTAssertEqual(stored?.title, "Final", "in the database")
            try await client.execute(uri: "/api/streams/\(s.id)", method: .patch, body: ByteBuffer(string: #"{"title": "X"}"#)) { r in
                XCTAssertEqual(r.status, .unauthorized)
            }
            try await client.execute(uri: "/api/streams/nosuchstream", method: .patch, headers: Self.operatorHeaders,
                                     body: ByteBuffer(string: #"{"title": "X"}"#)) { r in
                XCTAssertEqual(r.status, .notFound)
                XCTAssertEqual(try Self.problem(r).detail, "no stream nosuchstream")
            }
            for body in ["not json", #"{"title": ""}"#, #"{"name": "X"}"#, #"{"title": "\#(String(repeating: "x", count: 201))"}"#] {
                try await client.execute(uri: "/api/streams/\(s.id)", method: .patch, headers: Self.operatorHeaders,
                                         body: ByteBuffer(string: body)) { r in
                    XCTAssertEqual(r.status, .badRequest, body)
                    XCTAssertFalse(try Self.problem(r).detail.isEmpty)
                }
            }
            XCTAssertEqual(app.streams.catalog.record(id: s.id)?.title, "Final", "a refused rename changes nothing")
        }
    }

    func testABadDatabaseSettingIsSaidBeforeAnythingStarts() async throws {
        var config = NodeConfiguration()
        config.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("routes-" + UUID().uuidString).path
        config.database = "postgres://streamtube:hunter2@db.example/"
        do {
            _ = try await buildApplication(config)
            XCTFail("a URL without a database")
        } catch let error as ConfigurationError {
            XCTAssertTrue(error.description.contains("no database name"), error.description)
            XCTAssertFalse(error.description.contains("hunter2"), error.description)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.dataDir), "nothing made yet")
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

    func testTheDatabaseAndCacheAreTheNodesAlone() async throws {
        let app = try await makeApp()
        defer { Task { await app.close() } }
        let mode = { (path: String) in (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue }
        XCTAssertEqual(try mode(app.state.databasePath), 0o600)
        XCTAssertEqual(try mode(app.state.cacheDir), 0o700)
        XCTAssertEqual(try mode(app.state.dataDir.path), 0o700)
        for file in ["admin-token", "cluster-key", "node-id"] where FileManager.default.fileExists(atPath: app.state.dataDir.appendingPathComponent(file).path) {
            XCTAssertEqual(try mode(app.state.dataDir.appendingPathComponent(file).path), 0o600, file)
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

    func testAnUnknownRouteIsAProblemToo() async throws {
        try await withRouter { client, _ in
            try await client.execute(uri: "/no/such/place", method: .get) { r in
                XCTAssertEqual(r.status, .notFound)
                XCTAssertEqual(try Self.problem(r).detail, "nothing at GET /no/such/place")
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

    static func member(_ id: String, capacity: UInt32, status: MemberStatus = .alive) -> Member {
        let address = Endpoint(host: "127.0.0.1", port: 1)
        return Member(metadata: MemberMetadata(id: NodeID(id), gossipAddress: address, httpAddress: address, rtmpAddress: address,
                                               capacity: capacity),
                      incarnation: 1, status: status, statusChangedAt: GossipInstant(nanoseconds: 0))
    }

    /// This node (n1) takes no streams; n2 owns them all; n3 is another member.
    static func cluster(_ app: NodeApplication, n2: MemberStatus = .alive) {
        let members = [member("n1", capacity: 0), member("n2", capacity: 1, status: n2), member("n3", capacity: 0)]
        app.gossip.view.update { v in
            v.members = members
            v.ring = HashRing(members: members)
        }
    }

    static var clusterKeys: [[UInt8]] { [Array(Data(base64Encoded: clusterKey)!)] }

    func testRecordsNeedATokenMadeForTheRequestAndNeverTellTheKey() async throws {
        try await withRouter { client, _ in
            let s = try await Self.createStream(client)
            let n2 = ClusterTokens(clusterKeys: Self.clusterKeys, localID: "n2")
            let otherCluster = ClusterTokens(clusterKeys: [Array(repeating: 9, count: 32)], localID: "n2")
            let target = "/internal/streams?id=\(s.id)"
            let right = ClusterRequest(.records, "GET", target)
            for token in [nil, "garbage",
                          otherCluster.token(for: right, scope: PeerRecords.scope),
                          n2.token(for: ClusterRequest(.replica, "GET", target), scope: PeerRecords.scope),
                          n2.token(for: ClusterRequest(.records, "GET", "/internal/streams?id=other"), scope: PeerRecords.scope),
                          n2.token(for: right, scope: PeerRecords.scope, now: Date(timeIntervalSinceNow: -60))] {
                let headers: HTTPFields = token.map { [.streamTubeClusterToken: $0] } ?? [:]
                try await client.execute(uri: target, method: .get, headers: headers) { r in
                    XCTAssertEqual(r.status, .unauthorized, "records with \(token ?? "no token")")
                }
            }
            let token = n2.token(for: right, scope: PeerRecords.scope)
            try await client.execute(uri: target, method: .get, headers: [.streamTubeClusterToken: token]) { r in
                XCTAssertEqual(r.status, .ok)
                let body = String(buffer: r.body)
                XCTAssertFalse(body.contains(s.key ?? "?"), "the key never leaves the node")
                let peer = try PeerRecords.decoder.decode(PeerRecord.self, from: Data(buffer: r.body))
                XCTAssertNil(peer.record(for: .id(s.id))?.key)
                XCTAssertEqual(peer.record(for: .key(s.key!))?.key, s.key, "a node shown the key can check it")
                XCTAssertNil(peer.record(for: .key("wrongkey")))
            }
            try await client.execute(uri: target, method: .get, headers: [.streamTubeClusterToken: token]) { r in
                XCTAssertEqual(r.status, .unauthorized, "a token is good once")
                XCTAssertEqual(try Self.problem(r).detail, "cluster token already used")
            }
        }
    }

    func testReplicaOnlyFromTheOriginWithItsOwnToken() async throws {
        try await withRouter { client, app in
            let s = try await Self.createStream(client)
            Self.cluster(app)
            let target = Replicator.path + s.id
            let body: [UInt8] = [0, 0, 0, 9, 1]  // a truncated bundle: refused as malformed once authorized
            let n2 = ClusterTokens(clusterKeys: Self.clusterKeys, localID: "n2")
            let n3 = ClusterTokens(clusterKeys: Self.clusterKeys, localID: "n3")
            let replica = ClusterRequest(.replica, "POST", target)
            let cases: [(String?, HTTPResponse.Status, String)] = [
                (nil, .unauthorized, "no token"),
                (n2.token(for: .relay, scope: s.id), .unauthorized, "a relay key"),
                (n2.token(for: ClusterRequest(.records, "POST", target), scope: s.id, body: body), .unauthorized, "a records token"),
                (n2.token(for: replica, scope: "otherstream", body: body), .unauthorized, "another stream"),
                (n2.token(for: replica, scope: s.id, body: [1, 2, 3]), .unauthorized, "another body"),
                (n3.token(for: replica, scope: s.id, body: body), .forbidden, "not the origin"),
                (n2.token(for: replica, scope: s.id, body: body), .badRequest, "the origin"),
            ]
            for (token, status, what) in cases {
                let headers: HTTPFields = token.map { [.streamTubeClusterToken: $0] } ?? [:]
                try await client.execute(uri: target, method: .post, headers: headers, body: ByteBuffer(bytes: body)) { r in
                    XCTAssertEqual(r.status, status, what)
                }
            }
            // The origin's last batches after it left (a handover) are taken.
            Self.cluster(app, n2: .left)
            try await client.execute(uri: target, method: .post, headers: [.streamTubeClusterToken: n2.token(for: replica, scope: s.id, body: body)],
                                     body: ByteBuffer(bytes: body)) { r in
                XCTAssertEqual(r.status, .badRequest, "a node that left may send its last batches")
            }
            // A captured token is no good a second time.
            let once = n2.token(for: replica, scope: s.id, body: body)
            Self.cluster(app)
            for expected: HTTPResponse.Status in [.badRequest, .unauthorized] {
                try await client.execute(uri: target, method: .post, headers: [.streamTubeClusterToken: once], body: ByteBuffer(bytes: body)) { r in
                    XCTAssertEqual(r.status, expected)
                }
            }
        }
    }

    func testRelayKeysAreGoodOnceAndOnlyForRelaying() async throws {
        let tokens = ClusterTokens(clusterKeys: Self.clusterKeys, localID: "n2")
        let verifier = ClusterTokens(clusterKeys: Self.clusterKeys, localID: "n1")
        let key = tokens.token(for: .relay, scope: "stream1")
        XCTAssertThrowsError(try verifier.verify(key, for: ClusterRequest(.replica, "POST", "/internal/replica/stream1")))
        XCTAssertEqual(try verifier.verify(key, for: .relay).scope, "stream1")
        XCTAssertThrowsError(try verifier.verify(key, for: .relay)) { XCTAssertEqual($0 as? ClusterTokenError, .replayed) }
        // Rotation: a token signed with the old primary still verifies on a node that has both keys.
        let rotated = ClusterTokens(clusterKeys: [Array(repeating: 3, count: 32)] + Self.clusterKeys, localID: "n1")
        XCTAssertEqual(try rotated.verify(tokens.token(for: .relay, scope: "s"), for: .relay).from, "n2")
        // Tampered: any field changed breaks the signature.
        var parts = tokens.token(for: .relay, scope: "stream1").split(separator: ".").map(String.init)
        parts[3] = "stream2"
        XCTAssertThrowsError(try verifier.verify(parts.joined(separator: "."), for: .relay)) {
            XCTAssertEqual($0 as? ClusterTokenError, .badSignature)
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
                                  ("/live/\(s.id)/source/seg1-0a1b2c3d.m4s", "no such segment"),
                                  ("/live/\(s.id)/source/seg1.m4s", "no such file"),
                                  ("/live/\(s.id)/1080p/index.m3u8", "no such rendition"),
                                  ("/live/\(s.id)/source/seg005.m4s", "no such file"),
                                  ("/live/\(s.id)/source/seg+5.m4s", "no such file"),
                                  ("/live/\(s.id)/source/part1.01.m4s", "no such file"),
                                  ("/live/\(s.id)/source/init0-0a1b2c3d.mp4", "no such init segment")] {
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

    func testMediaNamesAreCanonical() {
        let e = StreamEpoch(0x0a1b_2c3d)
        XCTAssertEqual(MediaName("index.m3u8"), .playlist)
        XCTAssertEqual(MediaName("seg0-0a1b2c3d.m4s"), .segment(0, e))
        XCTAssertEqual(MediaName("seg12-0a1b2c3d.m4s"), .segment(12, e))
        XCTAssertEqual(MediaName("part12.3-0a1b2c3d.m4s"), .part(12, 3, e))
        XCTAssertEqual(MediaName("init1-0a1b2c3d.mp4"), .initSegment(1, e))
        // Each object has one name: canonical numbers, an epoch of 8 lowercase hex digits.
        let bad = ["seg005-0a1b2c3d.m4s", "seg+5-0a1b2c3d.m4s", "seg-1-0a1b2c3d.m4s", "seg-0a1b2c3d.m4s", "seg1.m4s-0a1b2c3d.m4s",
                   "part1-0a1b2c3d.m4s", "part1.2.3-0a1b2c3d.m4s", "part01.2-0a1b2c3d.m4s", "part1.02-0a1b2c3d.m4s",
                   "seg1234567890-0a1b2c3d.m4s", "init-0a1b2c3d.mp4", "seg1-0a1b2c3d.mp4", "init1-0a1b2c3d.m4s", "index.m3u",
                   "seg１-0a1b2c3d.m4s", "init01-0a1b2c3d.mp4",
                   // the epoch: missing, short, long, upper case, not hex, a sign
                   "seg1.m4s", "part1.2.m4s", "init0.mp4", "seg1-.m4s", "seg1-0a1b2c3.m4s", "seg1-0a1b2c3d0.m4s",
                   "seg1-0A1B2C3D.m4s", "seg1-0a1b2c3g.m4s", "seg1-+a1b2c3d.m4s", "seg1--0a1b2c3.m4s", "seg1-0a1b2c3d-0a1b2c3d.m4s"]
        for name in bad { XCTAssertNil(MediaName(name), name) }
        XCTAssertNil(MediaObjectRequest(target: "/live/s1/source/seg005-0a1b2c3d.m4s"), "the fast path leaves other spellings to the router")
        // The fast path's byte-level check agrees with the parser on every name.
        let good = ["index.m3u8", "seg0-0a1b2c3d.m4s", "seg12-0a1b2c3d.m4s", "part12.3-0a1b2c3d.m4s", "init1-0a1b2c3d.mp4",
                    "seg123456789-ffffffff.m4s", "part0.0-00000000.m4s"]
        for name in good + bad + ["", "seg", "seg1-", "part1.2-0a1b2c3d"] {
            XCTAssertEqual(MediaName.isImmutableObject(Substring(name).utf8), MediaName(name)?.isImmutable == true, name)
        }
        XCTAssertEqual(MediaObjectRequest(target: "/live/s1/source/seg5-0a1b2c3d.m4s?token=abc")?.token, "abc")
        XCTAssertNil(MediaObjectRequest(target: "/live/s1/source/seg5-0a1b2c3d.m4s?x=1"))
        // Only a token, alone: anything else in the query goes to the router.
        let withToken = MediaObjectRequest(target: "/live/s1/source/seg5-0a1b2c3d.m4s?token=AQ_-9z")
        XCTAssertEqual(withToken?.path, "/live/s1/source/seg5-0a1b2c3d.m4s")
        XCTAssertEqual(withToken?.streamID, "s1")
        XCTAssertEqual(withToken?.token, "AQ_-9z")
        XCTAssertEqual(MediaObjectRequest(target: "/live/s1/source/seg5-0a1b2c3d.m4s?token=")?.token, "")
        for query in ["token=a&x=1", "x=1&token=a", "tokens=a", "Token=a", "token", "", "tokén=a", "token=a&"] {
            XCTAssertNil(MediaObjectRequest(target: "/live/s1/source/seg5-0a1b2c3d.m4s?" + query), query)
        }
        XCTAssertEqual(MediaObjectRequest(target: "/live/s1/source/seg5-0a1b2c3d.m4s?token=é")?.token, "é", "a bad token is the policy's to refuse")
    }

    func testPlaylistRequestReadsTheLLHLSQuery() throws {
        func asked(_ query: String) throws -> PlaylistRequest { try PlaylistRequest(URI("/live/s1/source/index.m3u8?" + query).queryParameters) }
        XCTAssertNil(try asked("").target)
        XCTAssertEqual(try asked("_HLS_msn=12").target, .segment(sequence: 12))
        XCTAssertEqual(try asked("_HLS_msn=12&_HLS_part=3&token=abc").target, .part(sequence: 12, index: 3))
        XCTAssertEqual(try asked("_HLS_skip=YES").skip, true)
        XCTAssertEqual(try asked("_HLS_skip=v2&_HLS_msn=0").skip, true)
        XCTAssertEqual(try asked("_HLS_skip=NO").skip, false)
        for bad in ["_HLS_msn=x", "_HLS_msn=", "_HLS_msn=1&_HLS_part=1.5", "_HLS_part=2", "_HLS_msn=-1", "_HLS_msn=3&_HLS_part=-1",
                    "_HLS_msn=99999999999999999999"] {
            XCTAssertThrowsError(try asked(bad), bad) { XCTAssertEqual(($0 as? Problem)?.status, .badRequest, bad) }
        }
    }

    // MARK: Pages

    func testHomePage() async throws {
        try await withRouter { client, _ in
            _ = try await Self.createStream(client, title: "Not <live> yet")
            try await client.execute(uri: "/", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "text/html; charset=utf-8")
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains("<h1>Live now</h1>"), html)
                XCTAssertTrue(html.contains("Nothing is live right now."), "a stream that is not live is not listed")
                XCTAssertFalse(html.contains("Not <live> yet") || html.contains("Not &lt;live&gt; yet"))
                XCTAssertTrue(html.contains("<html lang=\"en\">"), "the layout template wraps the page")
            }
        }
    }

    func testTheHomeTemplateListsAndEscapes() throws {
        let html = try Pages().render(["streams": [["id": "s1", "title": "A <b>bold</b> & live show"]], "anyLive": true] as [String: Any],
                                      "home")
        XCTAssertTrue(html.contains(#"<a href="/watch/s1">A &lt;b&gt;bold&lt;/b&gt; &amp; live show</a>"#), html)
        XCTAssertFalse(html.contains("Nothing is live"))
    }

    func testWatchPage() async throws {
        try await withRouter { client, _ in
            let s = try await Self.createStream(client, title: "A <b>bold</b> show")
            try await client.execute(uri: "/watch/\(s.id)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "text/html; charset=utf-8")
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains("A &lt;b&gt;bold&lt;/b&gt; show"))
                XCTAssertTrue(html.contains(#"data-stream="\#(s.id)""#))
                XCTAssertTrue(html.contains("import { Player } from '/assets/player.js?v=\(WatchPage.playerVersion)'"))
                XCTAssertTrue(html.contains("import { attach } from '\(WatchPage.pagePath)'"))
                for remote in ["src=\"http", "from 'http", "url(http", "stylesheet\" href=\"http"] {
                    XCTAssertFalse(html.contains(remote), "nothing is loaded from another site")
                }
                // Absolute links are for sharing (the canonical URL, oEmbed, the share bar), none loads anything.
                for tag in html.components(separatedBy: "<").filter({ $0.contains("href=\"http") }) {
                    XCTAssertTrue(tag.hasPrefix("a ") || tag.hasPrefix("link rel=\"canonical\"") || tag.hasPrefix("link rel=\"alternate\""), tag)
                }
            }
            // The script the page names: the repository's file, cached for good under its version.
            try await client.execute(uri: "/assets/player.js?v=\(WatchPage.playerVersion)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "text/javascript; charset=utf-8")
                XCTAssertEqual(r.headers[.cacheControl], "public, max-age=31536000, immutable")
                XCTAssertEqual(Array(buffer: r.body), WatchPage.playerScript)
                XCTAssertTrue(String(buffer: r.body).contains("export class Player"))
            }
            try await client.execute(uri: "/assets/player.js", method: .get) { r in
                XCTAssertEqual(r.headers[.cacheControl], "no-cache", "an unversioned URL is checked again")
            }
            try await client.execute(uri: "/watch/nosuch", method: .get) { r in
                XCTAssertEqual(r.status, .notFound)
                XCTAssertTrue(String(buffer: r.body).contains("No such stream"))
            }
        }
    }
}
