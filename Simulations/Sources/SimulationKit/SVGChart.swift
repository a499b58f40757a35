// Small hand-written SVG charts: step CDFs and line charts with axes, ticks and a legend.
// No dependencies; output depends only on the data, so reports stay byte-identical.

import Foundation

/// A line or step chart written as SVG text.
public struct SVGChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public var step: Bool
        public init(name: String, points: [(x: Double, y: Double)], color: String, step: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.step = step
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Vertical markers (x, label), e.g. faults.
    public var markers: [(x: Double, label: String)] = []
    public var yRange: ClosedRange<Double>?

    public init(title: String, xLabel: String, yLabel: String, series: [Series], yRange: ClosedRange<Double>? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.yRange = yRange
    }

    /// Cumulative distribution of `values` as step points (x = value, y = fraction ≤ x).
    public static func cdf(_ values: [Double]) -> [(x: Double, y: Double)] {
        let s = values.sorted()
        guard !s.isEmpty else { return [] }
        var pts: [(x: Double, y: Double)] = [(0, 0)]
        for (i, v) in s.enumerated() { pts.append((v, Double(i + 1) / Double(s.count))) }
        return pts
    }

    public func render(width: Double = 720, height: Double = 400) -> String {
        let left = 64.0, right = 16.0, top = 36.0, bottom = 48.0
        let pw = width - left - right, ph = height - top - bottom
        let all = series.flatMap(\.points)
        let xMin = min(all.map(\.x).min() ?? 0, 0)
        let rawMax = max(all.map(\.x).max() ?? 1, markers.map(\.x).max() ?? 0, 1e-9)
        let xStep = Self.niceStep((rawMax - xMin) / 5)
        let xMax = xMin + (((rawMax - xMin) / xStep).rounded(.up)) * xStep
        let yr = yRange ?? (min(all.map(\.y).min() ?? 0, 0)...max(all.map(\.y).max() ?? 1, 1e-9))
        func sx(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * pw }
        func sy(_ y: Double) -> Double { top + ph - (y - yr.lowerBound) / (yr.upperBound - yr.lowerBound) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func label(_ v: Double) -> String { abs(v) >= 100 || v == v.rounded() ? String(format: "%.0f", v) : String(format: "%.2g", v) }
        var o = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(width / 2))" y="20" text-anchor="middle" font-size="14" font-weight="bold">\(escape(title))</text>

            """
        for k in 0...5 {
            let y = yr.lowerBound + Double(k) / 5 * (yr.upperBound - yr.lowerBound)
            o += "<line x1=\"\(f(left))\" y1=\"\(f(sy(y)))\" x2=\"\(f(left + pw))\" y2=\"\(f(sy(y)))\" stroke=\"#ddd\"/>"
            o += "<text x=\"\(f(left - 6))\" y=\"\(f(sy(y) + 4))\" text-anchor=\"end\">\(label(y))</text>\n"
        }
        for x in stride(from: xMin, through: xMax + xStep / 2, by: xStep) {
            o += "<line x1=\"\(f(sx(x)))\" y1=\"\(f(top + ph))\" x2=\"\(f(sx(x)))\" y2=\"\(f(top + ph + 4))\" stroke=\"black\"/>"
            o += "<text x=\"\(f(sx(x)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(label(x))</text>\n"
        }
        o += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"black\"/>\n"
        o += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        o += "<text transform=\"translate(16,\(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (k, m) in markers.enumerated() {
            o += "<line x1=\"\(f(sx(m.x)))\" y1=\"\(f(top))\" x2=\"\(f(sx(m.x)))\" y2=\"\(f(top + ph))\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>"
            o += "<text x=\"\(f(sx(m.x) + 3))\" y=\"\(f(top + 12 + Double(k % 3) * 12))\" fill=\"#c33\" font-size=\"10\">\(escape(m.label))</text>\n"
        }
        for (k, s) in series.enumerated() {
            var d = ""
            var prev: (x: Double, y: Double)?
            for p in s.points {
                if let q = prev, s.step { d += " L\(f(sx(p.x))),\(f(sy(q.y)))" }
                d += (d.isEmpty ? "M" : " L") + "\(f(sx(p.x))),\(f(sy(p.y)))"
                prev = p
            }
            o += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.8\"/>\n"
            let ly = top + 14 + Double(k) * 16
            o += "<line x1=\"\(f(left + pw - 190))\" y1=\"\(f(ly))\" x2=\"\(f(left + pw - 170))\" y2=\"\(f(ly))\" stroke=\"\(s.color)\" stroke-width=\"3\"/>"
            o += "<text x=\"\(f(left + pw - 165))\" y=\"\(f(ly + 4))\">\(escape(s.name))</text>\n"
        }
        o += "</svg>\n"
        return o
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let mag = pow(10, floor(log10(raw)))
        for m in [1.0, 2, 5, 10] where m * mag >= raw { return m * mag }
        return 10 * mag
    }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
