// AnalyticsPages: the viewer figures in the studio, of a stream (`/studio/streams/{id}/analytics`,
// for its broadcaster, co-hosts and admins) and of a recording (`/studio/recordings/{id}/analytics`,
// for its stream's): the numbers (updated every few seconds by `site.js` from `analytics.json`),
// the concurrent viewers over time drawn here as SVG (`ViewerPlot`) with the numbers as a table
// too, breakdowns by region, rendition, device and referrer, and a CSV. Both pages are one
// template and one set of routes (`Subject`). The figures are the cluster's (`ViewerFigureStore`,
// Catalog); a recording's are kept under its id.
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird

/// A recording as its figures page needs it, handed in by the app: its stream and its title; nil
/// when there is no such recording (or it was deleted).
package typealias RecordingLookup = @Sendable (_ id: String) async throws -> (stream: StreamRecord, title: String)?

package struct AnalyticsPages: Sendable {
    let figures: ViewerFigureStore
    let catalog: StreamCatalog
    let renderer: PageRenderer
    /// nil: no recording pages.
    let recording: RecordingLookup?
    let clock: @Sendable () -> Double

    package init(figures: ViewerFigureStore, catalog: StreamCatalog, renderer: PageRenderer, recording: RecordingLookup? = nil,
                 clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.figures = figures
        self.catalog = catalog
        self.renderer = renderer
        self.recording = recording
        self.clock = clock
    }

    /// The live numbers as the page shows them, and the plot.
    struct Live: Codable {
        var figures: ViewerFigures
        var text: [String: String]
        var plot: String
    }

    /// Whose figures a page shows: the id they are kept under, the page's address (without
    /// `/analytics`), its heading and where it goes back to.
    struct Subject {
        var id: String
        var path: String
        var title: String
        var back: (href: String, text: String)
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        add(routes, "/studio/streams/:id", find: stream)
        if recording != nil { add(routes, "/studio/recordings/:id", find: recordingSubject) }
        return routes
    }

    /// The page, its JSON and its CSV under `base`.
    private func add(_ routes: RouteCollection<NodeRequestContext>, _ base: String,
                     find: @escaping @Sendable (String, AccountCaller, Request, NodeRequestContext) async throws -> Found) {
        @Sendable func owned(_ request: Request, _ context: NodeRequestContext,
                             _ body: @escaping @Sendable (Subject) async throws -> Response) async throws -> Response {
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            switch try await find(try context.parameters.require("id"), caller, request, context) {
            case .subject(let s): return try await body(s)
            case .answer(let r): return r
            }
        }
        routes.get(RouterPath(base + "/analytics")) { request, context -> Response in
            try await owned(request, context) { s in
                let f = try await figures.figures(stream: s.id, now: clock(), seriesSince: clock() - Self.window)
                return try await page(s, f, request, context)
            }
        }
        routes.get(RouterPath(base + "/analytics.json")) { request, context -> Response in
            try await owned(request, context) { s in
                let f = try await figures.figures(stream: s.id, now: clock(), seriesSince: clock() - Self.window)
                var response = try Responses.json(Live(figures: f, text: Self.text(f, now: clock()), plot: ViewerPlot.svg(f.series, now: clock())))
                response.headers[.cacheControl] = "no-store"
                return response
            }
        }
        routes.get(RouterPath(base + "/analytics.csv")) { request, context -> Response in
            try await owned(request, context) { s in
                let f = try await figures.figures(stream: s.id, now: clock())
                var response = Responses.text(Self.csv(f), type: "text/csv; charset=utf-8", cache: "no-store")
                response.headers[.contentDisposition] = "attachment; filename=\"viewers-\(s.id).csv\""
                return response
            }
        }
    }

    /// What a lookup found: whose figures, or the answer to give instead (not found).
    enum Found { case subject(Subject), answer(Response) }

    /// The page shows the last six hours.
    static let window: Double = 6 * 3600

    /// The figures of a stream are its host's and co-hosts' (and an admin's); to anyone else
    /// the stream is not there.
    static func may(_ caller: AccountCaller, _ record: StreamRecord) -> Bool {
        record.owner == caller.accountID || caller.isAdmin || record.cohost(account: caller.accountID) != nil
    }

    @Sendable func stream(_ id: String, _ caller: AccountCaller, _ request: Request, _ context: NodeRequestContext) async throws -> Found {
        guard StreamIdentifiers.isWellFormed(Substring(id)), let record = catalog.record(id: id), Self.may(caller, record) else {
            return .answer(try await renderer.render("message", ["heading": "No such stream", "message": "You have no stream \(id.prefix(20))."],
                                                     request, context, status: .notFound))
        }
        return .subject(Subject(id: record.id, path: "/studio/streams/\(record.id)", title: record.title, back: ("/studio", "Back to the studio")))
    }

    /// A recording's, as its stream's (the recording's owner is its stream's).
    @Sendable func recordingSubject(_ id: String, _ caller: AccountCaller, _ request: Request, _ context: NodeRequestContext) async throws -> Found {
        guard id.utf8.count <= 100, let recording, let found = try await recording(id), Self.may(caller, found.stream) else {
            return .answer(try await renderer.render("message", ["heading": "No such recording", "message": "You have no recording \(id.prefix(100)).",
                                                                 "link": ["href": "/studio/recordings", "text": "Your recordings"]],
                                                     request, context, status: .notFound))
        }
        return .subject(Subject(id: id, path: "/studio/recordings/\(id)", title: found.title, back: ("/studio/recordings/\(id)", "Back to the recording")))
    }

    func page(_ s: Subject, _ f: ViewerFigures, _ request: Request, _ context: NodeRequestContext) async throws -> Response {
        var values: [String: Any] = ["path": s.path, "title": s.title, "backHref": s.back.href, "backText": s.back.text,
                                     "plot": ViewerPlot.svg(f.series, now: clock())]
        for (k, v) in Self.text(f, now: clock()) { values[k] = v }
        let samples = f.series.suffix(60)
        values["samples"] = samples.map { ["at": Self.time($0.at), "viewers": $0.viewers] as [String: Any] }
        values["sampleCount"] = samples.count
        values["anySamples"] = !samples.isEmpty
        values["breakdowns"] = [("region", "region", "Region", f.byRegion), ("rendition", "rendition", "Rendition", f.byRendition),
                                ("device", "device", "Device", f.byDevice), ("referrer", "referring site", "Site", f.byReferrer)].map {
            key, name, column, rows -> [String: Any] in
            ["key": key, "name": name, "column": column, "anyRows": !rows.isEmpty,
             "rows": rows.map { ["label": $0.name.isEmpty ? "(unknown)" : $0.name, "viewers": $0.viewers,
                                 "watch": Self.duration($0.watchSeconds)] as [String: Any] }]
        }
        return try await renderer.render("analytics", values, request, context)
    }

    /// The figures as the page writes them.
    static func text(_ f: ViewerFigures, now: Double) -> [String: String] {
        ["concurrent": String(f.concurrentViewers), "peak": String(f.peakViewers), "unique": String(f.uniqueViewers),
         "watch": duration(f.watchSeconds), "average": duration(f.averageWatchSeconds),
         "startup": f.startupMs.map { String(format: "%.1f s", $0 / 1000) } ?? "not measured yet",
         "rebuffering": f.rebufferingRatio.map { String(format: "%.1f %%", $0 * 100) } ?? "not measured yet",
         "updated": time(now)]
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \(s % 3600 / 60) min"
    }

    static func time(_ at: Double) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.string(from: Date(timeIntervalSince1970: at))
    }

    /// The series, then the totals and breakdowns; a cell a spreadsheet would read as a formula is quoted as text.
    static func csv(_ f: ViewerFigures) -> String {
        func cell(_ s: String) -> String {
            var v = s
            if let c = v.first, "=+-@\t\r".contains(c) { v = "'" + v }
            return v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : v
        }
        var lines = ["kind,name,viewers,watch_seconds"]
        lines.append("total,concurrent,\(f.concurrentViewers),")
        lines.append("total,peak,\(f.peakViewers),")
        lines.append("total,unique,\(f.uniqueViewers),\(String(format: "%.3f", f.watchSeconds))")
        for (kind, rows) in [("region", f.byRegion), ("rendition", f.byRendition), ("device", f.byDevice), ("referrer", f.byReferrer)] {
            for r in rows { lines.append("\(kind),\(cell(r.name)),\(r.viewers),\(String(format: "%.3f", r.watchSeconds))") }
        }
        for s in f.series { lines.append("sample,\(cell(time(s.at))),\(s.viewers),") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The concurrent viewers over time as an SVG drawn here: a line over a time axis, the most
/// and the times at both ends labelled; its title and description say it in words.
package enum ViewerPlot {
    static let width = 640.0, height = 220.0, left = 44.0, right = 12.0, top = 12.0, bottom = 28.0

    package static func svg(_ series: [ViewerSample], now: Double) -> String {
        let peak = series.map(\.viewers).max() ?? 0
        let top = max(1, peak)
        let first = series.first?.at ?? now, last = max(series.last?.at ?? now, first + 1)
        let plotW = width - left - right, plotH = height - Self.top - bottom
        func x(_ t: Double) -> Double { left + (t - first) / (last - first) * plotW }
        func y(_ v: Int) -> Double { Self.top + plotH - Double(v) / Double(top) * plotH }
        let description: String
        if let a = series.first, let b = series.last {
            description = "\(series.count) samples from \(AnalyticsPages.time(a.at)) to \(AnalyticsPages.time(b.at)) UTC: "
                + "\(a.viewers) at first, \(b.viewers) at the last, \(peak) at most."
        } else {
            description = "No samples yet: the figure appears once someone watches."
        }
        var out = """
            <svg class="viewer-plot" viewBox="0 0 \(Int(width)) \(Int(height))" width="100%" role="img" aria-labelledby="plot-title plot-desc" \
            xmlns="http://www.w3.org/2000/svg"><title id="plot-title">Concurrent viewers over time</title><desc id="plot-desc">\(escape(description))</desc>
            """
        let axis = "stroke=\"currentColor\" stroke-opacity=\".5\""
        out += "<line x1=\"\(f(left))\" y1=\"\(f(Self.top + plotH))\" x2=\"\(f(width - right))\" y2=\"\(f(Self.top + plotH))\" \(axis)/>"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(Self.top))\" x2=\"\(f(left))\" y2=\"\(f(Self.top + plotH))\" \(axis)/>"
        out += "<text x=\"\(f(left - 6))\" y=\"\(f(Self.top + 10))\" text-anchor=\"end\" font-size=\"12\" fill=\"currentColor\">\(top)</text>"
        out += "<text x=\"\(f(left - 6))\" y=\"\(f(Self.top + plotH))\" text-anchor=\"end\" font-size=\"12\" fill=\"currentColor\">0</text>"
        if !series.isEmpty {
            let hm = { (t: Double) in String(AnalyticsPages.time(t).suffix(8)) }
            out += "<text x=\"\(f(left))\" y=\"\(f(height - 8))\" font-size=\"12\" fill=\"currentColor\">\(hm(first))</text>"
            out += "<text x=\"\(f(width - right))\" y=\"\(f(height - 8))\" text-anchor=\"end\" font-size=\"12\" fill=\"currentColor\">\(hm(series.last!.at)) UTC</text>"
            let points = series.map { "\(f(x($0.at))),\(f(y($0.viewers)))" }.joined(separator: " ")
            out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"#4ea1ff\" stroke-width=\"2\"/>"
        }
        return out + "</svg>"
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
