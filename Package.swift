// swift-tools-version:6.0
// StreamTube: one node binary (`streamtube`) and the libraries it is made of.
import PackageDescription

let package = Package(
    name: "StreamTube",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "streamtube", targets: ["Node"]),
        .executable(name: "transcode-bench", targets: ["TranscodeBench"]),
        .executable(name: "streamtube-sim", targets: ["Simulator"]),
        .library(name: "Origin", targets: ["Origin"]),
        .library(name: "Gossip", targets: ["Gossip"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        // 3.x or 4.x: JWTKit 5 needs 4.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
    ],
    targets: [
        // FFmpeg 5.1 libraries from Debian, found with pkg-config.
        .systemLibrary(
            name: "CFFmpeg",
            path: "Sources/CFFmpeg",
            pkgConfig: "libavformat",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev", "libswresample-dev"])]
        ),
        // RocksDB from Debian (edge cache store), found with pkg-config.
        .systemLibrary(
            name: "CRocksDB",
            path: "Sources/CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev", "liblz4-dev"])]
        ),
        .target(
            name: "Origin",
            path: "Sources/Origin",
            exclude: ["README.md"]
        ),
        // The ladder and non-AAC audio with FFmpeg, behind Origin's transcoder protocols.
        .target(
            name: "Transcode",
            dependencies: ["Origin", "CFFmpeg"],
            path: "Sources/Transcode",
            exclude: ["README.md"]
        ),
        .target(
            name: "Edge",
            dependencies: ["CRocksDB", .product(name: "NIOCore", package: "swift-nio")],
            path: "Sources/Edge",
            exclude: ["README.md"]
        ),
        .target(
            name: "Gossip",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            path: "Sources/Gossip",
            exclude: ["README.md"]
        ),
        // Shared by every node feature: metric names, declared once.
        .target(
            name: "NodeMetrics",
            dependencies: [.product(name: "Metrics", package: "swift-metrics")],
            path: "Sources/NodeMetrics",
            exclude: ["README.md"]
        ),
        // HTTP types every route collection shares: the request context (who is calling), one
        // error format (problem+json), the operator-token middleware, header names, responses.
        // Knows nothing of streams, media or the cluster.
        .target(
            name: "HTTPSupport",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/HTTPSupport",
            exclude: ["README.md"]
        ),
        // Stream records and accounts, the database (SQLite or PostgreSQL, queries written once
        // with SQLKit) and its numbered migrations, and the policies the platform implements.
        // No HTTP, no media, no cluster.
        .target(
            name: "Catalog",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/Catalog",
            exclude: ["README.md"]
        ),
        // The gossip service around the Gossip core, the cluster view, placement and viewer
        // routing, cluster-key tokens and records asked of peers, TLS between nodes.
        .target(
            name: "Cluster",
            dependencies: [
                "Gossip", "Catalog", "HTTPSupport", "NodeMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
            ],
            path: "Sources/Cluster",
            exclude: ["README.md"]
        ),
        // The media path on a node: RTMP server and ingest policy, relay, replication, the
        // edge proxy and its fast path, LL-HLS routes.
        .target(
            name: "Live",
            dependencies: [
                "Origin", "Edge", "Cluster", "Catalog", "HTTPSupport", "NodeMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Sources/Live",
            exclude: ["README.md"]
        ),
        // Platform features: one target each, depending only on Catalog and HTTPSupport (and NodeMetrics, for their metrics).
        .target(
            name: "Schedule",
            dependencies: ["Catalog", "Accounts", .product(name: "SQLKit", package: "sql-kit"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Sources/Platform/Schedule",
            exclude: ["README.md"]
        ),
        .target(
            name: "Payments",
            dependencies: ["Catalog", "HTTPSupport", "NodeMetrics", .product(name: "SQLKit", package: "sql-kit"), .product(name: "Logging", package: "swift-log"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Sources/Platform/Payments",
            exclude: ["README.md"]
        ),
        .target(
            name: "Accounts",
            dependencies: ["Catalog", "HTTPSupport", "OIDC", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                           .product(name: "SQLKit", package: "sql-kit"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Sources/Platform/Accounts",
            exclude: ["README.md"]
        ),
        .target(
            name: "Analytics",
            dependencies: ["Catalog", "HTTPSupport", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "NIOCore", package: "swift-nio")],
            path: "Sources/Platform/Analytics",
            exclude: ["README.md"]
        ),
        .target(
            name: "Web",
            dependencies: ["Catalog", "HTTPSupport", "Accounts", "OIDC", "Payments", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "Mustache", package: "swift-mustache")],
            path: "Sources/Platform/Web",
            exclude: ["README.md"],
            // The pages' scripts, stylesheet and templates, kept in the repository, built into the binary.
            resources: [.embedInCode("Assets/player.js"), .embedInCode("Assets/site.css"), .embedInCode("Assets/site.js"), .embedInCode("Assets/watch.js"),
                        .embedInCode("Templates/analytics.mustache"), .embedInCode("Templates/page.mustache"), .embedInCode("Templates/home.mustache"),
                        .embedInCode("Templates/signup.mustache"), .embedInCode("Templates/signin.mustache"),
                        .embedInCode("Templates/providers.mustache"), .embedInCode("Templates/message.mustache"),
                        .embedInCode("Templates/reset_request.mustache"), .embedInCode("Templates/reset_form.mustache"),
                        .embedInCode("Templates/settings.mustache"), .embedInCode("Templates/studio.mustache"),
                        .embedInCode("Templates/link.mustache"), .embedInCode("Templates/upcoming.mustache"),
                        .embedInCode("Templates/schedule.mustache"), .embedInCode("Templates/channel.mustache"), .embedInCode("Templates/picture.mustache"),
                        .embedInCode("Templates/recordings.mustache"), .embedInCode("Templates/recording.mustache"),
                        .embedInCode("Templates/invitations.mustache"), .embedInCode("Templates/join.mustache"),
                        .embedInCode("Templates/cohosts.mustache"),
                        .embedInCode("Templates/paywall.mustache"), .embedInCode("Templates/pay_test.mustache"),
                        .embedInCode("Templates/price.mustache"), .embedInCode("Templates/earnings.mustache"),
                        .embedInCode("Templates/purchases.mustache"), .embedInCode("Templates/subscription.mustache"),
                        .embedInCode("Templates/receipt.mustache")]
        ),
        // Live chat: one room per stream held by the stream's owner node, WebSocket clients on any
        // node (relayed to the room's node with the cluster key), moderation, and the kept messages.
        .target(
            name: "Chat",
            dependencies: ["Catalog", "HTTPSupport", "Cluster", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                           .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                           .product(name: "SQLKit", package: "sql-kit"),
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl")],
            path: "Sources/Platform/Chat",
            exclude: ["README.md"],
            // The panel's script, kept in the repository, built into the binary.
            resources: [.embedInCode("Assets/chat.js")]
        ),
        // The platform's mail: messages (RFC 5322, RFC 2047, quoted-printable), an SMTP client
        // (STARTTLS, TLS, AUTH) and the outbox folder used when no SMTP server is configured.
        // Knows nothing of accounts.
        .target(
            name: "Mail",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/Platform/Mail",
            exclude: ["README.md"]
        ),
        // Sign-in with OpenID Connect and OAuth 2.0 providers: discovery, the authorization
        // request (state, nonce, PKCE), the code exchange and ID token verification. The protocol
        // only: no accounts, sessions, cookies or database.
        .target(
            name: "OIDC",
            dependencies: [
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/Platform/OIDC",
            exclude: ["README.md"]
        ),
        // Configuration (each setting declared once), node state files, and the one function
        // that assembles a node: `buildApplication(config)`, used by `serve` and by tests.
        .target(
            name: "App",
            dependencies: [
                "Origin", "Transcode", "Gossip", "Edge", "NodeMetrics", "HTTPSupport", "Catalog", "Cluster", "Live", "Web", "Accounts",
                "Mail", "OIDC", "Schedule", "Payments", "Analytics", "Chat", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/App",
            exclude: ["README.md"],
            // The public API's OpenAPI document, kept in the repository.
            resources: [.embedInCode("openapi.json")]
        ),
        // The `streamtube` executable: commands only.
        .executableTarget(
            name: "Node",
            dependencies: [
                "App", "Accounts", "Gossip", "Transcode", "Payments",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Node",
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "TranscodeBench",
            dependencies: ["Origin", "Transcode", "CFFmpeg"],
            path: "Sources/TranscodeBench"
        ),
        // The deterministic cluster simulator: the real Gossip code under a virtual clock and network.
        .target(
            name: "SimulationKit",
            dependencies: ["Gossip"],
            path: "Simulations/Sources/SimulationKit",
            // One thread runs a simulation; the runtime checks of exclusive access to the
            // engine's state (millions of accesses a second) cost a tenth of a release run.
            // Debug builds (the tests) keep them.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "Simulator",
            dependencies: [
                "SimulationKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Simulations/Sources/Simulator"
        ),
        .testTarget(
            name: "SimulationTests",
            dependencies: ["SimulationKit"],
            path: "Simulations/Tests/SimulationTests"
        ),
        // Real test media (ffmpeg from lavfi sources) and an FLV reader, for the media test targets.
        .target(name: "MediaTestSupport", path: "Tests/MediaTestSupport"),
        .testTarget(name: "OriginTests", dependencies: ["Origin", "MediaTestSupport"], path: "Tests/OriginTests"),
        .testTarget(name: "TranscodeTests", dependencies: ["Transcode", "Origin", "MediaTestSupport"], path: "Tests/TranscodeTests"),
        .testTarget(name: "GossipTests", dependencies: ["Gossip"], path: "Tests/GossipTests"),
        .testTarget(name: "EdgeTests", dependencies: ["Edge"], path: "Tests/EdgeTests"),
        .testTarget(
            name: "OIDCTests",
            dependencies: [
                "OIDC",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/OIDCTests"
        ),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "App", "Live", "Cluster", "Catalog", "HTTPSupport", "Mail", "Accounts", "Web", "Schedule", "Payments", "Analytics", "Chat",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            path: "Tests/NodeTests"
        ),
    ]
)
