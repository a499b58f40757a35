/// What an ``RTMPClientSession`` asks its host to do or tells it, in order.
public enum RTMPClientEvent: Equatable, Sendable {
    /// Bytes to write to the server, in order (C2, connect, createStream, publish, acks, pong...).
    case send([UInt8])
    /// onStatus `NetStream.Publish.Start` arrived: media and metadata may flow.
    case publishing
    /// The server refused: onStatus with level "error", or `_error` answering `connect`,
    /// `createStream` or `publish`. The host should close the connection.
    case rejected(code: String, description: String)
    /// Any other onStatus (for example `NetStream.Unpublish.Success`), for the host to log.
    case status(code: String)
    /// The origin handing the stream to another node asks the relay to start there from the
    /// keyframe with this timestamp (what came before it, it has made and passed on): a StreamTube
    /// status (`RTMPServerSession.handOver(resumeAt:)`), followed by the connection's end.
    case resume(at: UInt32)
    /// The server's Acknowledgement: how many bytes it has received from us, counted from the
    /// first handshake byte, modulo 2^32 (it comes every Window Acknowledgement Size bytes).
    case acknowledged(UInt32)
}
