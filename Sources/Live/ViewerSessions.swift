// ViewerSessions: this node's `ViewerSessionTable` behind a lock, as the media routes and the
// fast path see it (they note requests; the clock is read here), and `ViewerReporter`, the
// service that writes what changed to the database every few seconds.
//
// Why the database and not a call to the stream's owner: the figures must outlive the owner
// (failover), and the platform database is already the one store every node shares
// (PostgreSQL, or one SQLite file on one host). Each node writes its own row per session
// (`viewer_sessions`, key stream + session + node), adding what it served since its last
// report, so a session seen on two nodes is one session whose watch time is the sum of what
// each served; the stream's owner (whoever it is now, by the ring) adds a sample of the
// concurrent viewers to `viewer_samples` every few seconds. Nodes with a database each see only
// the sessions they served (their own figures).
import Catalog
import Foundation
import Logging
import NodeMetrics
import ServiceLifecycle
import Synchronization

package final class ViewerSessions: Sendable {
    private let table: Mutex<ViewerSessionTable>
    let clock: @Sendable () -> Double

    package init(table: ViewerSessionTable = ViewerSessionTable(), clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.table = Mutex(table)
        self.clock = clock
    }

    package func notePoll(stream: String, session: ViewerSessionID, rendition: String?, userAgent: String?, referrer: String?) {
        let now = clock()
        let device = DeviceClass.of(userAgent: userAgent)
        table.withLock { _ = $0.notePoll(stream: stream, session: session, rendition: rendition, device: device, referrer: referrer, now: now) }
    }

    package func noteObject(stream: String, session: ViewerSessionID, path: String, bytes: Int) {
        let now = clock()
        table.withLock { $0.noteObject(stream: stream, session: session, path: path, bytes: bytes, now: now) }
    }

    /// `playlist`: a media playlist's text as it left the origin; `base`: its folder.
    package func learnDurations(playlist: String, base: String) {
        table.withLock { $0.learnDurations(playlist: playlist, base: base) }
    }

    package func drain() -> [ViewerSessionReport] {
        let now = clock()
        let (reports, count, refused) = table.withLock { t -> ([ViewerSessionReport], Int, Int) in
            let r = t.drain(now: now)
            return (r, t.count, t.takeRefused())
        }
        NodeMetrics.viewerSessions.record(count)
        if refused > 0 { NodeMetrics.viewerSessionsRefused.increment(by: refused) }
        return reports
    }

    package func restore(_ reports: [ViewerSessionReport]) { table.withLock { $0.restore(reports) } }

    package var count: Int { table.withLock { $0.count } }

    /// Whether this node serves a session (by its id as text) of a stream now.
    package func serves(stream: String, session: String) -> Bool {
        guard let id = ViewerSessionID(session) else { return false }
        return table.withLock { $0.serves(stream: stream, session: id) }
    }

    /// The session a media request names (`vsid=` in its query), if well formed.
    package static func session(inQuery query: String?) -> ViewerSessionID? {
        guard let query else { return nil }
        for item in query.split(separator: "&") where item.hasPrefix("vsid=") {
            return ViewerSessionID(item.dropFirst(5))
        }
        return nil
    }

    /// The referrer's host a page gives (`ref=`), or the Referer header's host: letters, digits,
    /// dots, dashes and a port, at most 100 characters.
    package static func referrerHost(query: String?, header: String?) -> String? {
        var host: Substring?
        if let query, let item = query.split(separator: "&").first(where: { $0.hasPrefix("ref=") }) {
            host = item.dropFirst(4)
        } else if let header, let url = URL(string: header), let h = url.host {
            host = Substring(url.port.map { "\(h):\($0)" } ?? h)
        }
        guard let host, !host.isEmpty, host.count <= 100,
              host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":") }) else { return nil }
        return host.lowercased()
    }
}

/// Writes this node's session reports to the database every `interval`; on the streams this
/// node owns, adds a sample of the concurrent viewers.
package struct ViewerReporter: Service {
    let sessions: ViewerSessions
    let store: ViewerFigureStore
    let nodeID: String
    let region: String
    let owns: @Sendable (String) -> Bool
    let interval: Duration
    let logger: Logger

    package init(sessions: ViewerSessions, store: ViewerFigureStore, nodeID: String, region: String,
                 owns: @escaping @Sendable (String) -> Bool, interval: Duration = .seconds(2), logger: Logger) {
        self.sessions = sessions
        self.store = store
        self.nodeID = nodeID
        self.region = region
        self.owns = owns
        self.interval = interval
        self.logger = logger
    }

    package func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: interval)
            await tick()
        }
        await tick()
    }

    /// One round: the reports, then the samples of the streams owned here.
    package func tick() async {
        let reports = sessions.drain()
        if !reports.isEmpty {
            do {
                try await store.save(reports, node: nodeID, region: region)
            } catch {
                sessions.restore(reports)
                NodeMetrics.viewerReportFailures.increment()
                logger.warning("viewer figures not written; kept for the next round", metadata: ["error": "\(error)"])
            }
        }
        let now = sessions.clock()
        do {
            for stream in try await store.streamsWatched(since: now - 60) where owns(stream) {
                try await store.sample(stream: stream, now: now)
            }
        } catch {
            logger.warning("viewer samples not written", metadata: ["error": "\(error)"])
        }
    }
}
