// IngestFigures: what the broadcaster sends, counted as it arrives — totals for the status,
// and a sliding window of input for the health report. Time is passed in (seconds on a
// monotonic clock), so the figures are plain arithmetic.

/// Counters and recent history of a stream's input.
struct IngestFigures {
    /// When (`LiveStream.clock()`) the publisher last sent something, in any session.
    var lastInputAt: Double?
    /// How far back the sliding windows reach, in seconds.
    static let window = 5.0

    private(set) var bytesIn: UInt64 = 0
    private(set) var videoFrames: UInt64 = 0
    private(set) var audioFrames: UInt64 = 0
    /// Source frames dropped as malformed this session (up to the next keyframe each time).
    var sourceCorruptFrames = 0
    private var inputWindow: [(at: Double, bytes: Int)] = []
    private var frameWindow: [Double] = []
    /// The last two keyframes' timestamps this session.
    private var keyframeTimestamps: [UInt32] = []
    private var lastVideoTimestamp: UInt32?
    private var lastAudioTimestamp: UInt32?

    /// A new publishing session: its keyframes and corrupt frames are counted afresh.
    mutating func beginSession() {
        sourceCorruptFrames = 0
        keyframeTimestamps = []
    }

    /// A message of `bytes` arrived at `now`; what fell out of the windows is dropped.
    mutating func noteInput(bytes: Int, at now: Double) {
        lastInputAt = now
        bytesIn += UInt64(bytes)
        inputWindow.append((now, bytes))
        while let first = inputWindow.first, now - first.at > Self.window { inputWindow.removeFirst() }
        while let first = frameWindow.first, now - first > Self.window { frameWindow.removeFirst() }
    }

    mutating func noteVideoFrame(timestamp: UInt32, keyframe: Bool, at now: Double) {
        videoFrames += 1
        frameWindow.append(now)
        lastVideoTimestamp = timestamp
        if keyframe {
            keyframeTimestamps.append(timestamp)
            if keyframeTimestamps.count > 2 { keyframeTimestamps.removeFirst() }
        }
    }

    mutating func noteAudioFrame(timestamp: UInt32) {
        audioFrames += 1
        lastAudioTimestamp = timestamp
    }

    /// Bits per second over the input window (at least half a second of it).
    var inputBitrate: Int {
        let span = max(0.5, min(Self.window, (inputWindow.last?.at ?? 0) - (inputWindow.first?.at ?? 0)))
        let bits = Double(inputWindow.reduce(0) { $0 + $1.bytes } * 8)
        return Int(bits / span)
    }

    /// Video frames per second over the window, to a tenth.
    var frameRate: Double {
        let span = max(0.5, min(Self.window, (frameWindow.last ?? 0) - (frameWindow.first ?? 0)))
        let fps = frameWindow.count > 1 ? Double(frameWindow.count - 1) / span : 0
        return (fps * 10).rounded() / 10
    }

    /// Time between the last two keyframes, in seconds.
    var keyframeInterval: Double? {
        let k = keyframeTimestamps
        return k.count == 2 ? Double(Int64(k[1]) - Int64(k[0])) / 1000 : nil
    }

    /// Seconds since the last keyframe, by the media's timestamps: a lower bound on the
    /// keyframe interval before a second keyframe has come.
    var sinceKeyframe: Double? {
        guard let k = keyframeTimestamps.last, let v = lastVideoTimestamp else { return nil }
        return Double(Int64(v) - Int64(k)) / 1000
    }

    /// Last video timestamp minus last audio timestamp, in milliseconds.
    var audioVideoDriftMs: Int? {
        lastVideoTimestamp.flatMap { v in lastAudioTimestamp.map { Int(Int64(v) - Int64($0)) } }
    }
}
