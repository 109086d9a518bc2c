import Foundation

/// Draws the boot report as one SVG: the CDF of boot time per variant (left) and a stacked bar of
/// phase medians per variant (right).
public enum SVGChart {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                          "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]

    public static func render(runs: [VariantRun], report: BootReport) -> String {
        let width = 1100.0, height = 460.0
        var svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += cdf(runs: runs, x: 60, y: 40, w: 420, h: 320)
        svg += bars(report: report, x: 620, y: 40, w: 440, h: 320)
        svg += "</svg>\n"
        return svg
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func n(_ v: Double) -> String { String(format: "%.1f", v) }

    static func cdf(runs: [VariantRun], x: Double, y: Double, w: Double, h: Double) -> String {
        let maxTime = max(runs.flatMap(\.bootTimes).max() ?? 1, 0.001) * 1.05
        var s = "<g id=\"cdf\">\n<text x=\"\(n(x))\" y=\"\(n(y - 15))\" font-size=\"14\">Boot time CDF (request → ready marker)</text>\n"
        s += "<rect x=\"\(n(x))\" y=\"\(n(y))\" width=\"\(n(w))\" height=\"\(n(h))\" fill=\"none\" stroke=\"#333\"/>\n"
        for i in 0...4 {
            let fx = Double(i) / 4
            s += "<text x=\"\(n(x + fx * w))\" y=\"\(n(y + h + 15))\" text-anchor=\"middle\">\(String(format: "%.1f", fx * maxTime))</text>\n"
            s += "<text x=\"\(n(x - 5))\" y=\"\(n(y + h - fx * h + 4))\" text-anchor=\"end\">\(String(format: "%.2f", fx))</text>\n"
            s += "<line x1=\"\(n(x))\" y1=\"\(n(y + h - fx * h))\" x2=\"\(n(x + w))\" y2=\"\(n(y + h - fx * h))\" stroke=\"#ddd\"/>\n"
        }
        s += "<text x=\"\(n(x + w / 2))\" y=\"\(n(y + h + 32))\" text-anchor=\"middle\">ms</text>\n"
        for (index, run) in runs.enumerated() {
            let times = run.bootTimes.sorted()
            guard !times.isEmpty else { continue }
            let color = palette[index % palette.count]
            var points = "\(n(x)),\(n(y + h))"
            for (i, t) in times.enumerated() {
                let px = x + t / maxTime * w
                points += " \(n(px)),\(n(y + h - Double(i) / Double(times.count) * h))"
                points += " \(n(px)),\(n(y + h - Double(i + 1) / Double(times.count) * h))"
            }
            s += "<polyline class=\"series\" data-variant=\"\(escape(run.name))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"\(run.kind == .direct ? " stroke-dasharray=\"5,3\"" : "") points=\"\(points)\"/>\n"
            let ly = y + h + 50 + Double(index) * 14
            s += "<line x1=\"\(n(x))\" y1=\"\(n(ly - 4))\" x2=\"\(n(x + 20))\" y2=\"\(n(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(run.kind == .direct ? " stroke-dasharray=\"5,3\"" : "")/>\n"
            s += "<text x=\"\(n(x + 25))\" y=\"\(n(ly))\">\(escape(run.name))</text>\n"
        }
        return s + "</g>\n"
    }

    static func bars(report: BootReport, x: Double, y: Double, w: Double, h: Double) -> String {
        let points = BootPoint.allCases.filter { $0 != .requestReceived && $0 != .shutdownComplete }
        let totals = report.variants.map { v in points.reduce(0) { $0 + (v.phaseMediansMs[$1.rawValue] ?? 0) } }
        let maxTotal = max(totals.max() ?? 1, 0.001) * 1.05
        var s = "<g id=\"phases\">\n<text x=\"\(n(x))\" y=\"\(n(y - 15))\" font-size=\"14\">Phase medians (ms), shutdown excluded</text>\n"
        s += "<rect x=\"\(n(x))\" y=\"\(n(y))\" width=\"\(n(w))\" height=\"\(n(h))\" fill=\"none\" stroke=\"#333\"/>\n"
        let count = max(report.variants.count, 1)
        let slot = w / Double(count)
        for (index, v) in report.variants.enumerated() {
            var top = y + h
            let bx = x + Double(index) * slot + slot * 0.15
            for (pi, point) in points.enumerated() {
                guard let ms = v.phaseMediansMs[point.rawValue], ms > 0 else { continue }
                let bh = ms / maxTotal * h
                top -= bh
                s += "<rect class=\"phase\" data-variant=\"\(escape(v.name))\" data-phase=\"\(point.rawValue)\" x=\"\(n(bx))\" y=\"\(n(top))\" width=\"\(n(slot * 0.7))\" height=\"\(n(bh))\" fill=\"\(palette[pi % palette.count])\"><title>\(escape(v.name)) \(point.rawValue): \(String(format: "%.3f", ms)) ms</title></rect>\n"
            }
            s += "<text x=\"\(n(bx + slot * 0.35))\" y=\"\(n(y + h + 14))\" text-anchor=\"middle\" font-size=\"9\">\(escape(v.name))</text>\n"
            s += "<text x=\"\(n(bx + slot * 0.35))\" y=\"\(n(top - 3))\" text-anchor=\"middle\" font-size=\"9\">\(String(format: "%.1f", totals[index]))</text>\n"
        }
        for (pi, point) in points.enumerated() {
            let ly = y + h + 34 + Double(pi / 3) * 14
            let lx = x + Double(pi % 3) * 150
            s += "<rect x=\"\(n(lx))\" y=\"\(n(ly - 9))\" width=\"10\" height=\"10\" fill=\"\(palette[pi % palette.count])\"/>\n"
            s += "<text x=\"\(n(lx + 14))\" y=\"\(n(ly))\">\(point.rawValue)</text>\n"
        }
        return s + "</g>\n"
    }
}
