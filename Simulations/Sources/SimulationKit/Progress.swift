// A one-line progress bar on stderr, redrawn at most ten times a second.

import Foundation

public final class ProgressBar {
    let label: String
    let enabled: Bool
    var lastDraw = Date.distantPast
    let start = Date()

    public init(label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled
    }

    public func update(_ fraction: Double) {
        guard enabled, Date().timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = Date()
        let width = 30
        let f = min(max(fraction, 0), 1)
        let filled = Int(f * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(format: "\r%@ [%@] %5.1f%% %6.1fs", label, bar, f * 100, Date().timeIntervalSince(start))
        FileHandle.standardError.write(Data(line.utf8))
    }

    public func done() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
