// What every libFuzzer target shares: `STREAMTUBE_FUZZ_SEEDS=dir` makes a target write its seed
// corpus (its own `writeSeeds(to:)`) and exit instead of fuzzing (`ops/fuzz --seeds`).
import Foundation

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    if let dir = ProcessInfo.processInfo.environment["STREAMTUBE_FUZZ_SEEDS"] {
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        writeSeeds(to: dir)
        exit(0)
    }
    return 0
}
