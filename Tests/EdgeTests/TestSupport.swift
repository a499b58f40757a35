import Foundation
import XCTest
import Synchronization
@testable import Edge

/// Collects logger lines from any thread.
final class LogSink: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var warnings: [String] { all.filter { $0.contains("warning") } }
    var logger: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
}

/// SplitMix64: a seeded random source so failures replay.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Incompressible bytes (like already-compressed media), deterministic per seed.
func mediaBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SeededRandom(seed: seed)
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { raw in
        var i = 0
        while i + 8 <= count {
            raw.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count { raw[i] = UInt8(truncatingIfNeeded: rng.next()); i += 1 }
    }
    return out
}

func makeTempDirectory(_ name: String = #function) -> URL {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("edge-tests-\(safe)-\(UUID().uuidString.prefix(8))", isDirectory: true)
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Files of the RocksDB folder of a store directory.
func dbFiles(_ dir: URL) -> [URL] {
    let db = dir.appendingPathComponent("db")
    return ((try? FileManager.default.contentsOfDirectory(at: db, includingPropertiesForKeys: nil)) ?? [])
}

func overwriteWithGarbage(_ url: URL, seed: UInt64) throws {
    let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 4096
    try Data(mediaBytes(max(size, 64), seed: seed)).write(to: url)
}

/// Overwrites a file with garbage except its first `head` and last `tail` bytes.
func overwriteWithGarbage(_ url: URL, seed: UInt64, keepingHead head: Int, tail: Int) throws {
    var bytes = [UInt8](try Data(contentsOf: url))
    precondition(bytes.count > head + tail, "\(url.lastPathComponent) is too short to damage its middle")
    let garbage = mediaBytes(bytes.count - head - tail, seed: seed)
    bytes.replaceSubrange(head..<(bytes.count - tail), with: garbage)
    try Data(bytes).write(to: url)
}

/// A shared counter for `@Sendable` closures.
final class Counter: Sendable {
    private let a = Atomic<Int>(0)
    @discardableResult func increment() -> Int { a.add(1, ordering: .relaxed).newValue }
    var value: Int { a.load(ordering: .relaxed) }
}

/// A shared flag for `@Sendable` closures.
final class Flag: Sendable {
    private let a = Atomic<Bool>(false)
    func set() { a.store(true, ordering: .relaxed) }
    var isSet: Bool { a.load(ordering: .relaxed) }
}

/// Compares byte arrays without printing megabytes on failure.
func XCTAssertSameBytes(_ a: [UInt8]?, _ b: [UInt8]?, _ message: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    if a != b {
        let d = { (x: [UInt8]?) in x.map { "\($0.count) bytes" } ?? "nil" }
        XCTFail("bytes differ: \(d(a)) vs \(d(b)) \(message)", file: file, line: line)
    }
}
