// libFuzzer target: a replication batch as a standby reads it from the wire (after the cluster
// token, which signs the body, has been checked — so this is what a node with the cluster key,
// or a bug on the origin, could send). Decoding never traps; what decodes encodes to bytes that
// decode to the same bytes again.
// Built with the Origin sources by ops/fuzz (`swiftc -sanitize=fuzzer,address`).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard let batch = try? ReplicaBatch(decoding: Array(UnsafeBufferPointer(start: data, count: count))) else { return 0 }
    let once = batch.encoded()
    guard let again = try? ReplicaBatch(decoding: once) else { preconditionFailure("an encoded batch does not decode") }
    precondition(again.encoded() == once, "encoding is not stable")
    return 0
}

/// Batches as an origin sends them: an incremental one with a segment and parts, one that ends a
/// rendition, and one with a recording start, a recording cut and two renditions.
func writeSeeds(to dir: String) {
    let part = { (segment: Int, index: Int, independent: Bool) in
        PackagedPart(segment: segment, index: index, duration: 0.333, independent: independent,
                     bytes: Array("moofmdat".utf8) + [UInt8](repeating: UInt8(index), count: 24), startTime: Double(segment * 2) + Double(index) / 3)
    }
    var incremental = ReplicaBatch(snapshot: false, sessions: 1, order: ["source"], renditions: [
        ReplicaRendition(name: "source", live: true, shed: false, outputs: [
            .segmentStarted(sequence: 4, discontinuity: false, initVersion: 0),
            .part(part(4, 0, true)), .part(part(4, 1, false)), .part(part(4, 2, false)),
            .segmentEnded(sequence: 4),
        ], dates: [4: Date(timeIntervalSinceReferenceDate: 800_000_000)]),
    ])
    incremental.epoch = 7
    incremental.sequence = 12
    var ended = incremental
    ended.renditions[0].live = false
    ended.renditions[0].outputs = [.segmentEnded(sequence: 5)]
    var two = incremental
    two.recordingStart = 2
    two.streamEpoch = StreamEpoch(0x1f2a3b4c)
    two.order = ["source", "360p"]
    two.renditions.append(ReplicaRendition(name: "360p", live: true, shed: true, outputs: [.part(part(4, 0, true))]))
    two.renditions[0].cuts = [3: 7.0]  // a new origin's recording cut of segment 3
    for (name, batch) in [("incremental", incremental), ("ended", ended), ("two-renditions", two)] {
        _ = FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data(batch.encoded()))
    }
}
