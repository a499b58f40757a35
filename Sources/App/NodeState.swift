// NodeState: what a node keeps in its data folder across starts — its id, the operator
// token, the cluster key — and where its database and cache live.
import Catalog
import Foundation
import Gossip

package struct NodeState: Sendable {
    package var nodeID: String
    package var adminToken: String
    /// The token was made by this start (and is printed once).
    package var tokenIsNew: Bool
    package var tokenFile: String
    package var databasePath: String
    package var cacheDir: String
    package var dataDir: URL

    package enum StateError: Error, CustomStringConvertible {
        case cannotCreate(String, String)
        case cannotWrite(String, String)
        package var description: String {
            switch self {
            case .cannotCreate(let dir, let why): return "cannot create the data folder \(dir): \(why)"
            case .cannotWrite(let file, let why): return "cannot write \(file): \(why)"
            }
        }
    }

    package static func prepare(dataDir: String, nodeID: String?, adminToken: String?) throws -> NodeState {
        let base = URL(fileURLWithPath: dataDir)
        let cache = base.appendingPathComponent("cache")
        // What the node writes from here on (database, cache, state files) is its own alone:
        // created 0600 / 0700, with no window in which another user could open it.
        umask(0o077)
        do {
            try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
            // A folder made before (or by hand) is closed to others too.
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: base.path)
        } catch {
            throw StateError.cannotCreate(dataDir, error.localizedDescription)
        }
        let id = try nodeID ?? readOrMake(base, "node-id") { "node-" + StreamIdentifiers.randomID(length: 8) }.value
        var token = adminToken ?? ""
        var isNew = false
        if adminToken == nil {
            (token, isNew) = try readOrMake(base, "admin-token") { StreamIdentifiers.randomSecret(bytes: 32) }
        }
        return NodeState(nodeID: id, adminToken: token, tokenIsNew: isNew, tokenFile: base.appendingPathComponent("admin-token").path,
                         databasePath: base.appendingPathComponent("streamtube.sqlite").path, cacheDir: cache.path, dataDir: base)
    }

    /// The cluster key kept in the data folder, made on first use (a single node needs none
    /// given; every node of a cluster must be started with the same --cluster-key).
    package func clusterKey() throws -> String {
        try Self.readOrMake(dataDir, "cluster-key") { Self.makeClusterKey() }.value
    }

    /// The cluster key a node made in `dataDir` before, if there is one (nothing is made here).
    package static func existingClusterKey(dataDir: String) -> String? {
        let url = URL(fileURLWithPath: dataDir).appendingPathComponent("cluster-key")
        guard let s = try? String(contentsOf: url, encoding: .utf8) else { return nil }
        let v = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return v.isEmpty ? nil : v
    }

    /// A new random cluster key: 32 bytes, base64.
    package static func makeClusterKey() -> String { Data(Keyring.generateKey(bitCount: 256)).base64EncodedString() }

    /// A one-line file of the data folder: read, or made now (mode 0600).
    private static func readOrMake(_ base: URL, _ name: String, make: () -> String) throws -> (value: String, made: Bool) {
        let url = base.appendingPathComponent(name)
        if let s = try? String(contentsOf: url, encoding: .utf8) {
            let v = s.trimmingCharacters(in: .whitespacesAndNewlines)
            if !v.isEmpty { return (v, false) }
        }
        let v = make()
        do {
            try Data((v + "\n").utf8).write(to: url, options: .atomic)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
        } catch {
            throw StateError.cannotWrite(url.path, error.localizedDescription)
        }
        return (v, true)
    }
}
