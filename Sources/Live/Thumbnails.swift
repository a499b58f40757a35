// Thumbnails: the pictures of this node's streams. While a stream is published here (this node
// is its origin) a picture is taken from a source keyframe shortly after it starts and about
// once a minute after that, and kept in the `ThumbnailStore`. Its owner may upload one instead,
// on any node: the upload is re-encoded here and kept with the stream's record
// (`StreamCatalog.setThumbnail`), so every node shows it. Pictures are made by the codecs the app
// injects (`ThumbnailMakers`: FFmpeg's, from the `Transcode` target) on one queue of their own,
// one at a time, never on the ingest's or an event loop's thread.
import Catalog
import Dispatch
import Logging
import Origin
import ServiceLifecycle
import Synchronization

/// What makes a thumbnail's JPEG, handed in by the app. Each throws an error whose
/// description a person can act on.
package struct ThumbnailMakers: Sendable {
    /// From a source keyframe: the avcC record and the access unit.
    package var fromKeyframe: @Sendable (_ avcC: [UInt8], _ accessUnit: [UInt8]) throws -> [UInt8]
    /// From an uploaded image's bytes.
    package var fromImage: @Sendable (_ bytes: [UInt8]) throws -> [UInt8]

    package init(fromKeyframe: @escaping @Sendable ([UInt8], [UInt8]) throws -> [UInt8],
                 fromImage: @escaping @Sendable ([UInt8]) throws -> [UInt8]) {
        self.fromKeyframe = fromKeyframe
        self.fromImage = fromImage
    }
}

package final class Thumbnails: Service, Sendable {
    /// When pictures are taken of a live stream.
    package struct Schedule: Sendable {
        /// After the stream starts (so the picture is not the first black frame of a camera).
        package var first: Duration = .seconds(3)
        /// Between pictures while it stays live.
        package var interval: Duration = .seconds(60)
        /// How often the streams are looked at.
        package var tick: Duration = .seconds(1)
        package init() {}
    }

    package let store: ThumbnailStore
    private let makers: ThumbnailMakers
    private let streams: LiveStreams
    private let schedule: Schedule
    private let logger: Logger
    /// One picture at a time: a decoded upload may be large, and the node has other work.
    private let queue = DispatchQueue(label: "streamtube.thumbnails", qos: .utility)

    /// Per stream: the session it was first seen publishing in, when, and the last picture taken.
    private struct Watch {
        var session: Int
        var since: ContinuousClock.Instant
        var taken: ContinuousClock.Instant?
        var failures = 0
    }
    private let watching = Mutex<[String: Watch]>([:])

    package init(store: ThumbnailStore, makers: ThumbnailMakers, streams: LiveStreams, schedule: Schedule = Schedule(), logger: Logger) {
        self.store = store
        self.makers = makers
        self.streams = streams
        self.schedule = schedule
        self.logger = logger
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.schedule.tick)
                await self.captureDue()
            }
        }
    }

    /// Takes a picture of every stream published here that is due one.
    package func captureDue(now: ContinuousClock.Instant = .now) async {
        var due: [(String, SourceKeyframe)] = []
        let publishing = streams.all.compactMap { id, live in live.latestKeyframe.map { (id, $0) } }
        watching.withLock { w in
            let ids = Set(publishing.map(\.0))
            w = w.filter { ids.contains($0.key) }
            for (id, keyframe) in publishing {
                if w[id]?.session != keyframe.session { w[id] = Watch(session: keyframe.session, since: now) }
                let watch = w[id]!
                // Fewer tries after failures: a stream the decoder cannot read is not decoded every second.
                let wait = watch.taken == nil && watch.failures == 0 ? schedule.first : schedule.interval
                if now - (watch.taken ?? watch.since) >= wait {
                    w[id]!.taken = now
                    due.append((id, keyframe))
                }
            }
        }
        for (id, keyframe) in due {
            do {
                let jpeg = try await onQueue { try self.makers.fromKeyframe(keyframe.decoderConfiguration, keyframe.accessUnit) }
                try store.save(jpeg, id: id)
            } catch {
                watching.withLock { $0[id]?.failures += 1 }
                logger.warning("thumbnail: no picture from the live stream", metadata: ["stream": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Makes the stream's thumbnail from an uploaded image and keeps it with the record; it is
    /// shown instead of the live pictures, on every node, until `useLive`. Throws the maker's
    /// error when the image is refused (nothing is kept then).
    package func upload(id: String, image: [UInt8]) async throws {
        let jpeg = try await picture(fromUpload: image)
        let record = try await streams.catalog.setThumbnail(id: id, jpeg: jpeg)
        logger.info("thumbnail uploaded", metadata: ["stream": "\(id)", "bytes": "\(jpeg.count)", "version": "\(record?.thumbnail ?? "-")"])
    }

    /// A JPEG of an uploaded image (checked, decoded and re-encoded), kept nowhere: the caller
    /// keeps it (a stream's record, a recording's details). Throws the maker's error when refused.
    package func picture(fromUpload image: [UInt8]) async throws -> [UInt8] {
        try await onQueue { try self.makers.fromImage(image) }
    }

    /// A JPEG of a keyframe (a recording's first picture), made on the same queue.
    package func picture(avcC: [UInt8], accessUnit: [UInt8]) async throws -> [UInt8] {
        try await onQueue { try self.makers.fromKeyframe(avcC, accessUnit) }
    }

    /// Goes back to the pictures taken from the live stream, on every node.
    package func useLive(id: String) async throws {
        _ = try await streams.catalog.removeThumbnail(id: id)
    }

    private func onQueue<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
