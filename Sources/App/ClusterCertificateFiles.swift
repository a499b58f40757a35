// ClusterCertificateFiles: what `streamtube cluster-cert` writes — the cluster CA and a client
// certificate signed by it, with its key — so an operator's curl or a monitoring system can
// talk to nodes that run with cluster TLS. The cluster key is found as `serve` finds it.
import Cluster
import Foundation
import Gossip

package enum ClusterCertificateFiles {
    package enum FileError: Error, CustomStringConvertible {
        case noClusterKey(dataDir: String)
        case cannotWrite(String, String)

        package var description: String {
            switch self {
            case .noClusterKey(let dataDir):
                return "no cluster key: pass --cluster-key, set STREAMTUBE_CLUSTER_KEY, or point --data-dir at a node's data folder (\(dataDir) has no cluster-key file)"
            case .cannotWrite(let path, let why): return "cannot write \(path): \(why)"
            }
        }
    }

    /// The cluster keyring as `serve` reads it: the setting (flag, environment, config file),
    /// else the `cluster-key` file of the data folder. Never makes one.
    package static func keyring(_ config: NodeConfiguration) throws -> Keyring {
        guard let text = config.clusterKey ?? NodeState.existingClusterKey(dataDir: config.dataDir) else {
            throw FileError.noClusterKey(dataDir: config.dataDir)
        }
        return try NodeConfiguration.decodeKeys(text)
    }

    /// Writes `ca.pem` (the CA of every key of the ring), `NAME.pem` and `NAME-key.pem` (mode
    /// 0600) into `directory`, made if missing; returns the three paths.
    package static func write(keyring: Keyring, name: String, validDays: Int, to directory: String,
                              now: Date = Date()) throws -> (ca: String, certificate: String, key: String) {
        let identity = try ClusterIdentity(clusterKeys: keyring.keys, name: name, hosts: [], client: true, now: now,
                                           validity: TimeInterval(max(1, validDays)) * 86_400)
        let pem = try identity.pem()
        let dir = URL(fileURLWithPath: directory)
        // Nothing written here is readable by others until it is meant to be.
        let oldMask = umask(0o077)
        defer { umask(oldMask) }
        let ca = dir.appendingPathComponent("ca.pem")
        let certificate = dir.appendingPathComponent("\(name).pem")
        let key = dir.appendingPathComponent("\(name)-key.pem")
        for (url, text, mode) in [(ca, pem.authorities, 0o644), (certificate, pem.certificate, 0o644), (key, pem.privateKey, 0o600)] {
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try Data(text.utf8).write(to: url, options: .atomic)
                try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
            } catch {
                throw FileError.cannotWrite(url.path, error.localizedDescription)
            }
        }
        return (ca.path, certificate.path, key.path)
    }
}
