/// Decides when a transcoder that cannot keep up must give up its highest rung.
///
/// A pure state machine: it is told what happened (a frame was processed, the input queue
/// overflowed) in media time and measured work time, and answers whether to shed one rung
/// now. It owns no clock and no codec, so tests drive it with made-up numbers.
///
/// - Speed is media seconds per wall second of work, measured over windows of
///   `windowSeconds` of media. A window slower than `speedThreshold` sheds.
/// - A queue overflow sheds at once.
/// - After a shed, at least one window of media must pass before the next one, so the
///   effect of a shed is seen before deciding again.
struct ShedPolicy: Sendable, Equatable {
    enum Reason: Sendable, Equatable, CustomStringConvertible {
        case queueFull
        case slow(speed: Double)

        var description: String {
            switch self {
            case .queueFull: return "input queue full: encoding is behind real time"
            case .slow(let speed):
                return "encoding at \(Double(Int(speed * 100)) / 100)x real time, below the threshold"
            }
        }
    }

    let speedThreshold: Double
    let windowMs: Int64

    private var windowStartMs: Int64? = nil
    private var windowBusySeconds: Double = 0
    private var lastShedMs: Int64? = nil
    private var lastMediaMs: Int64? = nil

    /// The speed of the last complete window (nil before the first).
    private(set) var lastWindowSpeed: Double? = nil

    init(speedThreshold: Double, windowSeconds: Double) {
        self.speedThreshold = speedThreshold
        self.windowMs = max(1, Int64(windowSeconds * 1000))
    }

    /// A frame at media time `mediaMs` took `busySeconds` of work. Returns a reason when
    /// a rung should be shed now.
    mutating func frameProcessed(mediaMs: Int64, busySeconds: Double) -> Reason? {
        defer { lastMediaMs = mediaMs }
        // A timestamp jump (reconnect, wrap) starts a fresh window instead of faking a speed.
        if let last = lastMediaMs, mediaMs < last || mediaMs - last > 10_000 {
            windowStartMs = nil
            lastShedMs = nil
        }
        guard let start = windowStartMs else {
            windowStartMs = mediaMs
            windowBusySeconds = busySeconds
            return nil
        }
        windowBusySeconds += busySeconds
        let span = mediaMs - start
        guard span >= windowMs else { return nil }
        let speed = windowBusySeconds > 0 ? Double(span) / 1000 / windowBusySeconds : .infinity
        lastWindowSpeed = speed
        windowStartMs = mediaMs
        windowBusySeconds = 0
        guard speedThreshold > 0, speed < speedThreshold, coolDownOver(at: mediaMs) else { return nil }
        return .slow(speed: speed)
    }

    /// The input queue overflowed while the last processed frame was at `mediaMs`.
    func queueOverflowed(mediaMs: Int64) -> Reason? {
        coolDownOver(at: mediaMs) ? .queueFull : nil
    }

    /// A rung was shed at media time `mediaMs`.
    mutating func didShed(mediaMs: Int64) {
        lastShedMs = mediaMs
        windowStartMs = nil
        windowBusySeconds = 0
    }

    private func coolDownOver(at mediaMs: Int64) -> Bool {
        guard let last = lastShedMs else { return true }
        return mediaMs - last >= windowMs || mediaMs < last
    }
}
