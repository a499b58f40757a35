// A hash that is the same on every node, every run and every platform, unlike Swift's
// per-process seeded `Hasher`. The ring depends on it: two nodes that disagree on a hash
// disagree on who owns a stream.

/// 64-bit FNV-1a followed by the MurmurHash3 finaliser (fmix64), which spreads FNV's weak
/// low bits across the whole word. Fixed forever: changing it reassigns every stream.
public enum StableHash {
    public static func hash64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        mix(fnv1a64(bytes))
    }

    /// Plain 64-bit FNV-1a (offset basis 0xCBF29CE484222325, prime 0x100000001B3).
    public static func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h &*= 0x0000_0100_0000_01B3
        }
        return h
    }

    public static func hash64(_ string: String) -> UInt64 { hash64(string.utf8) }

    /// MurmurHash3's 64-bit finaliser.
    public static func mix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }
}
