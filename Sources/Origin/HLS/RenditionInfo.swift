// RenditionInfo: one rendition as the master playlist lists it.

/// A rendition as the master playlist lists it.
public struct RenditionInfo: Sendable, Equatable {
    public var name: String
    public var bandwidth: Int
    public var averageBandwidth: Int
    public var width: Int?
    public var height: Int?
    public var frameRate: Double?
    public var codecs: String
}
