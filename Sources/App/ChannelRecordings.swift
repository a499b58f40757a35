// ChannelRecordings: a channel's recording settings (recorded by default or not, retention) as
// the API and the studio read and change them. They are kept on the account and copied into
// each of the channel's stream records, which carry them to every node holding a stream.
import Accounts
import Catalog
import Live

struct ChannelRecordings: Sendable {
    let channels: ChannelStore
    let catalog: StreamCatalog
    let store: RecordingStore
    let sweeper: RecordingSweeper?

    func figures(owner: String) async throws -> ChannelRecordingFigures {
        let settings = try await channels.recording(of: owner)
        var bytes = 0
        for r in catalog.all where r.owner == owner {
            bytes += try await store.recordings(stream: r.id).reduce(0) { $0 + $1.recording.bytes }
        }
        return ChannelRecordingFigures(settings: settings, channelBytes: bytes, nodeBytes: sweeper.map { $0.heldBytes },
                                       nodeMaxBytes: sweeper?.maxBytes)
    }

    /// Keeps new settings (checked: `StreamError.badDetails` says why not) and gives them to every stream of the channel.
    func set(owner: String, _ settings: ChannelRecording) async throws -> ChannelRecordingFigures {
        let checked = try settings.checked()
        try await channels.setRecording(checked, for: owner)
        _ = try await catalog.setChannelRecording(owner: owner, checked)
        sweeper?.poke()
        return try await figures(owner: owner)
    }
}
