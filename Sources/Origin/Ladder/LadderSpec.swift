// The ladder as operators write it: "name:height:kbps[:maxkbps],..." or "none".
import Foundation

public struct LadderSpecError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { "ladder: \(message)" }
}

extension TranscodeSettings {
    /// Parses "name:height:kbps[:maxkbps],...". nil for "none" (passthrough only).
    public static func parseLadder(_ text: String) throws(LadderSpecError) -> [LadderRung]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "none" { return nil }
        var rungs: [LadderRung] = []
        for item in trimmed.split(separator: ",") {
            let f = item.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 3 || f.count == 4, !f[0].isEmpty, let h = Int(f[1]), h >= 64, h <= 4320, h % 2 == 0,
                  let kbps = Int(f[2]), kbps > 0 else {
                throw LadderSpecError(message: "\"\(item)\" is not name:height:kbps[:maxkbps] (an even height from 64 to 4320)")
            }
            let maxKbps = f.count == 4 ? Int(f[3]) : kbps * 11 / 10
            guard let maxKbps, maxKbps >= kbps else { throw LadderSpecError(message: "\"\(item)\": max rate below the rate") }
            guard f[0] != LiveStream.sourceRendition, f[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                throw LadderSpecError(message: "\"\(f[0])\" cannot name a rendition")
            }
            rungs.append(LadderRung(name: f[0], height: h, videoBitrate: kbps * 1000, maxBitrate: maxKbps * 1000))
        }
        return rungs
    }

    /// These settings with `ladder` (a spec) and `preset` over them; nil when the ladder is "none".
    public func overriding(ladder: String?, preset: String?) throws -> TranscodeSettings? {
        var t = self
        if let ladder {
            guard let rungs = try Self.parseLadder(ladder) else { return nil }
            t.rungs = rungs
        }
        if let preset { t.preset = preset }
        do { try t.validate() } catch { throw LadderSpecError(message: "\(error)") }
        return t
    }
}
