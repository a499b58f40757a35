import Foundation

/// Any JSON value, for the user endpoints whose shapes differ by provider. Booleans stay
/// booleans (never 0/1), integers stay exact.
enum JSONValue: Decodable, Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case bool(Bool)
    case object([String: JSONValue])
    case array([JSONValue])
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// An id as text: a string as it is, an integer in decimal.
    var identifier: String? {
        switch self {
        case .string(let value) where !value.isEmpty: return value
        case .integer(let value): return String(value)
        default: return nil
        }
    }

    /// `true`, or the string `"true"` that some providers send.
    var isTrue: Bool {
        switch self {
        case .bool(let value): return value
        case .string(let value): return value == "true"
        default: return false
        }
    }
}
