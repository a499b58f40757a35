// ClusterKeySealer: secrets kept at rest (stream keys) sealed with AES-GCM under a key derived
// from the cluster keyring, so every node of the cluster (and only they) can open them. The
// first key seals; every key of the ring opens (rotation).
import Catalog
import Crypto
import Foundation

package struct ClusterKeySealer: SecretSealer {
    private let keys: [[UInt8]]

    package init(clusterKeys: [[UInt8]]) {
        keys = clusterKeys.map { key in
            Array(HMAC<SHA256>.authenticationCode(for: Array("streamtube secrets at rest v1".utf8), using: SymmetricKey(data: key)))
        }
    }

    package func seal(_ plaintext: String) throws -> String {
        let box = try AES.GCM.seal(Array(plaintext.utf8), using: SymmetricKey(data: keys[0]))
        guard let combined = box.combined else { throw CryptoKitError.incorrectParameterSize }
        return "v1:" + combined.base64EncodedString()
    }

    package func open(_ sealed: String) -> String? {
        guard sealed.hasPrefix("v1:"), let data = Data(base64Encoded: String(sealed.dropFirst(3))),
              let box = try? AES.GCM.SealedBox(combined: data) else { return nil }
        for key in keys {
            if let plain = try? AES.GCM.open(box, using: SymmetricKey(data: key)) { return String(decoding: plain, as: UTF8.self) }
        }
        return nil
    }
}
