// RecordingDeletions: a deleted recording goes from every node that holds a copy (origin's and
// standby's, wherever they are now). Deleting leaves a tombstone in `recording_details` (the
// database every node sharing it reads), removes this node's copy at once, and tells the other
// alive nodes (`POST /internal/recordings/deleted`, a cluster token covering the body: nodes
// with databases of their own keep the tombstone too). Every node with a recorder then looks at
// its copies against the tombstones — at start, on every change notice of the recordings'
// channel (at most once every `minInterval`), and every `interval` — so a holder that was away
// or missed the request deletes its copy when it learns of it. Viewers of a deleted recording
// get 404 from the media routes, which ask `RecordingCatalog` on every request.
import AsyncHTTPClient
import Catalog
import Cluster
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Origin
import ServiceLifecycle
import Synchronization

package final class RecordingDeletions: Service, Sendable {
    /// Tells the other nodes that recordings were deleted (id and stream).
    package typealias Tell = @Sendable (_ deleted: [DeletedRecording]) async -> Void

    package let recorder: Recorder?
    package let catalog: RecordingCatalog
    private let tell: Tell
    private let logger: Logger
    private let interval: Duration
    private let minInterval: Duration
    private let lastSweep = Mutex<ContinuousClock.Instant?>(nil)

    package init(recorder: Recorder?, catalog: RecordingCatalog, tell: @escaping Tell = { _ in }, interval: Duration = .seconds(60),
                 minInterval: Duration = .seconds(1), logger: Logger) {
        self.recorder = recorder
        self.catalog = catalog
        self.tell = tell
        self.interval = interval
        self.minInterval = minInterval
        self.logger = logger
    }

    /// Deletes a recording: the tombstone, this node's copy, then the other nodes are told.
    package func delete(id: String, stream: String) async throws {
        try await catalog.store.markDeleted(id: id, stream: stream)
        catalog.forget(id)
        try await deleteHere(id)
        await tell([DeletedRecording(id: id, stream: stream)])
    }

    /// What another node told of: the tombstone kept here too, then this node's copy deleted.
    package func take(_ deleted: [DeletedRecording]) async throws {
        for d in deleted {
            if try await catalog.store.details(id: d.id)?.deletedAt == nil { try await catalog.store.markDeleted(id: d.id, stream: d.stream) }
            catalog.forget(d.id)
            try await deleteHere(d.id)
        }
    }

    private func deleteHere(_ id: String) async throws {
        guard let recorder else { return }
        do { try await recorder.deleteCopy(id: id) } catch {
            logger.error("recording copy not deleted: it is tried again", metadata: ["recording": "\(id)", "error": "\(Recorder.describe(error))"])
            throw error
        }
    }

    /// Deletes every copy held here whose recording has a tombstone; the number deleted.
    @discardableResult
    package func sweep() async -> Int {
        lastSweep.withLock { $0 = .now }
        guard let recorder else { return 0 }
        let held = recorder.heldRecordings()
        guard !held.isEmpty else { return 0 }
        let gone: Set<String>
        do { gone = Set(try await catalog.store.deleted().map(\.id)) } catch {
            logger.warning("deleted recordings not read", metadata: ["error": "\(Database.explain(error))"])
            return 0
        }
        var deleted = 0
        for id in held where gone.contains(id) {
            if (try? await recorder.deleteCopy(id: id)) == true { deleted += 1 }
        }
        if deleted > 0 { logger.info("copies of deleted recordings removed", metadata: ["copies": "\(deleted)"]) }
        return deleted
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await self.catalog.followChanges { _ in
                        guard self.recorder != nil else { return }
                        let due = self.lastSweep.withLock { last in last.map { ContinuousClock.now - $0 >= self.minInterval } ?? true }
                        if due { await self.sweep() }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        await self.sweep()
                        try? await Task.sleep(for: self.interval)
                    }
                }
                await group.waitForAll()
            }
        }
    }

    // MARK: Between nodes

    package static let path = "/internal/recordings/deleted"
    static let maxBatch = 500

    /// `POST /internal/recordings/deleted`: recordings deleted on another node (a cluster token
    /// for `records` covering the body).
    package func routes(tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .records))
        routes.post(RouterPath(Self.path)) { request, context -> Response in
            let body = try await PeerRecords.signedBody(request, context)
            let deleted: [DeletedRecording]
            do { deleted = try JSONDecoder().decode([DeletedRecording].self, from: Data(buffer: body)) } catch {
                throw Problem.badRequest("not a list of deleted recordings: \(error)")
            }
            guard deleted.count <= Self.maxBatch else { throw Problem.badRequest("at most \(Self.maxBatch) recordings at once") }
            for d in deleted {
                guard let parts = RecordingManifest.parse(id: d.id), parts.stream == d.stream,
                      StreamIdentifiers.isWellFormed(Substring(d.stream)) else {
                    throw Problem.badRequest("malformed recording id \(d.id.prefix(100))")
                }
            }
            try await self.take(deleted)
            return Response(status: .noContent)
        }
        return routes
    }

    /// Tells every other alive member (a few at a time); those that cannot be reached learn of it
    /// from the tombstone (a shared database) when they sweep.
    package static func tellPeers(_ deleted: [DeletedRecording], router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                                  localID: String, logger: Logger) async {
        guard !deleted.isEmpty, let body = try? JSONEncoder().encode(deleted) else { return }
        let failed = await PeerRecordingDetails.tellAll(body, path: path, router: router, client: client, tokens: tokens, localID: localID)
        if failed > 0 {
            logger.warning("recording deletion not told to every node: they delete their copies from the tombstone",
                           metadata: ["recordings": "\(deleted.map(\.id).joined(separator: ","))", "failed": "\(failed)"])
        }
    }
}

/// A deleted recording, as one node tells another.
package struct DeletedRecording: Codable, Equatable, Sendable {
    package var id: String
    package var stream: String

    package init(id: String, stream: String) {
        self.id = id
        self.stream = stream
    }
}

extension Recorder {
    /// The ids of the recordings this node holds a folder of.
    package func heldRecordings() -> [String] {
        files.list(directory).filter { StreamIdentifiers.isWellFormed(Substring($0)) }.flatMap { stream in
            files.list(directory + "/" + stream).filter { RecordingManifest.parse(id: $0)?.stream == stream }
        }.sorted()
    }
}
