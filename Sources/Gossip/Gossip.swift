// Gossip: membership, dissemination, coordinates and the hash ring (see issue 4).
public enum GossipModule {}
