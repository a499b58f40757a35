// libFuzzer target: the gossip wire, both layers. The first byte chooses:
// - even: the rest is a sealed datagram or stream frame as it arrives from the network, opened
//   with the cluster's keyring (a fuzzer cannot forge the AEAD tag, so mostly this exercises the
//   envelope's checks; the seeds are packets sealed with the key, so their plaintexts are decoded);
// - odd: the rest is a decrypted payload (what a node holding the cluster key can send), decoded
//   directly.
// Whatever decodes is encoded, decoded again to the same messages and encoded to the same bytes;
// each message's `framedSize` is its encoded size; sealed with the key it opens to the same
// messages. A reject is a typed error and is counted; nothing traps.
// Built with the Gossip sources by ops/fuzz (`swiftc -sanitize=fuzzer,address`, swift-crypto and
// swift-collections from the SwiftPM build).
import Foundation

let primary = [UInt8](repeating: 0x5A, count: 32)
let secondary = [UInt8](repeating: 0xA5, count: 16)
let keyring = try! Keyring(primary: primary, secondary: [secondary])
let clusterName = "fuzz"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let rest = Array(UnsafeBufferPointer(start: data + 1, count: count - 1))
    if data[0] & 1 == 0 {
        var codec = PacketCodec(keyring: keyring, clusterName: clusterName)
        // A datagram past the size limit is refused before it is opened; a stream frame is not.
        let datagram = try? codec.openDatagram(rest)
        let frame = try? codec.openStreamFrame(rest)
        precondition((datagram == nil) == (frame == nil) || rest.count > codec.maxPacketSize, "a datagram and a frame open differently")
        let refused = (datagram == nil ? 1 : 0) + (frame == nil ? 1 : 0)
        precondition(codec.stats.totalDropped == UInt64(refused), "every refused packet is counted, once")
        if let frame { check(frame) }
    } else if let messages = try? MessageCodec.decodePacket(rest) {
        check(messages)
    }
    return 0
}

/// Encodes what decoded and checks it comes back the same, plain and sealed.
func check(_ messages: [GossipMessage]) {
    let once: [UInt8]
    do { once = try MessageCodec.encodePacket(messages) } catch { preconditionFailure("decoded messages do not encode: \(error)") }
    guard let again = try? MessageCodec.decodePacket(once) else { preconditionFailure("an encoded packet does not decode") }
    precondition(again == messages, "decoding the encoding gives other messages")
    precondition((try? MessageCodec.encodePacket(again)) == once, "encoding is not stable")
    for m in messages {
        precondition(MessageCodec.framedSize(m) == MessageCodec.encodeFramed(m).count, "framedSize of \(m.kind) is not its encoded size")
    }
    var codec = PacketCodec(keyring: keyring, clusterName: clusterName)
    guard let sealed = try? codec.sealStreamFrame(messages) else { preconditionFailure("decoded messages do not seal") }
    precondition((try? codec.openStreamFrame(sealed)) == messages, "a sealed frame does not open to its messages")
}

/// Packets as nodes send them, each as a decrypted payload and sealed with the primary key and
/// with the secondary one: probes, an ack with a coordinate, membership updates, a full state.
func writeSeeds(to dir: String) {
    let a = Endpoint(host: "10.0.0.1", port: 7946), b = Endpoint(host: "fd00::2", port: 7946)
    let meta = MemberMetadata(id: "node-a", gossipAddress: a, httpAddress: Endpoint(host: "10.0.0.1", port: 8080),
                              rtmpAddress: Endpoint(host: "10.0.0.1", port: 1935), region: "eu-west", capacity: 100, load: 7,
                              softwareVersion: "1.4.0", version: 3)
    let coordinate = VivaldiCoordinate(vector: [0.012, -0.003, 0.0005], error: 0.4, adjustment: -0.0001, height: 0.00002)
    let members = [
        Member(metadata: meta, incarnation: 5, status: .alive, statusChangedAt: .zero, coordinate: coordinate),
        Member(metadata: MemberMetadata(id: "node-b", gossipAddress: b, httpAddress: b, rtmpAddress: b), incarnation: 1 << 40,
               status: .suspect, statusChangedAt: .zero),
        Member(metadata: MemberMetadata(id: "node-c", gossipAddress: a, httpAddress: a, rtmpAddress: a), incarnation: 0,
               status: .left, statusChangedAt: .zero),
    ]
    let packets: [(String, [GossipMessage])] = [
        ("probe", [.ping(.init(sequence: 1, target: "node-b", source: "node-a", sourceAddress: a)),
                   .pingReq(.init(sequence: 300, target: "node-c", targetAddress: b, source: "node-a", sourceAddress: a, wantsNack: true)),
                   .nack(.init(sequence: 70_000))]),
        ("ack", [.ack(.init(sequence: 1, responder: "node-b", coordinate: coordinate)),
                 .ack(.init(sequence: 2, responder: "node-c", coordinate: nil))]),
        ("updates", [.alive(.init(incarnation: 5, metadata: meta)),
                     .suspect(.init(incarnation: 2, node: "node-b", from: "node-a")),
                     .dead(.init(incarnation: UInt64.max, node: "node-c", from: "node-a"))]),
        ("full-state", [.pushPull(.init(join: true, isResponse: false, members: members))]),
    ]
    var rotated = PacketCodec(keyring: try! Keyring(primary: secondary, secondary: [primary]), clusterName: clusterName)
    var codec = PacketCodec(keyring: keyring, clusterName: clusterName)
    for (name, messages) in packets {
        let plain = try! MessageCodec.encodePacket(messages)
        _ = FileManager.default.createFile(atPath: "\(dir)/payload-\(name)", contents: Data([1] + plain))
        _ = FileManager.default.createFile(atPath: "\(dir)/sealed-\(name)", contents: Data([0] + (try! codec.sealStreamFrame(messages))))
        _ = FileManager.default.createFile(atPath: "\(dir)/sealed-secondary-\(name)", contents: Data([0] + (try! rotated.sealStreamFrame(messages))))
    }
}
