// CMAF packaging: the typed errors raised when codec configuration from an ingest
// (FLV sequence headers) cannot be understood. Bad input must never crash a node.

/// Why a codec configuration record or parameter set was rejected.
///
/// Each case carries enough context for an operator to see what the broadcaster sent
/// wrong; the session that produced it should be closed, other streams go on.
public enum CMAFParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended before a field could be read (`what` names the field).
    case truncated(what: String)
    /// A field holds a value the specification forbids or we cannot represent.
    case invalidValue(what: String, value: Int)
    /// The input is well formed but uses a feature this packager does not support.
    case unsupported(String)

    public var description: String {
        switch self {
        case .truncated(let what):
            return "codec configuration truncated while reading \(what); the encoder sent an incomplete sequence header"
        case .invalidValue(let what, let value):
            return "codec configuration has invalid \(what) = \(value); check the encoder settings"
        case .unsupported(let what):
            return "unsupported codec configuration: \(what)"
        }
    }
}
