// ChannelRecording: a channel's recording settings — whether its streams are recorded unless a
// stream says otherwise, and how long its recordings' copies are kept (days, bytes; oldest
// first). Kept on the account, and copied into each of its streams' records so that every node
// holding a stream (its origin and standbys, whatever database they share) applies them.
import Foundation

package struct ChannelRecording: Codable, Equatable, Sendable {
    /// Streams are recorded unless their own setting says otherwise.
    package var records = true
    /// Copies of recordings that started more than this many days ago are removed.
    package var keepDays: Int?
    /// The channel's recordings' copies on a node are kept to this many bytes, oldest removed first.
    package var keepBytes: Int?

    package init(records: Bool = true, keepDays: Int? = nil, keepBytes: Int? = nil) {
        self.records = records
        self.keepDays = keepDays
        self.keepBytes = keepBytes
    }

    package var keepsEverything: Bool { keepDays == nil && keepBytes == nil }

    package static let maxDays = 36_500

    /// These settings if they make sense, or why not.
    package func checked() throws -> ChannelRecording {
        if let d = keepDays, !(1...Self.maxDays).contains(d) {
            throw StreamError.badDetails("recordings are kept a whole number of days from 1 to \(Self.maxDays) (keepRecordingsDays), got \(d)")
        }
        if let b = keepBytes, b < 1 << 20 {
            throw StreamError.badDetails("the bytes of recordings kept are at least 1048576, 1 MiB (keepRecordingsBytes), got \(b)")
        }
        return self
    }

    /// As kept in a column (JSON); nil for the defaults.
    package var column: String? {
        self == ChannelRecording() ? nil : String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self)
    }

    package init(column: String?) {
        self = column.flatMap { try? JSONDecoder().decode(ChannelRecording.self, from: Data($0.utf8)) } ?? ChannelRecording()
    }
}

/// A channel's recording settings with the sizes the studio shows beside them.
package struct ChannelRecordingFigures: Sendable, Equatable {
    package var settings: ChannelRecording
    /// The channel's recordings, each counted once (the largest copy of each).
    package var channelBytes: Int
    /// This node's recording copies (every channel's), as of its last retention pass; nil: it records nothing.
    package var nodeBytes: Int?
    /// This node's budget for them (`--recordings-max-bytes`); nil: none.
    package var nodeMaxBytes: Int?

    package init(settings: ChannelRecording, channelBytes: Int, nodeBytes: Int?, nodeMaxBytes: Int?) {
        self.settings = settings
        self.channelBytes = channelBytes
        self.nodeBytes = nodeBytes
        self.nodeMaxBytes = nodeMaxBytes
    }
}
