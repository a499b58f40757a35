/// What an ``RTMPServerSession`` asks its host to do or tells it, in order.
public enum RTMPServerEvent: Equatable, Sendable {
    /// Bytes to write to the peer, in order.
    case send([UInt8])
    /// The peer sent `connect`; the session has already answered it.
    case connected(app: String, tcURL: String?)
    /// The peer sent `publish`. `streamKey` has any "?query" stripped. The host must answer
    /// with ``RTMPServerSession/acceptPublish()`` or ``RTMPServerSession/rejectPublish(code:description:)``.
    /// Media and metadata that arrive before the answer are still reported (clients normally
    /// wait for the answer); the host drops them until it has accepted.
    case publishRequested(app: String, streamKey: String)
    /// `@setDataFrame onMetaData` (or a bare `onMetaData`) data message.
    case metadata([String: AMF0Value])
    /// FLV video tag body (message type 9); absolute timestamp in milliseconds.
    case video(timestamp: UInt32, payload: [UInt8])
    /// FLV audio tag body (message type 8); absolute timestamp in milliseconds.
    case audio(timestamp: UInt32, payload: [UInt8])
    /// `FCUnpublish`, `deleteStream` or `closeStream` ended the publication (sent once).
    case unpublished
    /// A command this session does not handle; it was ignored. For the host to log.
    case unknownCommand(name: String)
}
