// SMTPConnection: the NIO shell under SMTPMailer: a socket, optionally TLS, lines out, replies in.
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One connection to an SMTP server. Replies are read one at a time, each within a timeout;
/// TLS can be started in the middle (STARTTLS). Knows nothing of the SMTP dialogue itself.
struct SMTPConnection: Sendable {
    let channel: any Channel
    private let replies: NIOLoopBound<SMTPReplyHandler>

    /// Connects; with `tls`, TLS starts at once (implicit TLS). `serverHostname` is checked
    /// against the certificate (nil for an IP address: the peer's address is checked).
    static func connect(host: String, port: Int, timeout: TimeAmount, parser: SMTPReplyParser,
                        tls: NIOSSLContext?, serverHostname: String?, group: any EventLoopGroup) async throws -> SMTPConnection {
        // The reply handler, handed out by the initializer: the connection may fail (and its
        // handlers go) before we could look it up in the pipeline. Kept by channel: with more
        // than one address to try, the initializer runs for every attempt.
        let handlers = HandlerRegistry()
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPReplyDecoder(parser: parser)))
                    let replies = SMTPReplyHandler(eventLoop: channel.eventLoop)
                    try channel.pipeline.syncOperations.addHandler(replies)
                    handlers.keep(NIOLoopBound(replies, eventLoop: channel.eventLoop), for: channel)
                }
            }
            .connect(host: host, port: port).get()
        guard let handler = handlers.take(for: channel) else {
            try? await channel.close().get()
            throw SMTPConnectionClosed()
        }
        return SMTPConnection(channel: channel, replies: handler)
    }

    /// The next reply, or an error: the connection's (TLS, unreadable reply, closed) or
    /// `SMTPConnectionTimeout` after `timeout`.
    func reply(within timeout: TimeAmount) async throws -> SMTPReply {
        let replies = self.replies
        return try await channel.eventLoop.flatSubmit { replies.value.next(within: timeout) }.get()
    }

    /// The first error the connection saw (a failed TLS handshake, say), if any: a write that
    /// fails after it fails for that reason.
    func firstFailure() async -> (any Error)? {
        let replies = self.replies
        return try? await channel.eventLoop.submit { replies.value.failure }.get()
    }

    /// Writes text as it is (the caller adds CRLF).
    func write(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Puts TLS under the connection (after the server's 220 to STARTTLS): the handshake starts
    /// now, and the next reply is read through it.
    func startTLS(_ context: NIOSSLContext, serverHostname: String?) async throws {
        let channel = self.channel
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverHostname),
                                                           position: .first)
        }.get()
    }

    func close() async {
        try? await channel.close().get()
    }
}

/// The reply handler of each channel the bootstrap made, until the connection takes its own.
private final class HandlerRegistry: Sendable {
    private let handlers = Mutex<[ObjectIdentifier: NIOLoopBound<SMTPReplyHandler>]>([:])

    func keep(_ handler: NIOLoopBound<SMTPReplyHandler>, for channel: any Channel) {
        handlers.withLock { $0[ObjectIdentifier(channel)] = handler }
    }

    func take(for channel: any Channel) -> NIOLoopBound<SMTPReplyHandler>? {
        handlers.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

/// No reply within the time allowed.
struct SMTPConnectionTimeout: Error {}
/// The server closed the connection.
struct SMTPConnectionClosed: Error {}
/// The server sent replies nobody asked for, more than a few.
struct SMTPUnexpectedReplies: Error {}

/// Hands replies to the one reader waiting for them; keeps at most a few that arrive unasked.
final class SMTPReplyHandler: ChannelInboundHandler {
    typealias InboundIn = SMTPReply
    private static let maxQueued = 4

    private let eventLoop: any EventLoop
    private var queued: [SMTPReply] = []
    private var waiter: EventLoopPromise<SMTPReply>?
    private(set) var failure: (any Error)?

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        if let waiter {
            self.waiter = nil
            waiter.succeed(reply)
        } else if queued.count < Self.maxQueued {
            queued.append(reply)
        } else {
            fail(SMTPUnexpectedReplies())
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(SMTPConnectionClosed())
        context.fireChannelInactive()
    }

    /// The first error is the one reported (a TLS failure, not the close that follows it).
    private func fail(_ error: any Error) {
        if failure == nil { failure = error }
        if let waiter {
            self.waiter = nil
            waiter.fail(failure!)
        }
    }

    func next(within timeout: TimeAmount) -> EventLoopFuture<SMTPReply> {
        if !queued.isEmpty { return eventLoop.makeSucceededFuture(queued.removeFirst()) }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        let promise = eventLoop.makePromise(of: SMTPReply.self)
        waiter = promise
        let timer = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard let waiter, waiter.futureResult === promise.futureResult else { return }
            self.waiter = nil
            waiter.fail(SMTPConnectionTimeout())
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }
}
