// UpgradeSniffingChannel: a connection is HTTP/1.1 as before (`HTTP1Channel`, with the media
// fast path in front of its decoder) unless its first request asks to upgrade to a WebSocket,
// then it is hummingbird-websocket's upgrade channel. The first request's head is read (bounded)
// before the pipeline is chosen, so that nothing of the HTTP path changes for HTTP: the media
// fast path's raw handler must see a connection from its first byte.
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

package struct UpgradeSniffingChannel: ServerChildChannel {
    enum Chosen: Sendable {
        case http(HTTP1Channel.Value)
        case webSocket(HTTP1WebSocketUpgradeChannel.Value)
    }

    /// The connection, and the pipeline its first request chose (the server registers a
    /// connection only once its setup is done, and only then do bytes arrive: the choice is
    /// made later, on the event loop, and awaited by `handle`).
    package struct Value: ServerChildChannelValue {
        package let channel: any Channel
        let chosen: EventLoopFuture<Chosen>
    }

    let http: HTTP1Channel
    let webSocket: HTTP1WebSocketUpgradeChannel
    /// A connection that has not sent a whole request head by then is closed.
    let firstHeadTimeout: TimeAmount

    package init(http: HTTP1Channel, webSocket: HTTP1WebSocketUpgradeChannel, firstHeadTimeout: TimeAmount = .seconds(30)) {
        self.http = http
        self.webSocket = webSocket
        self.firstHeadTimeout = firstHeadTimeout
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let promise = channel.eventLoop.makePromise(of: Chosen.self)
        let (http, webSocket) = (self.http, self.webSocket)
        let sniffer = UpgradeSniffer { isUpgrade in
            // Both setups complete on the event loop at once (they configure the pipeline synchronously).
            let future: EventLoopFuture<Chosen> = isUpgrade
                ? webSocket.setup(channel: channel, logger: logger).map(Chosen.webSocket)
                : http.setup(channel: channel, logger: logger).map(Chosen.http)
            future.cascade(to: promise)
        }
        let timeout = channel.eventLoop.scheduleTask(in: firstHeadTimeout) {
            promise.fail(ChannelError.inputClosed)
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        channel.closeFuture.whenComplete { _ in promise.fail(ChannelError.inputClosed) }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(sniffer)
            return Value(channel: channel, chosen: promise.futureResult)
        }
    }

    package func handle(value: Value, logger: Logger) async {
        guard let chosen = try? await value.chosen.get() else { return }
        switch chosen {
        case .http(let v): await http.handle(value: v, logger: logger)
        case .webSocket(let v): await webSocket.handle(value: v, logger: logger)
        }
    }
}

/// Holds the first bytes until the first request's head is whole (or too long to be an
/// upgrade), says which pipeline to build, then hands every byte it held to that pipeline and
/// leaves.
final class UpgradeSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Heads longer than this are not upgrades we take (the HTTP decoder has its own limits).
    static let maxHead = 16 * 1024

    private var held: ByteBuffer?
    private var decided = false
    private let decide: (Bool) -> Void

    init(decide: @escaping (Bool) -> Void) {
        self.decide = decide
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !decided else { return context.fireChannelRead(data) }
        if var earlier = held {
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        let view = bytes.readableBytesView
        let end = Self.headEnd(view)
        guard end != nil || view.count > Self.maxHead else {
            held = bytes
            return
        }
        decided = true
        held = nil
        decide(end.map { Self.asksForWebSocket(view.prefix($0)) } ?? false)
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Where the blank line ending the head is, if it came.
    static func headEnd(_ bytes: ByteBufferView) -> Int? {
        var last: [UInt8] = []
        for (i, b) in bytes.enumerated() {
            last.append(b)
            if last.count > 4 { last.removeFirst() }
            if last == [13, 10, 13, 10] || last.suffix(2) == [10, 10] { return i + 1 }
        }
        return nil
    }

    /// An `Upgrade: websocket` header (any case, any spaces).
    static func asksForWebSocket(_ head: ByteBufferView.SubSequence) -> Bool {
        let text = String(decoding: head, as: UTF8.self).lowercased()
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == "upgrade",
               parts[1].split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "websocket" }) {
                return true
            }
        }
        return false
    }
}
