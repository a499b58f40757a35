// RecorderDeletion: removing this node's copy of a recording — its folder (media, manifest,
// MP4), what the recorder keeps of it in memory, and this node's row in `recordings`. The one
// way a copy goes: deleting a recording (`RecordingDeletions`, on every holder) and retention
// both call it. Done on the recorder's queue, so no write of the recording is under way while
// its folder goes, and the row is removed in order with the copy's state reports (a report
// queued before cannot bring the row back).
import Catalog
import Foundation
import Origin

extension Recorder {
    /// Removes this node's copy of recording `id`; false when this node held none. Throws when
    /// the folder could not be removed (the copy stays listed then).
    @discardableResult
    package func deleteCopy(id: String) async throws -> Bool {
        guard let parts = RecordingManifest.parse(id: id), StreamIdentifiers.isWellFormed(Substring(parts.stream)) else { return false }
        let folder = self.folder(id, stream: parts.stream)
        let held: Bool = try await withCheckedThrowingContinuation { (c: CheckedContinuation<Bool, any Error>) in
            queue.async {
                let inMemory = self.state.withLock { s -> Bool in
                    guard s.streams[parts.stream]?.current?.id == id else { return false }
                    s.streams[parts.stream]?.current = nil
                    s.streams[parts.stream]?.unsaved = 0
                    return true
                }
                let onDisk = !self.files.list(folder).isEmpty
                do {
                    try self.files.remove(folder)
                    c.resume(returning: inMemory || onDisk)
                } catch {
                    c.resume(throwing: error)
                }
            }
        }
        reporter.yield(.removed(id: id))
        if held { logger.info("recording copy deleted", metadata: ["stream": "\(parts.stream)", "recording": "\(id)"]) }
        return held
    }

    /// Whether this node holds a copy of recording `id` (its folder, or the one being made).
    package func holds(id: String) -> Bool { manifest(id: id) != nil }
}
