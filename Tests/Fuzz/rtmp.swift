// libFuzzer target: an RTMP publisher's bytes after the handshake, as a node's RTMP server
// reads them (chunk decoder, protocol control, AMF0 commands, FLV video and audio tags).
// Built with the Origin sources by ops/fuzz (`swiftc -sanitize=fuzzer,address`); a crash, a
// hang, a leak or buffering past the session's bound is a finding.
import Foundation

/// Room enough for a publish and a few frames, small enough to run fast.
let limits: RTMPLimits = {
    var l = RTMPLimits.default
    l.maxChunkSize = 64 * 1024
    l.maxMessageLength = 256 * 1024
    l.maxBufferedMessageBytes = 512 * 1024
    return l
}()
/// What a session may hold at most: a partial message budget, a chunk header, a handshake packet.
let bound = limits.maxBufferedMessageBytes + 18 + 1537
/// C0 + C1 + C2 of a client: version 3, zero time, zero filler.
let handshake: [UInt8] = [3] + [UInt8](repeating: 0, count: 1536 * 2)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    var session = RTMPServerSession(limits: limits, randomBytes: { [UInt8](repeating: 7, count: $0) })
    do {
        _ = try session.receive(handshake)
        // The first byte picks how the rest is cut into reads (TCP may split anywhere).
        let step = Int(input.first ?? 0) % 64 + 1
        var i = min(1, input.count)
        while i < input.count {
            let n = min(step, input.count - i)
            for event in try session.receive(Array(input[i..<i + n])) {
                switch event {
                case .publishRequested: _ = session.acceptPublish()
                case .video(_, let payload): _ = try? FLVVideoTag.parse(payload)
                case .audio(_, let payload): _ = try? FLVAudioTag.parse(payload)
                default: break
                }
            }
            precondition(session.bufferedByteCount <= bound, "session holds \(session.bufferedByteCount) bytes, bound \(bound)")
            i += n
        }
    } catch {
        precondition(session.failure != nil, "an error leaves the session failed")
    }
    return 0
}

/// A publisher's session as our relay client writes it: connect, createStream, publish, metadata,
/// an AVC sequence header, key and delta frames, AAC; then the same cut into odd chunk sizes.
func writeSeeds(to dir: String) {
    var client = RTMPClientSession(app: "live", tcURL: "rtmp://127.0.0.1/live", streamKey: "key", randomBytes: { [UInt8](repeating: 1, count: $0) })
    var server = RTMPServerSession(limits: limits, randomBytes: { [UInt8](repeating: 7, count: $0) })
    var toServer = client.start(), written: [UInt8] = []
    var sentHandshake = 0
    // Pump both ways until the client publishes; keep what the client sent after its handshake.
    for _ in 0..<50 {
        guard !toServer.isEmpty else { break }
        written += toServer
        let events = (try? server.receive(toServer)) ?? []
        toServer = []
        var toClient: [UInt8] = []
        for e in events {
            if case .send(let b) = e { toClient += b }
            if case .publishRequested = e { toClient += server.acceptPublish() }
        }
        for e in (try? client.receive(toClient)) ?? [] { if case .send(let b) = e { toServer += b } }
        if client.isPublishing { break }
    }
    sentHandshake = 1 + 1536 * 2
    var media = client.sendMetadata([AMF0Property("width", .number(320)), AMF0Property("videocodecid", .number(7))])
    media += client.sendVideo(timestamp: 0, payload: [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1F, 1, 0, 4, 0x68, 0xEB, 0xE3, 0xCB])
    media += client.sendAudio(timestamp: 0, payload: [0xAF, 0, 0x12, 0x10])
    media += client.sendVideo(timestamp: 33, payload: [0x17, 1, 0, 0, 0, 0, 0, 0, 5, 0x65, 0x88, 0x84, 0, 0x33])
    media += client.sendVideo(timestamp: 66, payload: [0x27, 1, 0, 0, 0x21, 0, 0, 0, 4, 0x41, 0x9A, 0, 0x10])
    media += client.sendAudio(timestamp: 23, payload: [0xAF, 1] + [UInt8](repeating: 0x21, count: 40))
    media += client.unpublish()
    let session = Array(written.dropFirst(sentHandshake)) + media
    for (name, first) in [("publish-step1", UInt8(0)), ("publish-step7", 6), ("publish-step64", 63)] {
        _ = FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data([first] + session))
    }
}
