// Typed errors of the codec and the keyring. Every rejection of an incoming packet maps to
// one `DropReason`, so the stats can count why packets were dropped.

/// Why a packet or key operation was refused.
public enum GossipError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Shorter than version byte + nonce + tag.
    case packetTooShort(length: Int)
    /// The encryption version byte is not one this build speaks.
    case unsupportedEncryptionVersion(UInt8)
    /// No key in the keyring authenticates the packet: wrong key, another cluster's name,
    /// or tampering.
    case authenticationFailed
    /// The plaintext format version is unknown.
    case unsupportedWireVersion(UInt8)
    /// The message ended before a field was complete.
    case truncated(context: String)
    case unknownMessageType(UInt8)
    /// A field was present but not acceptable (bad UTF-8, NaN coordinate, bad status...).
    case invalidField(String)
    /// Bytes were left after the last declared message.
    case trailingBytes(count: Int)
    /// The packet would exceed the size limit (datagram budget, or a message count > 255).
    case packetTooLarge(size: Int, limit: Int)
    /// Keys must be 16, 24 or 32 bytes.
    case invalidKeyLength(Int)
    /// The primary key cannot be removed; make another key primary first.
    case cannotRemovePrimaryKey
    case keyNotInstalled
    /// Sealing failed inside the crypto library.
    case encryptionFailed(String)

    public var description: String {
        switch self {
        case .packetTooShort(let n): "packet of \(n) bytes is too short to be a sealed gossip packet"
        case .unsupportedEncryptionVersion(let v): "unsupported encryption version \(v); upgrade this node"
        case .authenticationFailed:
            "packet not authenticated by any installed key: the sender uses another key or cluster name, or the packet was altered"
        case .unsupportedWireVersion(let v): "unsupported wire format version \(v); upgrade this node"
        case .truncated(let c): "message truncated while reading \(c)"
        case .unknownMessageType(let t): "unknown message type \(t)"
        case .invalidField(let f): "invalid field: \(f)"
        case .trailingBytes(let n): "\(n) unexpected bytes after the last message"
        case .packetTooLarge(let size, let limit): "packet of \(size) bytes exceeds the limit of \(limit)"
        case .invalidKeyLength(let n): "key of \(n) bytes; AES keys must be 16, 24 or 32 bytes"
        case .cannotRemovePrimaryKey: "cannot remove the primary key; install and use another key first"
        case .keyNotInstalled: "the key is not installed in the keyring"
        case .encryptionFailed(let m): "encryption failed: \(m)"
        }
    }

    /// The stats bucket for an incoming packet rejected with this error.
    public var dropReason: DropReason {
        switch self {
        case .packetTooShort: .tooShort
        case .unsupportedEncryptionVersion, .unsupportedWireVersion: .unsupportedVersion
        case .authenticationFailed: .authenticationFailed
        case .truncated, .unknownMessageType, .invalidField, .trailingBytes: .malformed
        case .packetTooLarge: .tooLarge
        case .invalidKeyLength, .cannotRemovePrimaryKey, .keyNotInstalled, .encryptionFailed: .other
        }
    }
}

/// Buckets of dropped incoming packets.
public enum DropReason: String, Hashable, Sendable, CaseIterable {
    case tooShort = "too_short"
    case unsupportedVersion = "unsupported_version"
    case authenticationFailed = "authentication_failed"
    case malformed
    case tooLarge = "too_large"
    case other
}
