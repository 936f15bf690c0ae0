import CharNN
import CharTokenizer
import Foundation

/// What the model did while reading a text, unit by unit: how surprised it was by each unit,
/// and every hidden unit's value after reading it. `charlm explain` and the serve page's
/// neuron view are both made from this.
public struct ActivationTrace: Sendable {
    /// Which state a neuron is read from.
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// The layer's output h (in [-1, 1]).
        case hidden
        /// An LSTM's cell state c (unbounded; Karpathy's "cells").
        case cell
    }

    /// The text of each unit read (grapheme, scalar or byte, as the tokenizer splits).
    public let units: [String]
    public let ids: [Int32]
    /// Bits the model needed for each unit given everything before it (−log₂ p).
    public let bits: [Float]
    public let layers: Int
    public let hiddenSize: Int
    /// After reading unit i, layer l's h: (units, layers, hiddenSize).
    public let hidden: [Float]
    /// The same for an LSTM's cell state; nil for other cells.
    public let cell: [Float]?

    /// Neuron `unit` of `layer` over the text, one value per unit read.
    public func activations(layer: Int, unit: Int, kind: Kind = .hidden) -> [Float]? {
        guard layer >= 0, layer < layers, unit >= 0, unit < hiddenSize else { return nil }
        guard let values = kind == .hidden ? hidden : cell else { return nil }
        let stride = layers * hiddenSize
        return (0..<units.count).map { values[$0 * stride + layer * hiddenSize + unit] }
    }

    /// Mean bits per unit.
    public var meanBits: Double { bits.isEmpty ? 0 : bits.reduce(0.0) { $0 + Double($1) } / Double(bits.count) }
}

extension LanguageModel {
    /// Reads `text` (normalized and split by the tokenizer, at most `maxUnits` units) and
    /// records the model's surprise and state at every unit. The first unit is predicted from
    /// the start id, as generation starts.
    /// - Throws: `CharLMError.badPrompt` when the text has characters the vocabulary lacks.
    public func trace(_ text: String, maxUnits: Int = 20_000) throws -> ActivationTrace {
        let ids = Array(try encodePrompt(text).prefix(max(0, maxUnits)))
        let config = network.config
        let H = config.hiddenSize, layers = config.layers
        let stepper = StreamStepper(network: network, precision: .f32)
        let state = RecurrentState(config: config, batchSize: 1)
        var hidden = [Float](repeating: 0, count: ids.count * layers * H)
        var cell: [Float]? = state.c == nil ? nil : hidden
        var bits = [Float](repeating: 0, count: ids.count)
        var logits = try stepper.step([startID], states: [state])
        for (i, id) in ids.enumerated() {
            let maximum = logits.max() ?? 0
            let logTotal = log(logits.reduce(0.0) { $0 + exp(Double($1 - maximum)) }) + Double(maximum)
            bits[i] = Float((logTotal - Double(logits[Int(id)])) / M_LN2)
            logits = try stepper.step([id], states: [state])
            let offset = i * layers * H
            state.h.withUnsafeBufferPointer { hidden.replaceSubrange(offset..<(offset + layers * H), with: $0) }
            state.c?.withUnsafeBufferPointer { cell!.replaceSubrange(offset..<(offset + layers * H), with: $0) }
        }
        return ActivationTrace(
            units: ids.map { tokenizer.decode([$0]) }, ids: ids, bits: bits, layers: layers, hiddenSize: H,
            hidden: hidden, cell: cell)
    }
}

/// Simple properties of a text, one value per unit, that a neuron might track.
public enum TextProperty: String, Sendable, CaseIterable, Codable {
    case positionInLine = "position in line"
    case insideQuotes = "inside quotes"
    case bracketDepth = "bracket depth"
    case afterNewline = "after a newline"
    case wordLength = "word length"

    /// What the value means.
    public var explanation: String {
        switch self {
        case .positionInLine: "units read since the last line break"
        case .insideQuotes: "1 between an opening and a closing double quote (\" or “ ”), else 0"
        case .bracketDepth: "how many of ( [ { < are open"
        case .afterNewline: "1 when the unit just read is a line break, else 0"
        case .wordLength: "letters read since the last non-letter"
        }
    }

    /// The property's value after each unit of `units`.
    public func values(_ units: [String]) -> [Float] {
        var out = [Float](repeating: 0, count: units.count)
        var column = 0, inQuote = false, depth = 0, word = 0
        for (i, u) in units.enumerated() {
            switch self {
            case .positionInLine:
                column = u == "\n" || u == "\r\n" ? 0 : column + 1
                out[i] = Float(column)
            case .insideQuotes:
                if u == "\"" {
                    inQuote.toggle()
                } else if u == "“" {
                    inQuote = true
                } else if u == "”" {
                    inQuote = false
                }
                out[i] = inQuote ? 1 : 0
            case .bracketDepth:
                if "([{<".contains(u) && u.count == 1 { depth += 1 }
                if ")]}>".contains(u) && u.count == 1 { depth = max(0, depth - 1) }
                out[i] = Float(depth)
            case .afterNewline:
                out[i] = u == "\n" || u == "\r\n" ? 1 : 0
            case .wordLength:
                word = u.first?.isLetter == true ? word + 1 : 0
                out[i] = Float(word)
            }
        }
        return out
    }
}

/// The neurons of a trace that best follow each property, and the spans the model found
/// hardest and easiest: what `charlm explain` reports.
public struct Explanation: Sendable {
    public struct Neuron: Sendable, Codable, Equatable {
        public var layer: Int
        public var unit: Int
        public var kind: ActivationTrace.Kind
        /// Pearson correlation of the neuron with the property over the text.
        public var correlation: Double
    }

    public struct Span: Sendable, Codable, Equatable {
        /// Units start ..< start + count of the trace.
        public var start: Int
        public var count: Int
        public var text: String
        public var meanBits: Double
    }

    public let trace: ActivationTrace
    /// For each property that varies in the text, its best neurons by |correlation|.
    public let neurons: [(property: TextProperty, best: [Neuron])]
    /// Properties constant over the text (no correlation is defined).
    public let constant: [TextProperty]
    public let hardest: [Span]
    public let easiest: [Span]

    /// - Parameters:
    ///   - top: neurons kept per property.
    ///   - spanLength: units per span; `spans` of the highest and of the lowest mean surprise
    ///     are kept, not overlapping.
    public init(trace: ActivationTrace, top: Int = 3, spanLength: Int = 40, spans: Int = 5) {
        self.trace = trace
        var neurons: [(TextProperty, [Neuron])] = []
        var constant: [TextProperty] = []
        for property in TextProperty.allCases {
            let best = Self.correlated(trace, with: property.values(trace.units), top: top)
            if let best { neurons.append((property, best)) } else { constant.append(property) }
        }
        self.neurons = neurons
        self.constant = constant
        (hardest, easiest) = Self.spans(trace, length: spanLength, count: spans)
    }

    /// The `top` neurons most correlated with `values` (nil when `values` is constant).
    static func correlated(_ trace: ActivationTrace, with values: [Float], top: Int) -> [Neuron]? {
        let n = Double(values.count)
        guard n >= 2 else { return nil }
        let meanY = values.reduce(0.0) { $0 + Double($1) } / n
        let centred = values.map { Double($0) - meanY }
        let syy = centred.reduce(0.0) { $0 + $1 * $1 }
        guard syy > 0 else { return nil }
        let width = trace.layers * trace.hiddenSize
        var found: [Neuron] = []
        for kind in ActivationTrace.Kind.allCases {
            guard let matrix = kind == .hidden ? trace.hidden : trace.cell else { continue }
            var sx = [Double](repeating: 0, count: width), sxx = sx, sxy = sx
            matrix.withUnsafeBufferPointer { m in
                for i in 0..<values.count {
                    let y = centred[i]
                    let row = m.baseAddress! + i * width
                    for j in 0..<width {
                        let x = Double(row[j])
                        sx[j] += x
                        sxx[j] += x * x
                        sxy[j] += x * y
                    }
                }
            }
            for j in 0..<width {
                let vx = sxx[j] - sx[j] * sx[j] / n
                guard vx > 1e-12 * n else { continue }
                // Σ (x − x̄)(y − ȳ) = Σ x (y − ȳ), since Σ (y − ȳ) = 0.
                let r = sxy[j] / (vx * syy).squareRoot()
                found.append(
                    Neuron(layer: j / trace.hiddenSize, unit: j % trace.hiddenSize, kind: kind, correlation: r))
            }
        }
        found.sort { abs($0.correlation) > abs($1.correlation) }
        return Array(found.prefix(top))
    }

    /// The non-overlapping windows of highest and lowest mean surprise.
    static func spans(_ trace: ActivationTrace, length: Int, count: Int) -> (hardest: [Span], easiest: [Span]) {
        let n = trace.bits.count
        let length = max(1, min(length, n))
        guard n > 0 else { return ([], []) }
        var prefix = [Double](repeating: 0, count: n + 1)
        for i in 0..<n { prefix[i + 1] = prefix[i] + Double(trace.bits[i]) }
        let windows = (0...(n - length)).map { (start: $0, mean: (prefix[$0 + length] - prefix[$0]) / Double(length)) }
        func pick(_ order: [(start: Int, mean: Double)]) -> [Span] {
            var taken: [Span] = []
            for w in order where taken.count < count {
                if taken.contains(where: { w.start < $0.start + length && $0.start < w.start + length }) { continue }
                taken.append(
                    Span(
                        start: w.start, count: length, text: trace.units[w.start..<(w.start + length)].joined(),
                        meanBits: w.mean))
            }
            return taken
        }
        return (pick(windows.sorted { $0.mean > $1.mean }), pick(windows.sorted { $0.mean < $1.mean }))
    }
}
