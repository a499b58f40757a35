// AES-GCM keys of the cluster. One primary key seals; every installed key is tried when
// opening, so keys rotate without downtime: install the new key everywhere, make it primary
// everywhere, then remove the old one.
//
// Sealed packet: encryption version (1) · nonce (12) · ciphertext · tag (16), with the
// cluster name as authenticated data.

import Crypto

/// The set of symmetric keys a node accepts, one of which it uses to seal.
public struct Keyring: Sendable {
    public static let encryptionVersion: UInt8 = 1
    public static let nonceSize = 12
    public static let tagSize = 16
    /// Bytes a sealed packet adds to its plaintext.
    public static let overhead = 1 + nonceSize + tagSize

    /// Raw key bytes; index 0 is the primary.
    public private(set) var keys: [[UInt8]]

    public var primaryKey: [UInt8] { keys[0] }

    /// - Parameters:
    ///   - primary: 16, 24 or 32 bytes (AES-128/192/256).
    ///   - secondary: further keys accepted on decrypt.
    public init(primary: [UInt8], secondary: [[UInt8]] = []) throws(GossipError) {
        for k in [primary] + secondary { try Self.validate(k) }
        keys = [primary]
        for k in secondary where !keys.contains(k) { keys.append(k) }
    }

    static func validate(_ key: [UInt8]) throws(GossipError) {
        guard [16, 24, 32].contains(key.count) else { throw .invalidKeyLength(key.count) }
    }

    /// Accepts packets sealed with `key` from now on (no effect if already installed).
    public mutating func install(_ key: [UInt8]) throws(GossipError) {
        try Self.validate(key)
        if !keys.contains(key) { keys.append(key) }
    }

    /// Makes an installed key the primary one (the one that seals).
    public mutating func use(_ key: [UInt8]) throws(GossipError) {
        guard let i = keys.firstIndex(of: key) else { throw .keyNotInstalled }
        keys.swapAt(0, i)
    }

    /// Stops accepting `key`. The primary key cannot be removed.
    public mutating func remove(_ key: [UInt8]) throws(GossipError) {
        guard let i = keys.firstIndex(of: key) else { throw .keyNotInstalled }
        guard i != 0 else { throw .cannotRemovePrimaryKey }
        keys.remove(at: i)
    }

    /// Seals `plaintext` with the primary key and a fresh random nonce.
    public func seal(_ plaintext: [UInt8], authenticating aad: [UInt8]) throws(GossipError) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(plaintext, using: SymmetricKey(data: primaryKey), nonce: AES.GCM.Nonce(), authenticating: aad)
            var out: [UInt8] = []
            out.reserveCapacity(plaintext.count + Self.overhead)
            out.append(Self.encryptionVersion)
            out.append(contentsOf: box.nonce)
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
            return out
        } catch {
            throw .encryptionFailed("\(error)")
        }
    }

    /// Opens a sealed packet, trying every installed key (primary first).
    public func open(_ packet: [UInt8], authenticating aad: [UInt8]) throws(GossipError) -> [UInt8] {
        guard packet.count >= Self.overhead else { throw .packetTooShort(length: packet.count) }
        guard packet[0] == Self.encryptionVersion else { throw .unsupportedEncryptionVersion(packet[0]) }
        let nonceBytes = packet[1..<(1 + Self.nonceSize)]
        let ciphertext = packet[(1 + Self.nonceSize)..<(packet.count - Self.tagSize)]
        let tag = packet[(packet.count - Self.tagSize)...]
        guard let nonce = try? AES.GCM.Nonce(data: nonceBytes),
            let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag)
        else { throw .authenticationFailed }
        for key in keys {
            if let plain = try? AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: aad) {
                return Array(plain)
            }
        }
        throw .authenticationFailed
    }

    /// A fresh random key of `bitCount` bits (128, 192 or 256), for operators and tests.
    public static func generateKey(bitCount: Int = 256) -> [UInt8] {
        let size: SymmetricKeySize = bitCount == 128 ? .bits128 : bitCount == 192 ? .bits192 : .bits256
        return SymmetricKey(size: size).withUnsafeBytes { Array($0) }
    }
}
