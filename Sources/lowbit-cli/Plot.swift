#if canImport(Glibc)
import Glibc
#endif
import LowBit

/// One point of the perplexity-against-memory picture.
struct PlotPoint {
    enum Series: String, CaseIterable {
        case uniform = "lowbit, one width"
        case modelFile = "lowbit model files"
        case elastic = "lowbit elastic model as its budget moves"
        case stack = "lowbit BitStack as its budget moves"
        case peer = "reference points"
    }
    let label: String
    let mebibytes: Double
    let perplexity: Double
    let series: Series
}

/// Reference points from a file of lines "label,MiB,perplexity" ('#' starts a comment line; the
/// first comment names their source): other tools' figures measured on the same text.
func readReferencePoints(_ path: String) throws -> (points: [PlotPoint], source: String) {
    let text = String(decoding: try FileIO.read(path, maxBytes: 1 << 20), as: UTF8.self)
    var points: [PlotPoint] = [], source = ""
    for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let trimmed = line.trimmingCharacters()
        if trimmed.isEmpty { continue }
        if trimmed.hasPrefix("#") {
            if source.isEmpty { source = trimmed.dropFirst().trimmingCharacters() }
            continue
        }
        let fields = trimmed.split(separator: ",").map { $0.trimmingCharacters() }
        guard fields.count == 3, let mib = Double(fields[1]), let ppl = Double(fields[2]),
              mib.isFinite, mib > 0, mib < 1e7, ppl.isFinite, ppl >= 1, ppl < 1e7 else {
            throw CLIError("\(path):\(number + 1): expected 'label,MiB,perplexity' with positive numbers")
        }
        points.append(PlotPoint(label: fields[0], mebibytes: mib, perplexity: ppl, series: .peer))
    }
    return (points, source)
}

/// An SVG picture of perplexity (log scale) against weight memory. The float reference is a
/// dashed line at its perplexity rather than a point (its memory would squeeze every other point
/// to one side); points above four times its perplexity are listed below the chart instead.
func perplexitySVG(_ points: [PlotPoint], reference: Double?, title: String, caption: String) -> String {
    let width = 760.0, height = 520.0, left = 70.0, right = 20.0, top = 50.0, bottom = 130.0
    let ceiling = (reference ?? points.map(\.perplexity).min() ?? 10) * 4
    let shown = points.filter { $0.perplexity <= ceiling }, hidden = points.filter { $0.perplexity > ceiling }
    let xs = shown.map(\.mebibytes), ys = shown.map(\.perplexity) + (reference.map { [$0] } ?? [])
    let xMin = ((xs.min() ?? 0) * 0.9 / 10).rounded(.down) * 10
    let xMax = ((xs.max() ?? 100) * 1.05 / 10).rounded(.up) * 10
    let yMin = log((ys.min() ?? 10) * 0.92), yMax = log(max(ys.max() ?? 20, (ys.min() ?? 10) * 1.5) * 1.08)
    let plotW = width - left - right, plotH = height - top - bottom
    func x(_ v: Double) -> Double { left + (v - xMin) / max(xMax - xMin, 1e-9) * plotW }
    func y(_ v: Double) -> Double { top + (yMax - log(v)) / max(yMax - yMin, 1e-9) * plotH }
    func n(_ v: Double) -> String { fmt(v, 1) }
    func escaped(_ s: String) -> String {
        s.replacingAll("&", "&amp;").replacingAll("<", "&lt;").replacingAll(">", "&gt;")
    }
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(n(width / 2))" y="24" text-anchor="middle" font-size="15">\(escaped(title))</text>

        """
    // Axes, grid and ticks: memory every 10 MiB (or 20 past 100 MiB of range), perplexity on a
    // 1-2-5 ladder that fits the range.
    let step = xMax - xMin > 100 ? 20.0 : 10.0
    for v in stride(from: xMin, through: xMax, by: step) {
        svg += "<line x1=\"\(n(x(v)))\" y1=\"\(n(top))\" x2=\"\(n(x(v)))\" y2=\"\(n(top + plotH))\" stroke=\"#eee\"/>\n"
        svg += "<text x=\"\(n(x(v)))\" y=\"\(n(top + plotH + 16))\" text-anchor=\"middle\">\(Int(v))</text>\n"
    }
    let ladder = [10.0, 12, 15, 20, 25, 30, 40, 50, 70, 100, 150, 200, 300, 500, 1000, 2000, 5000]
    for v in ladder where log(v) >= yMin && log(v) <= yMax {
        svg += "<line x1=\"\(n(left))\" y1=\"\(n(y(v)))\" x2=\"\(n(left + plotW))\" y2=\"\(n(y(v)))\" "
            + "stroke=\"#eee\"/>\n"
        svg += "<text x=\"\(n(left - 6))\" y=\"\(n(y(v) + 4))\" text-anchor=\"end\">\(Int(v))</text>\n"
    }
    svg += "<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(plotW))\" height=\"\(n(plotH))\" fill=\"none\" "
        + "stroke=\"#444\"/>\n"
    svg += "<text x=\"\(n(left + plotW / 2))\" y=\"\(n(top + plotH + 36))\" text-anchor=\"middle\">weight memory "
        + "(MiB)</text>\n"
    svg += "<text transform=\"translate(18 \(n(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">perplexity "
        + "(log scale)</text>\n"
    if let reference {
        svg += "<line x1=\"\(n(left))\" y1=\"\(n(y(reference)))\" x2=\"\(n(left + plotW))\" y2=\"\(n(y(reference)))\" "
            + "stroke=\"#888\" stroke-dasharray=\"6 4\"/>\n"
        svg += "<text x=\"\(n(left + 4))\" y=\"\(n(y(reference) - 5))\" fill=\"#666\">"
            + "float reference \(fmt(reference, 2))</text>\n"
    }
    let colors: [PlotPoint.Series: String] = [.uniform: "#1f77b4", .modelFile: "#d62728", .elastic: "#9467bd",
                                              .stack: "#2ca02c", .peer: "#7f7f7f"]
    func marker(_ series: PlotPoint.Series, _ cx: Double, _ cy: Double) -> String {
        let c = colors[series]!
        switch series {
        case .uniform: return "<circle cx=\"\(n(cx))\" cy=\"\(n(cy))\" r=\"5\" fill=\"\(c)\"/>"
        case .modelFile:
            return "<path d=\"M\(n(cx)) \(n(cy - 6))L\(n(cx + 6)) \(n(cy))L\(n(cx)) \(n(cy + 6))L\(n(cx - 6)) "
                + "\(n(cy))Z\" fill=\"\(c)\"/>"
        case .stack: return "<rect x=\"\(n(cx - 4))\" y=\"\(n(cy - 4))\" width=\"8\" height=\"8\" fill=\"\(c)\"/>"
        case .elastic:
            return "<circle cx=\"\(n(cx))\" cy=\"\(n(cy))\" r=\"4.5\" fill=\"white\" stroke=\"\(c)\" "
                + "stroke-width=\"2\"/>"
        case .peer:
            return "<path d=\"M\(n(cx)) \(n(cy - 6))L\(n(cx + 6)) \(n(cy + 5))L\(n(cx - 6)) \(n(cy + 5))Z\" "
                + "fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\"/>"
        }
    }
    // A model whose budget moves is one line through its budgets.
    for series in [PlotPoint.Series.stack, .elastic] {
        let line = shown.filter { $0.series == series }.sorted { $0.mebibytes < $1.mebibytes }
        guard line.count > 1 else { continue }
        let path = line.map { "\(n(x($0.mebibytes))),\(n(y($0.perplexity)))" }.joined(separator: " ")
        svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colors[series]!)\"/>\n"
    }
    // Labels go to the first of eight places around their point that stays inside the chart and
    // overlaps the fewest markers and labels placed before; 10-pixel text is taken as 5.6 pixels
    // a character.
    typealias Box = (x0: Double, y0: Double, x1: Double, y1: Double)
    func overlaps(_ a: Box, _ b: Box) -> Bool { a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }
    var taken: [Box] = shown.map { p in
        (x(p.mebibytes) - 6, y(p.perplexity) - 6, x(p.mebibytes) + 6, y(p.perplexity) + 6)
    }
    if let reference { taken.append((left, y(reference) - 16, left + 130, y(reference))) }
    for p in shown {
        let px = x(p.mebibytes), py = y(p.perplexity), w = Double(p.label.count) * 5.6
        svg += marker(p.series, px, py) + "\n"
        let places: [(Double, Double)] = [(px + 8, py - 6), (px + 8, py + 14), (px - 8 - w, py - 6),
                                          (px - 8 - w, py + 14), (px - w / 2, py - 10), (px - w / 2, py + 20),
                                          (px + 8, py - 18), (px - 8 - w, py - 18)]
        let boxes = places.map { (x0: $0.0, y0: $0.1 - 10, x1: $0.0 + w, y1: $0.1 + 2) }
        func clashes(_ b: Box) -> Int {
            let outside = b.x0 < left || b.x1 > left + plotW || b.y0 < top || b.y1 > top + plotH
            return (outside ? 100 : 0) + taken.filter { overlaps($0, b) }.count
        }
        let free = boxes.indices.min { clashes(boxes[$0]) < clashes(boxes[$1]) }!
        taken.append(boxes[free])
        svg += "<text x=\"\(n(places[free].0))\" y=\"\(n(places[free].1))\" font-size=\"10\" "
            + "fill=\"#333\">\(escaped(p.label))</text>\n"
    }
    // Legend (the series present) and captions under the chart.
    var lineY = top + plotH + 58
    let present = PlotPoint.Series.allCases.filter { s in points.contains { $0.series == s } }
    var legendX = left
    for s in present {
        let itemWidth = 26 + Double(s.rawValue.count) * 6.3
        if legendX + itemWidth > width - right, legendX > left { (legendX, lineY) = (left, lineY + 18) }
        svg += marker(s, legendX + 6, lineY - 4) + "\n"
        svg += "<text x=\"\(n(legendX + 16))\" y=\"\(n(lineY))\">\(escaped(s.rawValue))</text>\n"
        legendX += itemWidth
    }
    for line in [hidden.isEmpty ? "" : "above the chart: "
                    + hidden.map { "\($0.label) (\(fmt($0.mebibytes, 1)) MiB, \(fmt($0.perplexity, 1)))" }
                        .joined(separator: "; "), caption] where !line.isEmpty {
        lineY += 18
        svg += "<text x=\"\(n(left))\" y=\"\(n(lineY))\" font-size=\"11\" fill=\"#444\">\(escaped(line))</text>\n"
    }
    return svg + "</svg>\n"
}
