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
public struct MetricsLog {
    let url: URL
    let layers: Int
    private(set) var rows: [MetricsRow] = []

    init(url: URL, layers: Int) {
        self.url = url
        self.layers = layers
    }

    var header: String {
        ([
            "step", "epoch", "characters", "train_loss", "val_loss", "val_bpc", "learning_rate", "chars_per_s",
            "grad_norm", "clipped",
        ]
            + (0..<layers).map { "grad_norm_l\($0)" } + ["grad_norm_out", "elapsed_s"]).joined(separator: ",")
    }

    mutating func append(_ row: MetricsRow) {
        rows.append(row)
    }

    /// Adds a validation loss to the row of `step`, or a row of its own when that step logged none.
    mutating func recordValidation(
        _ loss: Double, step: Int, epoch: Int, characters: Int, learningRate: Float, elapsedSeconds: Double
    ) {
        if let last = rows.last, last.step == step {
            rows[rows.count - 1].validationLoss = loss
        } else {
            rows.append(
                MetricsRow(
                    step: step, epoch: epoch, characters: characters, trainLoss: nil, validationLoss: loss,
                    learningRate: learningRate, charactersPerSecond: 0, gradientNorm: nil, clippedFraction: nil,
                    layerGradientNorms: [], elapsedSeconds: elapsedSeconds))
        }
    }

    /// Reads an existing file, keeping rows up to `step` (a resumed run drops what came after its checkpoint).
    mutating func load(upTo step: Int) {
        rows = Self.read(url).filter { $0.step <= step }
    }

    /// The rows of a metrics.csv (any number of layers); unreadable lines are skipped.
    public static func read(_ url: URL) -> [MetricsRow] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        var rows: [MetricsRow] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let layers = f.count - 12
            guard layers >= 1, let s = Int(f[0]) else { continue }
            rows.append(
                MetricsRow(
                    step: s, epoch: Int(f[1]) ?? 0, characters: Int(f[2]) ?? 0, trainLoss: Double(f[3]),
                    validationLoss: Double(f[4]),
                    learningRate: Float(f[6]) ?? 0, charactersPerSecond: Double(f[7]) ?? 0, gradientNorm: Double(f[8]),
                    clippedFraction: Double(f[9]), layerGradientNorms: f[10..<(11 + layers)].compactMap { Double($0) },
                    elapsedSeconds: Double(f[11 + layers]) ?? 0))
        }
        return rows
    }

    func csv() -> String {
        func fmt(_ x: Double?) -> String { x.map { String(format: "%.6g", $0) } ?? "" }
        var out = header + "\n"
        for r in rows {
            let fields =
                [
                    String(r.step), String(r.epoch), String(r.characters), fmt(r.trainLoss), fmt(r.validationLoss),
                    fmt(r.validationLoss.map { $0 / log(2) }), String(format: "%.6g", r.learningRate),
                    String(format: "%.1f", r.charactersPerSecond),
                    fmt(r.gradientNorm), fmt(r.clippedFraction),
                ]
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
