import Catalog
import Cluster
import Foundation
import Gossip
import XCTest

/// Where stream records live among nodes with their own databases, and whom a node asks.
final class RecordPlacementTests: XCTestCase {
    static func member(_ id: String, capacity: UInt32 = 1, status: MemberStatus = .alive) -> Member {
        let address = Endpoint(host: "127.0.0.1", port: 1)
        return Member(metadata: MemberMetadata(id: NodeID(id), gossipAddress: address, httpAddress: address, rtmpAddress: address,
                                               capacity: capacity),
                      incarnation: 1, status: status, statusChangedAt: GossipInstant(nanoseconds: 0))
    }

    static func view(_ members: [Member], local: String) -> ClusterView.Snapshot {
        let view = ClusterView(localID: NodeID(local))
        view.update { v in
            v.members = members
            v.ring = HashRing(members: members)
        }
        return view.snapshot
    }

    static func record(_ id: String) -> StreamRecord {
        StreamRecord(id: id, key: StreamIdentifiers.randomKey(for: id), title: id, createdAt: Date(timeIntervalSince1970: 0))
    }

    func testKeysNameTheirStream() {
        let id = StreamIdentifiers.randomID()
        let key = StreamIdentifiers.randomKey(for: id)
        XCTAssertEqual(StreamIdentifiers.streamID(inKey: key), id)
        XCTAssertTrue(StreamIdentifiers.isWellFormed(Substring(key)))
        XCTAssertEqual(key.count, 12 + 1 + 32)
        XCTAssertNotEqual(StreamIdentifiers.randomKey(for: id), key, "the secret part is random")
        for legacy in ["0123456789abcdef0123456789abcdef", "_abc", "short_abc", "UPPERCASEABC_x", "abcdefghijk0_x", ""] {
            XCTAssertNil(StreamIdentifiers.streamID(inKey: legacy), legacy)
        }
    }

    /// Ten members: a node asks a stream's holders (owner and two standbys) and no one else,
    /// by id and by a key with the id in front; only a key from before keys carried their
    /// id is asked of everyone.
    func testALookupAsksOnlyTheStreamsHolders() {
        let members = (0..<10).map { Self.member("n\($0)") } + [Self.member("dead", status: .dead), Self.member("edge", capacity: 0)]
        let view = Self.view(members, local: "edge")
        var asked = 0
        for _ in 0..<200 {
            let id = StreamIdentifiers.randomID()
            let p = view.ring.placement(for: id)!
            let holders = [p.owner] + p.standbys
            XCTAssertEqual(holders.count, 3)
            XCTAssertEqual(PeerRecords.targets(.id(id), view: view, localID: "edge").map(\.id), holders)
            XCTAssertEqual(PeerRecords.targets(.key(StreamIdentifiers.randomKey(for: id)), view: view, localID: "edge").map(\.id), holders)
            // A holder asking leaves itself out.
            XCTAssertEqual(PeerRecords.targets(.id(id), view: view, localID: p.owner.rawValue).map(\.id), p.standbys)
            asked += PeerRecords.targets(.id(id), view: view, localID: "edge").count
        }
        XCTAssertEqual(asked, 600, "three questions per unknown stream, not eleven")
        let legacy = PeerRecords.targets(.key("0123456789abcdef0123456789abcdef"), view: view, localID: "edge").map(\.rawID)
        XCTAssertEqual(Set(legacy), Set((0..<10).map { "n\($0)" }), "every other alive member, the dead one left out")
    }

    /// A node joins: the records whose holders now include it are sent to it, by the nodes
    /// that held them before, and nothing else moves.
    func testARingChangeMovesRecordsToTheirNewHolders() {
        let before = (0..<4).map { Self.member("n\($0)") }
        let after = before + [Self.member("n4")]
        let old = HashRing(members: before), new = HashRing(members: after)
        let records = (0..<300).map { Self.record("s\($0)") }
        var received: [String: Set<String>] = [:]
        for sender in before.map(\.id.rawValue) {
            for (member, sent) in RecordPlacement.moves(records, from: old, to: new, members: after, localID: sender) {
                let holders = { (ring: HashRing, r: StreamRecord) -> [NodeID] in
                    let p = ring.placement(for: r.id)!
                    return [p.owner] + p.standbys
                }
                XCTAssertTrue(sent.allSatisfy { holders(old, $0).contains(NodeID(sender)) }, "only a record's old holders send it")
                XCTAssertTrue(sent.allSatisfy { !holders(old, $0).contains(member.id) }, "a node that held a record is not sent it again")
                XCTAssertTrue(sent.allSatisfy { holders(new, $0).contains(member.id) }, "only to a holder")
                received[member.id.rawValue, default: []].formUnion(sent.map(\.id))
            }
        }
        let gained = Set(records.filter { r in
            let p = new.placement(for: r.id)!, q = old.placement(for: r.id)!
            return ([p.owner] + p.standbys).contains("n4") && !([q.owner] + q.standbys).contains("n4")
        }.map(\.id))
        XCTAssertFalse(gained.isEmpty)
        XCTAssertEqual(received["n4"] ?? [], gained, "the new node gets exactly the records it now holds")
    }

    /// A node starting up held all it has (its old ring was itself alone): once the cluster
    /// forms, each of its records goes to that record's holders.
    func testANodeStartingUpPlacesEverythingItHas() {
        let members = (0..<5).map { Self.member("n\($0)") }
        let ring = HashRing(members: members)
        let records = (0..<50).map { Self.record("s\($0)") }
        let moves = RecordPlacement.moves(records, from: HashRing(nodes: [.init(id: "n0")]), to: ring, members: members, localID: "n0")
        var got: [String: Set<String>] = [:]
        for (m, rs) in moves { got[m.id.rawValue, default: []].formUnion(rs.map(\.id)) }
        for r in records {
            let p = ring.placement(for: r.id)!
            for holder in [p.owner] + p.standbys where holder != "n0" {
                XCTAssertTrue(got[holder.rawValue, default: []].contains(r.id), "\(r.id) to \(holder)")
            }
        }
        XCTAssertNil(got["n0"], "nothing to itself")
    }
}

private extension Member {
    var rawID: String { id.rawValue }
}
