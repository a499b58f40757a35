// What the membership state machine asks its shell to do. The shell performs them in order;
// of several `scheduleTick`s the last one wins (every handler ends with exactly one).

/// An instruction from `Membership` to the I/O shell.
public enum Directive: Hashable, Sendable {
    /// Seal these messages into one datagram (they fit in `maxPacketSize` once sealed) and
    /// send it to the address.
    case sendDatagram(to: Endpoint, messages: [GossipMessage])
    /// Send a full-state message over the stream transport. Any answer comes back through
    /// `Membership.onFullState`.
    case sendFullState(to: Endpoint, GossipMessage.PushPull)
    /// The membership table changed.
    case membershipChanged(MembershipChange)
    /// Call `Membership.onTick(now:)` at this instant (replaces any earlier request).
    case scheduleTick(at: GossipInstant)
}
