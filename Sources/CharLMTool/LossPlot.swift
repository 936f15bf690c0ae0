import CharIO
import CharLM
import Foundation

/// loss.svg in a run directory: the training and validation curves, drawn from metrics.csv
/// whenever training saves a checkpoint. Drawing is the command line's part; the run's data
/// (metrics.csv) is the library's.
struct LossPlotFile {
    let run: RunDirectory
    let title: String
    let unit: String

    init(run: RunDirectory, config: RunConfig) {
        self.run = run
        unit = config.lossUnit
        let m = config.model
        title =
            "\(m.layers)x\(m.hiddenSize) \(m.cell.rawValue.uppercased()) on "
            + "\(URL(fileURLWithPath: config.corpus ?? "corpus").lastPathComponent)"
    }

    /// Redraws the plot; a plot that cannot be written is not worth stopping training for.
    func redraw() {
        let rows = MetricsLog.read(run.metricsURL)
        let train = rows.compactMap { r in r.trainLoss.map { (Double(r.step), $0) } }
        let validation = rows.compactMap { r in r.validationLoss.map { (Double(r.step), $0) } }
        try? DurableFile.write(
            Data(LossPlot.svg(train: train, validation: validation, title: title, unit: unit).utf8), to: run.plotURL)
    }
}

/// Draws training and validation loss against step as an SVG line chart: axes with round tick
/// values that contain every point (nothing is clipped), the legend above the plot area where
/// it cannot cover a curve, and the loss per unit of the run's tokenizer.
enum LossPlot {
    static func svg(train: [(Double, Double)], validation: [(Double, Double)], title: String, unit: String)
        -> String
    {
        let width = 720.0, height = 460.0, left = 70.0, right = 20.0, top = 64.0, bottom = 55.0
        let all = train + validation
        guard let maxX0 = all.map(\.0).max(), let minY0 = all.map(\.1).min(), let maxY0 = all.map(\.1).max() else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\">"
                + "<text x=\"20\" y=\"40\">no data yet</text></svg>\n"
        }
        let xTicks = niceTicks(0, max(maxX0, 1), count: 6)
        let yTicks = niceTicks(minY0, maxY0 > minY0 ? maxY0 : minY0 + 0.1, count: 6)
        let minX = xTicks.first!, maxX = xTicks.last!, minY = yTicks.first!, maxY = yTicks.last!
        func px(_ x: Double) -> Double { left + (x - minX) / (maxX - minX) * (width - left - right) }
        func py(_ y: Double) -> Double { top + (maxY - y) / (maxY - minY) * (height - top - bottom) }
        func path(_ points: [(Double, Double)]) -> String {
            points.enumerated().map { i, p in String(format: "%@%.1f,%.1f", i == 0 ? "M" : "L", px(p.0), py(p.1)) }
                .joined(separator: " ")
        }
        let yDigits = decimals(yTicks)
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        for y in yTicks {
            s += String(
                format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, py(y),
                width - right, py(y))
            s += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", left - 6, py(y) + 4, yDigits, y
            )
        }
        for x in xTicks {
            s += String(
                format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", px(x), top, px(x),
                height - bottom)
            s += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", px(x), height - bottom + 18,
                Int(x.rounded()).formatted())
        }
        s += String(
            format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, height - bottom,
            width - right, height - bottom)
        s += String(
            format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top, left,
            height - bottom)
        s +=
            "<text x=\"\(Int((left + width - right) / 2))\" y=\"\(Int(height - 12))\" text-anchor=\"middle\">training "
            + "step</text>\n"
        s +=
            "<text transform=\"translate(18,\(Int((top + height - bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">"
            + "loss (nats per \(unit))</text>\n"
        if !train.isEmpty {
            s += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n"
        }
        if !validation.isEmpty {
            s += "<path d=\"\(path(validation))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
            for p in validation {
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#d62728\"/>\n", px(p.0), py(p.1))
            }
        }
        // The legend sits in the band between the title and the plot area.
        let ly = top - 16, lx = width - right - 250
        s += String(
            format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f77b4\" stroke-width=\"2\"/>", lx,
            ly,
            lx + 25, ly)
        s += String(format: "<text x=\"%.0f\" y=\"%.0f\">training</text>\n", lx + 32, ly + 4)
        s += String(
            format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#d62728\" stroke-width=\"2\"/>",
            lx + 110, ly, lx + 135, ly)
        s += String(format: "<text x=\"%.0f\" y=\"%.0f\">validation</text>\n", lx + 142, ly + 4)
        return s + "</svg>\n"
    }

    /// About `count` evenly spaced round values (steps of 1, 2 or 5 times a power of ten) from a
    /// multiple of the step at or below `low` to one at or above `high`.
    static func niceTicks(_ low: Double, _ high: Double, count: Int) -> [Double] {
        let raw = (high - low) / Double(max(count - 1, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = floor(low / step) * step, last = ceil(high / step) * step
        return stride(from: first, through: last + step / 2, by: step).map { ($0 / step).rounded() * step }
    }

    /// Decimal places that show every tick distinctly.
    static func decimals(_ ticks: [Double]) -> Int {
        guard ticks.count > 1 else { return 2 }
        return max(0, Int(ceil(-log10(ticks[1] - ticks[0]) - 1e-9)))
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
