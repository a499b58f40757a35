/// AMF0 encoding and decoding of whole value sequences, as used by RTMP command (type 20)
/// and data (type 18) messages.
///
/// Decoding never trusts a length or count from the wire: every read is bounds-checked,
/// counts are checked against the bytes left, nesting is limited by `maxDepth`, and the
/// memory the decoded values take is charged against a budget in bytes (by default
/// ``decodedByteBudget(forInputCount:)``, a small multiple of the input), so one decode
/// can never cost more than a small multiple of what it read. Array growth may add up to
/// as much again while a container is being filled.
public enum AMF0 {
    enum Marker: UInt8 {
        case number = 0x00, boolean = 0x01, string = 0x02, object = 0x03, movieClip = 0x04
        case null = 0x05, undefined = 0x06, reference = 0x07, ecmaArray = 0x08, objectEnd = 0x09
        case strictArray = 0x0A, date = 0x0B, longString = 0x0C, unsupported = 0x0D
        case recordSet = 0x0E, xmlDocument = 0x0F, typedObject = 0x10, avmPlusObject = 0x11
    }

    /// Encodes `values` one after the other.
    public static func encode(_ values: [AMF0Value]) -> [UInt8] {
        var out: [UInt8] = []
        for value in values { encode(value, into: &out) }
        return out
    }

    /// Encodes one value, appending to `out`.
    public static func encode(_ value: AMF0Value, into out: inout [UInt8]) {
        switch value {
        case .number(let n):
            out.append(Marker.number.rawValue)
            appendDouble(n, to: &out)
        case .boolean(let b):
            out.append(Marker.boolean.rawValue)
            out.append(b ? 1 : 0)
        case .string(let s):
            let utf8 = Array(s.utf8)
            if utf8.count > 0xFFFF {
                out.append(Marker.longString.rawValue)
                appendUInt32(UInt32(utf8.count), to: &out)
            } else {
                out.append(Marker.string.rawValue)
                appendUInt16(UInt16(utf8.count), to: &out)
            }
            out.append(contentsOf: utf8)
        case .longString(let s):
            out.append(Marker.longString.rawValue)
            appendLongUTF8(s, to: &out)
        case .object(let props):
            out.append(Marker.object.rawValue)
            appendProperties(props, to: &out)
        case .null:
            out.append(Marker.null.rawValue)
        case .undefined:
            out.append(Marker.undefined.rawValue)
        case .reference(let index):
            out.append(Marker.reference.rawValue)
            appendUInt16(index, to: &out)
        case .ecmaArray(let props):
            out.append(Marker.ecmaArray.rawValue)
            appendUInt32(UInt32(truncatingIfNeeded: props.count), to: &out)
            appendProperties(props, to: &out)
        case .strictArray(let items):
            out.append(Marker.strictArray.rawValue)
            appendUInt32(UInt32(truncatingIfNeeded: items.count), to: &out)
            for item in items { encode(item, into: &out) }
        case .date(let ms, let tz):
            out.append(Marker.date.rawValue)
            appendDouble(ms, to: &out)
            appendUInt16(UInt16(bitPattern: tz), to: &out)
        case .unsupported:
            out.append(Marker.unsupported.rawValue)
        case .xmlDocument(let s):
            out.append(Marker.xmlDocument.rawValue)
            appendLongUTF8(s, to: &out)
        case .typedObject(let className, let props):
            out.append(Marker.typedObject.rawValue)
            appendShortUTF8(className, to: &out)
            appendProperties(props, to: &out)
        }
    }

    /// Bytes of decoded values allowed per input byte by the default budget.
    public static let decodedBytesPerInputByte = 8
    /// Bytes of decoded values every decode may use whatever its input size, so that small
    /// messages (a `connect` of a few hundred bytes is a few KB decoded) always fit.
    public static let decodedBytesAllowance = 16 * 1024

    /// The default memory budget of a decode: 8 bytes per input byte plus 16 KiB. Real
    /// commands and metadata take 2-5 times their wire size (strings, numbers, objects);
    /// only long runs of one- and two-byte values (nulls, booleans) need more.
    public static func decodedByteBudget(forInputCount count: Int) -> Int {
        decodedBytesAllowance + decodedBytesPerInputByte * count
    }

    /// Decodes every value in `bytes`. Throws ``RTMPError/malformedAMF(_:)`` on truncated or
    /// garbled input, unknown markers, AMF3 switches, or nesting deeper than `maxDepth`, and
    /// ``RTMPError/amfTooLarge(inputBytes:budget:)`` when the values would take more than
    /// `maxDecodedBytes` (default: ``decodedByteBudget(forInputCount:)``).
    public static func decode(_ bytes: [UInt8], maxDepth: Int = 16, maxDecodedBytes: Int? = nil) throws(RTMPError) -> [AMF0Value] {
        try decode(bytes[...], maxDepth: maxDepth, maxDecodedBytes: maxDecodedBytes)
    }

    /// Decodes every value in a slice (avoids a copy when skipping a leading byte).
    public static func decode(_ bytes: ArraySlice<UInt8>, maxDepth: Int = 16, maxDecodedBytes: Int? = nil) throws(RTMPError) -> [AMF0Value] {
        let budget = maxDecodedBytes ?? decodedByteBudget(forInputCount: bytes.count)
        var reader = Reader(bytes: bytes, maxDepth: maxDepth, budget: budget)
        var values: [AMF0Value] = []
        while !reader.isAtEnd {
            values.append(try reader.value(depth: 0))
        }
        return values
    }

    // MARK: - Encoding helpers

    private static func appendProperties(_ props: [AMF0Property], to out: inout [UInt8]) {
        for prop in props {
            appendShortUTF8(prop.key, to: &out)
            encode(prop.value, into: &out)
        }
        out.append(contentsOf: [0x00, 0x00, Marker.objectEnd.rawValue])
    }

    /// Keys and class names have a 16-bit length; longer ones are cut at 65535 bytes.
    private static func appendShortUTF8(_ s: String, to out: inout [UInt8]) {
        let utf8 = Array(s.utf8.prefix(0xFFFF))
        appendUInt16(UInt16(utf8.count), to: &out)
        out.append(contentsOf: utf8)
    }

    private static func appendLongUTF8(_ s: String, to out: inout [UInt8]) {
        let utf8 = Array(s.utf8)
        appendUInt32(UInt32(truncatingIfNeeded: utf8.count), to: &out)
        out.append(contentsOf: utf8)
    }

    private static func appendUInt16(_ v: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(v >> 8))
        out.append(UInt8(v & 0xFF))
    }

    private static func appendUInt32(_ v: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(v >> 24))
        out.append(UInt8((v >> 16) & 0xFF))
        out.append(UInt8((v >> 8) & 0xFF))
        out.append(UInt8(v & 0xFF))
    }

    private static func appendDouble(_ d: Double, to out: inout [UInt8]) {
        let bits = d.bitPattern
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8((bits >> UInt64(shift)) & 0xFF))
        }
    }

    // MARK: - Decoding

    private struct Reader {
        /// What one value takes in its container (inline, see ``AMF0Value``).
        static let valueCost = MemoryLayout<AMF0Value>.stride
        /// What one property takes in its object beside its value: the key.
        static let propertyCost = max(MemoryLayout<AMF0Property>.stride - MemoryLayout<AMF0Value>.stride, MemoryLayout<String>.stride)

        let bytes: ArraySlice<UInt8>
        var index: Int
        let maxDepth: Int
        let budget: Int
        /// Estimated bytes the values decoded so far take.
        var charged = 0

        init(bytes: ArraySlice<UInt8>, maxDepth: Int, budget: Int) {
            self.bytes = bytes
            self.index = bytes.startIndex
            self.maxDepth = maxDepth
            self.budget = budget
        }

        /// Charges `cost` bytes of decoded structure, before they are allocated.
        mutating func charge(_ cost: Int) throws(RTMPError) {
            guard cost <= budget - charged else {
                throw .amfTooLarge(inputBytes: bytes.count, budget: budget)
            }
            charged += cost
        }

        var isAtEnd: Bool { index >= bytes.endIndex }
        var remaining: Int { bytes.endIndex - index }

        mutating func take(_ n: Int, _ what: String) throws(RTMPError) -> ArraySlice<UInt8> {
            guard n >= 0, n <= remaining else {
                throw .malformedAMF("\(what) needs \(n) bytes but only \(remaining) remain")
            }
            defer { index += n }
            return bytes[index..<(index + n)]
        }

        mutating func u8(_ what: String) throws(RTMPError) -> UInt8 {
            try take(1, what).first!
        }

        mutating func u16(_ what: String) throws(RTMPError) -> UInt16 {
            let b = try take(2, what)
            return UInt16(b[b.startIndex]) << 8 | UInt16(b[b.startIndex + 1])
        }

        mutating func u32(_ what: String) throws(RTMPError) -> UInt32 {
            let b = try take(4, what)
            var v: UInt32 = 0
            for byte in b { v = v << 8 | UInt32(byte) }
            return v
        }

        mutating func double(_ what: String) throws(RTMPError) -> Double {
            let b = try take(8, what)
            var v: UInt64 = 0
            for byte in b { v = v << 8 | UInt64(byte) }
            return Double(bitPattern: v)
        }

        /// Strings of up to 15 UTF-8 bytes are stored inline; longer ones take their bytes
        /// and a heap header.
        mutating func utf8(count: Int, _ what: String) throws(RTMPError) -> String {
            let raw = try take(count, what)
            if count > 15 { try charge(count + 32) }
            return String(decoding: raw, as: UTF8.self)
        }

        mutating func shortString(_ what: String) throws(RTMPError) -> String {
            let n = Int(try u16("\(what) length"))
            return try utf8(count: n, what)
        }

        mutating func longString(_ what: String) throws(RTMPError) -> String {
            let n = Int(try u32("\(what) length"))
            return try utf8(count: n, what)
        }

        /// Reads key/value pairs up to the empty-key object-end marker.
        mutating func properties(depth: Int) throws(RTMPError) -> [AMF0Property] {
            var props: [AMF0Property] = []
            while true {
                let key = try shortString("property name")
                if key.isEmpty, remaining > 0, bytes[index] == Marker.objectEnd.rawValue {
                    index += 1
                    return props
                }
                if isAtEnd {
                    throw .malformedAMF("object is missing its end marker")
                }
                try charge(Self.propertyCost)
                props.append(AMF0Property(key, try value(depth: depth + 1)))
            }
        }

        mutating func checkDepth(_ depth: Int) throws(RTMPError) {
            if depth >= maxDepth {
                throw .malformedAMF("values nested deeper than \(maxDepth) levels")
            }
        }

        mutating func value(depth: Int) throws(RTMPError) -> AMF0Value {
            try charge(Self.valueCost)
            let markerByte = try u8("value marker")
            guard let marker = Marker(rawValue: markerByte) else {
                throw .malformedAMF("unknown marker 0x\(String(markerByte, radix: 16))")
            }
            switch marker {
            case .number:
                return .number(try double("number"))
            case .boolean:
                return .boolean(try u8("boolean") != 0)
            case .string:
                return .string(try shortString("string"))
            case .longString:
                return .longString(try longString("long string"))
            case .xmlDocument:
                return .xmlDocument(try longString("XML document"))
            case .object:
                try checkDepth(depth)
                return .object(try properties(depth: depth))
            case .ecmaArray:
                try checkDepth(depth)
                _ = try u32("ECMA array count")  // only a hint; the end marker is authoritative
                return .ecmaArray(try properties(depth: depth))
            case .typedObject:
                try checkDepth(depth)
                let name = try shortString("class name")
                return .typedObject(className: name, properties: try properties(depth: depth))
            case .strictArray:
                try checkDepth(depth)
                let count = Int(try u32("strict array count"))
                guard count <= remaining else {
                    throw .malformedAMF("strict array claims \(count) items but only \(remaining) bytes remain")
                }
                // Refuse a hostile count up front rather than after decoding most of it.
                guard count <= (budget - charged) / Self.valueCost else {
                    throw .amfTooLarge(inputBytes: bytes.count, budget: budget)
                }
                var items: [AMF0Value] = []
                for _ in 0..<count { items.append(try value(depth: depth + 1)) }
                return .strictArray(items)
            case .date:
                let ms = try double("date")
                let tz = Int16(bitPattern: try u16("date time zone"))
                return .date(ms, timeZone: tz)
            case .null:
                return .null
            case .undefined:
                return .undefined
            case .unsupported:
                return .unsupported
            case .reference:
                return .reference(try u16("reference"))
            case .objectEnd:
                throw .malformedAMF("object end marker outside an object")
            case .movieClip, .recordSet:
                throw .malformedAMF("reserved marker 0x\(String(markerByte, radix: 16))")
            case .avmPlusObject:
                throw .malformedAMF("AMF3 values (marker 0x11) are not supported")
            }
        }
    }
}
