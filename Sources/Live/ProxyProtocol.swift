// The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in TCP mode opens each
// connection to the node with a short header naming the client's address, then relays the
// client's bytes. Read only on connections from trusted proxies (`--trusted-proxies`), so the
// RTMP server's logs and per-address limits see the broadcaster, not the balancer. The header
// is bounded (v1: 107 bytes; v2: 16 + at most 216 of addresses and TLVs are read) and must
// arrive within a few seconds; anything else closes the connection.
import HTTPSupport
import NIOCore

package enum ProxyHeader: Equatable {
    /// More bytes are needed.
    case incomplete
    /// Not a PROXY header, or a malformed one.
    case invalid(String)
    /// A header of `length` bytes naming the client (nil: the proxy's own connection, e.g. a
    /// health check (v2 LOCAL, v1 UNKNOWN), or an address family other than TCP over IP).
    case header(length: Int, source: SocketAddress?)

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// The most a v2 header may take here: the fixed part and the longest address block (UNIX
    /// sockets, 216 bytes); TLVs past that are refused rather than buffered.
    static let v2MaxLength = 16 + 216
    static let v1MaxLength = 107

    package static func parse(_ bytes: ArraySlice<UInt8>) -> ProxyHeader {
        let b = Array(bytes.prefix(v2MaxLength))
        if b.first == 0x0D {
            let n = min(b.count, 12)
            guard Array(b[0..<n]) == Array(v2Signature[0..<n]) else { return .invalid("not a PROXY protocol header") }
            guard b.count >= 16 else { return .incomplete }
            return parseV2(b)
        }
        if b.first == UInt8(ascii: "P") {
            let prefix = Array("PROXY ".utf8)
            let n = min(b.count, prefix.count)
            guard Array(b[0..<n]) == Array(prefix[0..<n]) else { return .invalid("not a PROXY protocol header") }
            guard let end = b.prefix(v1MaxLength).firstIndex(of: 0x0A) else {
                return b.count >= v1MaxLength ? .invalid("PROXY v1 header longer than \(v1MaxLength) bytes") : .incomplete
            }
            return parseV1(Array(b[0...end]))
        }
        return b.isEmpty ? .incomplete : .invalid("not a PROXY protocol header")
    }

    private static func parseV2(_ b: [UInt8]) -> ProxyHeader {
        guard b[12] >> 4 == 2 else { return .invalid("PROXY v2: unknown version \(b[12] >> 4)") }
        let command = b[12] & 0x0F
        let length = Int(b[14]) << 8 | Int(b[15])
        guard 16 + length <= v2MaxLength else { return .invalid("PROXY v2 header of \(16 + length) bytes: more than \(v2MaxLength)") }
        guard b.count >= 16 + length else { return .incomplete }
        switch command {
        case 0: return .header(length: 16 + length, source: nil)  // LOCAL: the proxy itself
        case 1: break
        default: return .invalid("PROXY v2: unknown command \(command)")
        }
        let body = b[16..<(16 + length)]
        let family = b[13] >> 4, transport = b[13] & 0x0F
        guard transport == 1 else { return .header(length: 16 + length, source: nil) }  // not TCP: keep the proxy's address
        switch family {
        case 1:
            guard length >= 12 else { return .invalid("PROXY v2: IPv4 addresses cut short") }
            let a = Array(body.prefix(4)), port = Int(body[body.startIndex + 8]) << 8 | Int(body[body.startIndex + 9])
            return .header(length: 16 + length, source: try? SocketAddress(packedIPAddress: ByteBuffer(bytes: a), port: port))
        case 2:
            guard length >= 36 else { return .invalid("PROXY v2: IPv6 addresses cut short") }
            let a = Array(body.prefix(16)), port = Int(body[body.startIndex + 32]) << 8 | Int(body[body.startIndex + 33])
            return .header(length: 16 + length, source: try? SocketAddress(packedIPAddress: ByteBuffer(bytes: a), port: port))
        default:
            return .header(length: 16 + length, source: nil)
        }
    }

    private static func parseV1(_ line: [UInt8]) -> ProxyHeader {
        guard line.count >= 2, line[line.count - 2] == 0x0D else { return .invalid("PROXY v1 header must end with CRLF") }
        let fields = String(decoding: line.dropLast(2), as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 2, fields[0] == "PROXY" else { return .invalid("malformed PROXY v1 header") }
        if fields[1] == "UNKNOWN" { return .header(length: line.count, source: nil) }
        guard fields.count == 6, fields[1] == "TCP4" || fields[1] == "TCP6", let port = Int(fields[4]), (0...65535).contains(port),
              let source = try? SocketAddress(ipAddress: String(fields[2]), port: port) else {
            return .invalid("malformed PROXY v1 header")
        }
        return .header(length: line.count, source: source)
    }
}

/// First in a connection's pipeline when the peer is a trusted proxy: reads the PROXY header,
/// then hands the rest of the connection to the handlers `then` adds, told the client's
/// address (the proxy's own when the header names none); a pass-through after that.
final class ProxyHeaderHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var buffered: [UInt8] = []
    private var deadline: Scheduled<Void>?
    private var done = false
    private let then: (ChannelPipeline.SynchronousOperations, SocketAddress?) throws -> Void
    private let refused: (String) -> Void

    /// `then` adds the handlers that follow; `refused` is told why a connection was closed.
    init(then: @escaping (ChannelPipeline.SynchronousOperations, SocketAddress?) throws -> Void, refused: @escaping (String) -> Void) {
        self.then = then
        self.refused = refused
    }

    func channelActive(context: ChannelHandlerContext) {
        // Held back: the handlers after this one are not there yet; they are told once the header is read.
        deadline = context.eventLoop.scheduleTask(in: .seconds(5)) { [weak self] in
            guard let self, !self.done else { return }
            self.refuse("no PROXY header within 5 s", context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        var buffer = unwrapInboundIn(data)
        buffered += buffer.readBytes(length: min(buffer.readableBytes, ProxyHeader.v2MaxLength + 1 - buffered.count)) ?? []
        let rest = buffer
        switch ProxyHeader.parse(buffered[...]) {
        case .incomplete:
            if buffered.count > ProxyHeader.v2MaxLength { refuse("PROXY header too long", context: context) }
        case .invalid(let why):
            refuse(why, context: context)
        case .header(let length, let source):
            done = true
            deadline?.cancel()
            do { try then(context.pipeline.syncOperations, source ?? context.channel.remoteAddress) } catch {
                return refuse("could not set up the connection: \(error)", context: context)
            }
            context.fireChannelActive()
            var leftover = context.channel.allocator.buffer(capacity: buffered.count - length + rest.readableBytes)
            leftover.writeBytes(buffered[length...])
            var rest = rest
            leftover.writeBuffer(&rest)
            buffered = []
            // From here on a pass-through.
            if leftover.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(leftover)) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if done { context.fireChannelInactive() }
    }

    private func refuse(_ why: String, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        deadline?.cancel()
        refused(why)
        context.close(promise: nil)
    }
}
