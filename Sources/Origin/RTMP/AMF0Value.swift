/// One key/value pair of an AMF0 object or ECMA array. Order is kept, so values compare
/// exactly as they were on the wire.
public struct AMF0Property: Equatable, Sendable {
    public var key: String
    public var value: AMF0Value

    public init(_ key: String, _ value: AMF0Value) {
        self.key = key
        self.value = value
    }
}

/// An AMF0 value (Adobe AMF0 specification, section 2).
///
/// Not `indirect`: nesting goes through arrays, which are already references, so a scalar
/// (a boolean, a null) is stored inline instead of in a heap box of its own. That box made a
/// decoded strict array of booleans cost ~20 times its wire size.
public enum AMF0Value: Equatable, Sendable {
    case number(Double)
    case boolean(Bool)
    /// A UTF-8 string. Encoded as a long string (marker 0x0C) when longer than 65535 bytes.
    case string(String)
    case object([AMF0Property])
    case null
    case undefined
    /// A reference to an earlier complex value (index into the reference table).
    case reference(UInt16)
    /// An associative array; the count on the wire is only a hint and is not kept.
    case ecmaArray([AMF0Property])
    case strictArray([AMF0Value])
    /// Milliseconds since the Unix epoch, with the (reserved, normally 0) time zone field.
    case date(Double, timeZone: Int16)
    /// A string that was sent with the long-string marker (0x0C).
    case longString(String)
    case unsupported
    case xmlDocument(String)
    case typedObject(className: String, properties: [AMF0Property])
}

extension AMF0Value {
    /// The string payload of `.string` or `.longString`.
    public var stringValue: String? {
        switch self {
        case .string(let s), .longString(let s): return s
        default: return nil
        }
    }

    /// The number payload of `.number`.
    public var numberValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// The properties of an object, typed object or ECMA array.
    public var properties: [AMF0Property]? {
        switch self {
        case .object(let p), .ecmaArray(let p), .typedObject(_, let p): return p
        default: return nil
        }
    }

    /// The value of the last property named `key` in an object, typed object or ECMA array.
    public subscript(key: String) -> AMF0Value? {
        properties?.last(where: { $0.key == key })?.value
    }
}
