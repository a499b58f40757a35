// `streamtube cluster-cert`: writes the cluster CA and a client certificate signed by it, for
// curl or monitoring to talk to nodes running with --cluster-tls.
import App
import ArgumentParser
import Foundation

struct ClusterCert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-cert",
        abstract: "Write the cluster CA and a client certificate signed by it (ca.pem, NAME.pem, NAME-key.pem).",
        discussion: """
        For an operator's curl or a monitoring system to reach nodes that run with --cluster-tls: \
        curl --cacert DIR/ca.pem --cert DIR/NAME.pem --key DIR/NAME-key.pem https://HOST:HTTP_PORT/healthz. \
        The cluster key is found as `serve` finds it: --cluster-key, STREAMTUBE_CLUSTER_KEY, the config \
        file, else the data folder's cluster-key file. Whoever holds the cluster key can make these.
        """)

    @Option(help: "Folder to write the files to (made if missing).") var out: String
    @Option(help: "The certificate's name: its common name and the files' names.") var name = "operator"
    @Option(help: "Days the certificate is valid.") var days = 365
    @Option(help: "JSON config file, as for serve.") var config: String?
    @Option(help: "Cluster key(s), base64, comma-separated (default $STREAMTUBE_CLUSTER_KEY, else the data folder's cluster-key).")
    var clusterKey: String?
    @Option(help: "A node's data folder, to read its cluster-key file (default $STREAMTUBE_DATA_DIR or ./data).") var dataDir: String?

    func run() throws {
        var flags: [String] = []
        if let clusterKey { flags += ["--cluster-key", clusterKey] }
        if let dataDir { flags += ["--data-dir", dataDir] }
        let written: (ca: String, certificate: String, key: String)
        do {
            let settings = try NodeConfiguration.load(file: config, environment: ProcessInfo.processInfo.environment, flags: flags)
            written = try ClusterCertificateFiles.write(keyring: ClusterCertificateFiles.keyring(settings), name: name,
                                                        validDays: days, to: out)
        } catch {
            throw ValidationError("\(error)")
        }
        print("""
        wrote \(written.ca) (the cluster CA), \(written.certificate) and \(written.key) (its key, keep it private)
        try: curl --cacert \(written.ca) --cert \(written.certificate) --key \(written.key) https://HOST:HTTP_PORT/healthz
        """)
    }
}
