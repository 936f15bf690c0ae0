import Foundation

/// One row of metrics.csv.
public struct MetricsRow: Sendable, Equatable {
    public var step: Int
    public var epoch: Int
    public var characters: Int
    public var trainLoss: Double?
    public var validationLoss: Double?
    public var learningRate: Float
    public var charactersPerSecond: Double
    /// Global gradient norm before clipping, and whether clipping fired (fraction of steps since the last row).
    public var gradientNorm: Double?
    public var clippedFraction: Double?
    /// Gradient norm of each recurrent layer (all its weights and biases), then of the output layer.
    public var layerGradientNorms: [Double]
    public var elapsedSeconds: Double
}

/// metrics.csv: a header and one row per logged step, rewritten atomically at every checkpoint;
/// a resumed run drops the rows after its checkpoint (a crash between the two writes can lose
/// the rows of one checkpoint interval: the file is a log, not state).
struct MetricsLog {
    let url: URL
    let layers: Int
    private(set) var rows: [MetricsRow] = []

    init(url: URL, layers: Int) {
        self.url = url
        self.layers = layers
    }

    var header: String {
        (["step", "epoch", "characters", "train_loss", "val_loss", "val_bpc", "learning_rate", "chars_per_s", "grad_norm", "clipped"]
            + (0..<layers).map { "grad_norm_l\($0)" } + ["grad_norm_out", "elapsed_s"]).joined(separator: ",")
    }

    mutating func append(_ row: MetricsRow) {
        rows.append(row)
    }

    mutating func replaceLast(_ row: MetricsRow) {
        rows[rows.count - 1] = row
    }

    /// Reads an existing file, keeping rows up to `step` (a resumed run drops what came after its checkpoint).
    mutating func load(upTo step: Int) {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return }
        var loaded: [MetricsRow] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 12 + layers, let s = Int(f[0]), s <= step else { continue }
            loaded.append(MetricsRow(
                step: s, epoch: Int(f[1]) ?? 0, characters: Int(f[2]) ?? 0, trainLoss: Double(f[3]), validationLoss: Double(f[4]),
                learningRate: Float(f[6]) ?? 0, charactersPerSecond: Double(f[7]) ?? 0, gradientNorm: Double(f[8]),
                clippedFraction: Double(f[9]), layerGradientNorms: f[10..<(11 + layers)].compactMap { Double($0) },
                elapsedSeconds: Double(f[11 + layers]) ?? 0))
        }
        rows = loaded
    }

    func csv() -> String {
        func fmt(_ x: Double?) -> String { x.map { String(format: "%.6g", $0) } ?? "" }
        var out = header + "\n"
        for r in rows {
            let fields = [String(r.step), String(r.epoch), String(r.characters), fmt(r.trainLoss), fmt(r.validationLoss),
                          fmt(r.validationLoss.map { $0 / log(2) }), String(format: "%.6g", r.learningRate), String(format: "%.1f", r.charactersPerSecond),
                          fmt(r.gradientNorm), fmt(r.clippedFraction)]
                + (0..<(layers + 1)).map { fmt($0 < r.layerGradientNorms.count ? r.layerGradientNorms[$0] : nil) }
                + [String(format: "%.1f", r.elapsedSeconds)]
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }

    func write() throws {
        try writeDurably(Data(csv().utf8), to: url)
    }
}

/// Draws training and validation loss against step as an SVG line chart with labelled axes.
enum LossPlot {
    static func svg(train: [(Double, Double)], validation: [(Double, Double)], title: String) -> String {
        let width = 720.0, height = 440.0, left = 70.0, right = 20.0, top = 40.0, bottom = 55.0
        let all = train + validation
        guard let maxX = all.map(\.0).max(), let minY0 = all.map(\.1).min(), let maxY0 = all.map(\.1).max() else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\"><text x=\"20\" y=\"40\">no data yet</text></svg>\n"
        }
        let minX = 0.0
        let spanX = max(maxX - minX, 1)
        let pad = max((maxY0 - minY0) * 0.05, 0.01)
        let minY = max(0, minY0 - pad), maxY = maxY0 + pad
        func px(_ x: Double) -> Double { left + (x - minX) / spanX * (width - left - right) }
        func py(_ y: Double) -> Double { top + (maxY - y) / (maxY - minY) * (height - top - bottom) }
        func path(_ points: [(Double, Double)]) -> String {
            points.enumerated().map { i, p in String(format: "%@%.1f,%.1f", i == 0 ? "M" : "L", px(p.0), py(p.1)) }.joined(separator: " ")
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        for i in 0...5 {
            let y = minY + (maxY - minY) * Double(i) / 5
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, py(y), width - right, py(y))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", left - 6, py(y) + 4, y)
            let x = minX + spanX * Double(i) / 5
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px(x), height - bottom + 18, Int(x.rounded()))
        }
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, height - bottom, width - right, height - bottom)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top, left, height - bottom)
        s += "<text x=\"\(Int((left + width - right) / 2))\" y=\"\(Int(height - 12))\" text-anchor=\"middle\">training step</text>\n"
        s += "<text transform=\"translate(18,\(Int((top + height - bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">loss (nats per character)</text>\n"
        if !train.isEmpty { s += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n" }
        if !validation.isEmpty {
            s += "<path d=\"\(path(validation))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
            for p in validation { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#d62728\"/>\n", px(p.0), py(p.1)) }
        }
        let lx = width - right - 150
        s += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">training</text>\n", lx, top + 10, lx + 25, top + 10, lx + 32, top + 14)
        s += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">validation</text>\n", lx, top + 28, lx + 25, top + 28, lx + 32, top + 32)
        return s + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
