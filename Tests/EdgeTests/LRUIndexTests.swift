import XCTest
@testable import Edge

final class LRUIndexTests: XCTestCase {
    func testOrderBytesAndVictims() {
        var lru = LRUIndex<String>()
        lru.insert("a", size: 10)
        lru.insert("b", size: 20)
        lru.insert("c", size: 30)
        XCTAssertEqual(lru.bytes, 60)
        XCTAssertEqual(lru.keysOldestFirst, ["a", "b", "c"])
        lru.touch("a")
        XCTAssertEqual(lru.keysOldestFirst, ["b", "c", "a"])
        XCTAssertEqual(lru.victims(toFit: 15, budget: 70), ["b"])
        XCTAssertEqual(lru.victims(toFit: 0, budget: 60), [])
        XCTAssertEqual(lru.victims(toFit: 41, budget: 70), ["b", "c"])
        // Replacing "c" (30) with 35 bytes needs only 5 more: "b" goes, "c" is not a victim.
        XCTAssertEqual(lru.victims(toFit: 35, budget: 60, excluding: "c"), ["b"])
        lru.insert("b", size: 5)
        XCTAssertEqual(lru.bytes, 45)
        XCTAssertEqual(lru.keysOldestFirst, ["c", "a", "b"])
        XCTAssertEqual(lru.remove("a"), 10)
        XCTAssertNil(lru.remove("a"))
        XCTAssertEqual(lru.bytes, 35)
        XCTAssertEqual(lru.keysOldestFirst, ["c", "b"])
        lru.insert("d", size: 1)
        XCTAssertEqual(lru.keysOldestFirst, ["c", "b", "d"])
        XCTAssertEqual(lru.count, 3)
    }

    func testRebuildFromStampsKeepsClockAhead() {
        var lru = LRUIndex<String>()
        lru.insert("x", size: 1, stamp: 100)
        lru.insert("y", size: 1, stamp: 200)
        XCTAssertEqual(lru.touch("x"), 201)
        XCTAssertEqual(lru.keysOldestFirst, ["y", "x"])
    }

    func testRandomAgainstReferenceModel() {
        var rng = SeededRandom(seed: 7)
        var lru = LRUIndex<Int>()
        var model: [(key: Int, size: Int)] = []   // oldest first
        for _ in 0..<5000 {
            let key = Int.random(in: 0..<50, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                let size = Int.random(in: 0..<100, using: &rng)
                lru.insert(key, size: size)
                model.removeAll { $0.key == key }
                model.append((key, size))
            case 1:
                lru.touch(key)
                if let i = model.firstIndex(where: { $0.key == key }) { model.append(model.remove(at: i)) }
            default:
                lru.remove(key)
                model.removeAll { $0.key == key }
            }
            XCTAssertEqual(lru.keysOldestFirst, model.map(\.key))
            XCTAssertEqual(lru.bytes, model.reduce(0) { $0 + $1.size })
        }
    }
}
