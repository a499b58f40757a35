import Foundation
import XCTest
@testable import Node
@testable import App
import HTTPSupport
import Hummingbird
import Web

final class NodeConfigurationTests: XCTestCase {
    func testEnvironmentNames() {
        XCTAssertEqual(NodeConfiguration.environmentName("httpPort"), "STREAMTUBE_HTTP_PORT")
        XCTAssertEqual(NodeConfiguration.environmentName("nodeID"), "STREAMTUBE_NODE_ID")
        XCTAssertEqual(NodeConfiguration.environmentName("dataDir"), "STREAMTUBE_DATA_DIR")
        XCTAssertEqual(NodeConfiguration.environmentName("region"), "STREAMTUBE_REGION")
        XCTAssertEqual(NodeConfiguration.environmentName("cacheMemoryMB"), "STREAMTUBE_CACHE_MEMORY_MB")
        XCTAssertEqual(NodeConfiguration.environmentName("x264Preset"), "STREAMTUBE_X264_PRESET")
    }

    func testDefaults() throws {
        let c = try NodeConfiguration.load(file: nil, environment: [:])
        XCTAssertEqual(c.httpPort, 8080)
        XCTAssertEqual(c.rtmpPort, 1935)
        XCTAssertEqual(c.dataDir, "./data")
        XCTAssertNil(c.adminToken)
    }

    func testFileThenEnvironmentThenFlags() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("node.json")
        try Data(#"{"httpPort": 9000, "rtmpPort": 2935, "region": "eu-west", "nodeID": "n1"}"#.utf8).write(to: file)
        let c = try NodeConfiguration.load(file: file.path, environment: ["STREAMTUBE_RTMP_PORT": "3935", "STREAMTUBE_NODE_ID": "n2"])
        XCTAssertEqual(c.httpPort, 9000)
        XCTAssertEqual(c.rtmpPort, 3935)
        XCTAssertEqual(c.region, "eu-west")
        XCTAssertEqual(c.nodeID, "n2")

        let serve = try Serve.parse(["--config", file.path, "--rtmp-port", "4935"])
        let merged = try serve.resolvedConfiguration(environment: ["STREAMTUBE_RTMP_PORT": "3935", "STREAMTUBE_REGION": "us"])
        XCTAssertEqual(merged.rtmpPort, 4935)
        XCTAssertEqual(merged.region, "us")
        XCTAssertEqual(merged.httpPort, 9000)
    }

    func testBadValuesAreClearErrors() throws {
        XCTAssertThrowsError(try NodeConfiguration.load(file: nil, environment: ["STREAMTUBE_HTTP_PORT": "eighty"])) { e in
            XCTAssertTrue("\(e)".contains("STREAMTUBE_HTTP_PORT"))
        }
        XCTAssertThrowsError(try NodeConfiguration.load(file: nil, environment: ["STREAMTUBE_HTTP_PORT": "70000"]))
        XCTAssertThrowsError(try NodeConfiguration.load(file: "/nonexistent/streamtube.json", environment: [:])) { e in
            XCTAssertTrue("\(e)".contains("cannot read config file"))
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString + ".json")
        try Data(#"{"htpPort": 1}"#.utf8).write(to: file)
        XCTAssertThrowsError(try NodeConfiguration.load(file: file.path, environment: [:])) { e in
            XCTAssertTrue("\(e)".contains("unknown setting \"htpPort\""))
        }
    }

    func testThePlatformFeeIsAPercentageAndTheTestGatewayASwitch() throws {
        func fee(_ text: String) throws -> Int {
            try NodeConfiguration.load(file: nil, environment: [:], flags: ["--platform-fee", text]).platformFeeBasisPoints()
        }
        XCTAssertEqual(try NodeConfiguration.load(file: nil, environment: [:]).platformFeeBasisPoints(), 0)
        XCTAssertEqual(try fee("10"), 1000)
        XCTAssertEqual(try fee("2.5"), 250)
        XCTAssertEqual(try fee("0.25"), 25)
        XCTAssertEqual(try fee("50"), 5000)
        for bad in ["51", "-1", "2.555", "ten", "", "1e1", "2."] {
            XCTAssertThrowsError(try fee(bad), bad) { e in XCTAssertTrue("\(e)".contains("--platform-fee"), "\(e)") }
        }
        func gateways(_ flags: [String]) throws -> [String] {
            try NodeConfiguration.load(file: nil, environment: [:], flags: flags).paymentGateways().map(\.name)
        }
        XCTAssertEqual(try gateways([]), ["test"], "the embedded default")
        XCTAssertEqual(try gateways(["--test-payments", "off"]), [])
        let stripe = ["--stripe-secret-key", "sk_test_1", "--stripe-webhook-secret", "whsec_1"]
        XCTAssertEqual(try gateways(stripe), ["stripe"], "auto: off once a provider is configured")
        XCTAssertEqual(try gateways(stripe + ["--test-payments", "on"]), ["test", "stripe"])
        XCTAssertThrowsError(try gateways(["--stripe-secret-key", "sk_test_1"])) { e in
            XCTAssertTrue("\(e)".contains("--stripe-webhook-secret"), "\(e)")
        }
        XCTAssertThrowsError(try gateways(["--test-payments", "maybe"]))
    }

    func testClusterTLSIsASwitch() throws {
        XCTAssertFalse(try NodeConfiguration.load(file: nil, environment: [:]).clusterTLS)
        XCTAssertTrue(try NodeConfiguration.load(file: nil, environment: [:], flags: ["--cluster-tls", "--http-port", "9"]).clusterTLS)
        XCTAssertTrue(try NodeConfiguration.load(file: nil, environment: [:], flags: ["--http-port", "9", "--cluster-tls"]).clusterTLS)
        XCTAssertFalse(try NodeConfiguration.load(file: nil, environment: ["STREAMTUBE_CLUSTER_TLS": "true"],
                                                  flags: ["--cluster-tls", "false"]).clusterTLS)
        XCTAssertFalse(try NodeConfiguration.load(file: nil, environment: [:], flags: ["--cluster-tls=off"]).clusterTLS)
        XCTAssertTrue(try NodeConfiguration.load(file: nil, environment: ["STREAMTUBE_CLUSTER_TLS": "1"]).clusterTLS)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString + ".json")
        try Data(#"{"clusterTLS": true}"#.utf8).write(to: file)
        XCTAssertTrue(try NodeConfiguration.load(file: file.path, environment: [:]).clusterTLS)
        XCTAssertThrowsError(try NodeConfiguration.load(file: nil, environment: ["STREAMTUBE_CLUSTER_TLS": "maybe"])) { e in
            XCTAssertTrue("\(e)".contains("STREAMTUBE_CLUSTER_TLS") && "\(e)".contains("true or false"), "\(e)")
        }
        XCTAssertTrue(NodeConfiguration.helpText.contains("--cluster-tls[=true|false]"))
    }

    func testClusterCertWritesTheCAAndAClientCertificateFromTheNodesKey() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        var config = NodeConfiguration()
        config.dataDir = dir
        XCTAssertThrowsError(try ClusterCertificateFiles.keyring(config)) { e in XCTAssertTrue("\(e)".contains("no cluster key"), "\(e)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/cluster-key"), "cluster-cert makes no key")
        let key = try NodeState.prepare(dataDir: dir, nodeID: "n1", adminToken: "t").clusterKey()
        let keyring = try ClusterCertificateFiles.keyring(config)
        XCTAssertEqual(keyring.keys, try NodeConfiguration.decodeKeys(key).keys)
        let out = dir + "/certs"
        let written = try ClusterCertificateFiles.write(keyring: keyring, name: "monitor", validDays: 30, to: out)
        XCTAssertEqual(written.key, out + "/monitor-key.pem")
        for (path, mode) in [(written.ca, 0o644), (written.certificate, 0o644), (written.key, 0o600)] {
            let attrs = try FileManager.default.attributesOfItem(atPath: path)
            XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, mode, path)
        }
        XCTAssertTrue(try String(contentsOfFile: written.key, encoding: .utf8).hasPrefix("-----BEGIN PRIVATE KEY-----"))
        XCTAssertTrue(try String(contentsOfFile: written.ca, encoding: .utf8).hasPrefix("-----BEGIN CERTIFICATE-----"))
        XCTAssertThrowsError(try ClusterCertificateFiles.write(keyring: keyring, name: "../x", validDays: 30, to: out))
    }

    func testConstantTimeCompare() {
        XCTAssertTrue(OperatorAuthMiddleware(token: "abc").accepts("abc"))
        XCTAssertFalse(OperatorAuthMiddleware(token: "abc").accepts("abd"))
        XCTAssertFalse(OperatorAuthMiddleware(token: "abc").accepts("abcd"))
    }

    func testNodeStateKeepsIdAndTokenAcrossStarts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        let first = try NodeState.prepare(dataDir: dir, nodeID: nil, adminToken: nil)
        XCTAssertTrue(first.tokenIsNew)
        XCTAssertEqual(first.adminToken.count, 64)
        let second = try NodeState.prepare(dataDir: dir, nodeID: nil, adminToken: nil)
        XCTAssertFalse(second.tokenIsNew)
        XCTAssertEqual(first.adminToken, second.adminToken)
        XCTAssertEqual(first.nodeID, second.nodeID)
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/admin-token")
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let folder = try FileManager.default.attributesOfItem(atPath: dir)
        XCTAssertEqual((folder[.posixPermissions] as? NSNumber)?.intValue, 0o700, "the data folder is the node's alone")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/cache"))
    }

    func testWatchPageEscapesTheTitle() {
        let html = WatchPage.render(id: "abc", title: "<script>alert(1)</script> & \"x\"")
        XCTAssertFalse(html.contains("<script>alert(1)"))
        XCTAssertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"))
    }
}
