import CharIO
import CharLM
import Foundation

/// loss.svg in a run directory: the training and validation curves, drawn from metrics.csv
/// whenever training saves a checkpoint. Drawing is the command line's part; the run's data
/// (metrics.csv) is the library's.
struct LossPlotFile {
    let run: RunDirectory
    let title: String

    init(run: RunDirectory, config: RunConfig) {
        self.run = run
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
            Data(LossPlot.svg(train: train, validation: validation, title: title).utf8), to: run.plotURL)
    }
}

/// Draws training and validation loss against step as an SVG line chart with labelled axes.
enum LossPlot {
    static func svg(train: [(Double, Double)], validation: [(Double, Double)], title: String) -> String {
        let width = 720.0, height = 440.0, left = 70.0, right = 20.0, top = 40.0, bottom = 55.0
        let all = train + validation
        guard let maxX = all.map(\.0).max(), let minY0 = all.map(\.1).min(), let maxY0 = all.map(\.1).max() else {
            return
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\"><text "
                    + "x=\"20\" y=\"40\">no data yet</text></svg>\n"
        }
        let minX = 0.0
        let spanX = max(maxX - minX, 1)
        let pad = max((maxY0 - minY0) * 0.05, 0.01)
        let minY = max(0, minY0 - pad), maxY = maxY0 + pad
        func px(_ x: Double) -> Double { left + (x - minX) / spanX * (width - left - right) }
        func py(_ y: Double) -> Double { top + (maxY - y) / (maxY - minY) * (height - top - bottom) }
        func path(_ points: [(Double, Double)]) -> String {
            points.enumerated().map { i, p in String(format: "%@%.1f,%.1f", i == 0 ? "M" : "L", px(p.0), py(p.1)) }
                .joined(separator: " ")
        }
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
                + "font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        for i in 0...5 {
            let y = minY + (maxY - minY) * Double(i) / 5
            s += String(
                format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, py(y),
                width - right, py(y))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", left - 6, py(y) + 4, y)
            let x = minX + spanX * Double(i) / 5
            s += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px(x), height - bottom + 18,
                Int(x.rounded()))
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
            "<text transform=\"translate(18,\(Int((top + height - bottom) / 2))) rotate(-90)\" "
                + "text-anchor=\"middle\">loss (nats per character)</text>\n"
        if !train.isEmpty {
            s += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n"
        }
        if !validation.isEmpty {
            s += "<path d=\"\(path(validation))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
            for p in validation {
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#d62728\"/>\n", px(p.0), py(p.1))
            }
        }
        let lx = width - right - 150
        s += String(
            format:
                "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text "
                    + "x=\"%.0f\" y=\"%.0f\">training</text>\n",
            lx, top + 10, lx + 25, top + 10, lx + 32, top + 14)
        s += String(
            format:
                "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#d62728\" stroke-width=\"2\"/><text "
                    + "x=\"%.0f\" y=\"%.0f\">validation</text>\n",
            lx, top + 28, lx + 25, top + 28, lx + 32, top + 32)
        return s + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
