// The member table's bookkeeping (index, id order, counts by status, tombstones) against a
// plain dictionary, through random inserts, changes and removals; the slot index alone with
// hashes that collide on purpose.

import XCTest
@testable import Gossip

final class MemberTableTests: XCTestCase {
    func testSlotIndexAgreesWithADictionaryUnderCollisions() {
        var rng = GossipRandom(seed: 11)
        var keys: [Int?] = []  // slot -> key
        var model: [Int: Int] = [:]  // key -> slot
        var index = SlotIndex()
        let hashOf = { (k: Int) in k % 7 }  // few distinct hashes: long probe runs
        for _ in 0..<5000 {
            let key = Int.random(in: 0..<300, using: &rng)
            let found = index.find(hash: hashOf(key)) { keys[$0] == key }
            XCTAssertEqual(found, model[key])
            if let slot = found {
                index.remove(slot: slot, hash: hashOf(key)) { [keys] in hashOf(keys[$0]!) }
                keys[slot] = nil
                model[key] = nil
            } else {
                let slot = keys.firstIndex(of: nil) ?? keys.count
                if slot == keys.count { keys.append(key) } else { keys[slot] = key }
                index.insert(slot: slot, hash: hashOf(key)) { [keys] in hashOf(keys[$0]!) }
                model[key] = slot
            }
            XCTAssertEqual(index.count, model.count)
        }
        for key in 0..<300 { XCTAssertEqual(index.find(hash: hashOf(key)) { keys[$0] == key }, model[key]) }
    }

    func testBookkeepingMatchesAPlainDictionary() {
        var rng = GossipRandom(seed: 5)
        var table = MemberTable()
        var model: [NodeID: Member] = [:]
        let names = (0..<120).map { NodeID("m\($0)") }
        var now = GossipInstant.zero
        for step in 0..<6000 {
            now = now + .milliseconds(Int64.random(in: 0..<50, using: &rng))
            let id = names.randomElement(using: &rng)!
            let status = MemberStatus(rawValue: UInt8.random(in: 0...3, using: &rng))!
            if let slot = table.slot(of: id) {
                XCTAssertEqual(table[slot], model[id])
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    table.remove(slot)
                    model[id] = nil
                } else {
                    table.update(slot) {
                        $0.status = status
                        $0.statusChangedAt = now
                        $0.incarnation += 1
                    }
                    model[id]!.status = status
                    model[id]!.statusChangedAt = now
                    model[id]!.incarnation += 1
                }
            } else {
                let m = Member(metadata: T.meta(id.rawValue), incarnation: 0, status: status, statusChangedAt: now)
                let slot = table.insert(m)
                XCTAssertEqual(table.slot(of: m.metadataBox), slot)
                model[id] = m
            }
            XCTAssertEqual(table.count, model.count, "step \(step)")
            XCTAssertEqual(table.slotsByID.map { table[Int($0)].id }, model.keys.sorted())
            func count(_ s: MemberStatus) -> Int { model.values.filter { $0.status == s }.count }
            XCTAssertEqual(
                [table.aliveCount, table.suspectCount, table.deadCount, table.leftCount],
                [count(.alive), count(.suspect), count(.dead), count(.left)])
            let oldest = model.values.filter(\.status.isDeadOrLeft).map(\.statusChangedAt).min()
            XCTAssertEqual(table.oldestTombstone?.since, oldest, "step \(step)")
            if Int.random(in: 0..<50, using: &rng) == 0 {
                // Reaping: every tombstone up to a point comes out once, oldest first.
                let limit = now - .milliseconds(500)
                let due = table.popTombstones(through: limit)
                let expected = model.values.filter { $0.status.isDeadOrLeft && $0.statusChangedAt <= limit }
                XCTAssertEqual(Set(due.map { table[Int($0.slot)].id }), Set(expected.map(\.id)))
                XCTAssertEqual(due.map(\.since), due.map(\.since).sorted())
                for t in due {
                    model[table[Int(t.slot)].id] = nil
                    table.remove(Int(t.slot))
                }
            }
        }
    }
}
