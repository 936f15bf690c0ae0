import CharNN
import Foundation

/// Picks the next token from a row of logits.
public protocol TokenSampler: Sendable {
    /// - Parameters:
    ///   - logits: one score per vocabulary entry.
    ///   - recent: the tokens generated or fed most recently (for repetition penalties).
    mutating func sample(logits: [Float], recent: ArraySlice<Int32>, using generator: inout SeededGenerator) -> Int32
}

/// The usual controls of text generation.
public struct SamplingOptions: Codable, Sendable, Equatable {
    /// Softmax temperature; 0 picks the most likely token (argmax).
    public var temperature: Float = 1
    /// Keep only the `topK` most likely tokens (nil: all).
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probabilities sum to at least `topP` (nil: all).
    public var topP: Float?
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this (1: off),
    /// as in CTRL and Hugging Face's `repetition_penalty`.
    public var repetitionPenalty: Float = 1
    /// How many recent tokens the penalty looks at.
    public var repetitionWindow: Int = 64

    public init(
        temperature: Float = 1, topK: Int? = nil, topP: Float? = nil, repetitionPenalty: Float = 1,
        repetitionWindow: Int = 64
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
    }

    /// Checks every value; throws `CharLMError.invalidOptions` naming the first bad one.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw CharLMError.invalidOptions(message) } }
        try check(temperature >= 0 && temperature.isFinite, "the temperature must be 0 or positive, got \(temperature)")
        try check(topK.map { $0 >= 1 } ?? true, "top-k must be at least 1")
        try check(topP.map { $0 > 0 && $0 <= 1 } ?? true, "top-p must be in (0, 1]")
        try check(repetitionPenalty > 0 && repetitionPenalty.isFinite, "the repetition penalty must be positive")
        try check(repetitionWindow >= 0, "repetition window must not be negative")
    }
}

/// Temperature, top-k, top-p and repetition penalty, applied in that order of filtering
/// (penalty on the logits, then temperature, then top-k, then top-p on what is left).
public struct StandardSampler: TokenSampler {
    public var options: SamplingOptions

    public init(options: SamplingOptions) {
        self.options = options
    }

    /// The tokens this sampler may return for `logits`, most likely first (for tests and
    /// inspection); `sample` draws from exactly this set.
    public func candidates(logits: [Float], recent: ArraySlice<Int32>) -> [(id: Int32, probability: Double)] {
        var scores = logits.map(Double.init)
        if options.repetitionPenalty != 1 {
            let penalty = Double(options.repetitionPenalty)
            for id in Set(recent.suffix(options.repetitionWindow)) where id >= 0 && Int(id) < scores.count {
                let s = scores[Int(id)]
                scores[Int(id)] = s > 0 ? s / penalty : s * penalty
            }
        }
        let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        guard let best = order.first else { return [] }
        if options.temperature == 0 || !scores[best].isFinite {
            return [(Int32(best), 1)]
        }
        let inverse = 1 / Double(options.temperature)
        var kept = order
        if let k = options.topK, k < kept.count { kept = Array(kept.prefix(k)) }
        var weights = kept.map { exp((scores[$0] - scores[best]) * inverse) }
        var total = weights.reduce(0, +)
        if let p = options.topP, p < 1 {
            var cumulative = 0.0
            var cut = kept.count
            for (i, w) in weights.enumerated() {
                cumulative += w / total
                if cumulative >= Double(p) {
                    cut = i + 1
                    break
                }
            }
            kept = Array(kept.prefix(cut))
            weights = Array(weights.prefix(cut))
            total = weights.reduce(0, +)
        }
        return zip(kept, weights).map { (Int32($0), $1 / total) }
    }

    public mutating func sample(logits: [Float], recent: ArraySlice<Int32>, using generator: inout SeededGenerator)
        -> Int32
    {
        let set = candidates(logits: logits, recent: recent)
        guard set.count > 1 else { return set.first?.id ?? 0 }
        let u = Double(generator.next() >> 11) * 0x1p-53
        var cumulative = 0.0
        for candidate in set {
            cumulative += candidate.probability
            if u < cumulative { return candidate.id }
        }
        return set[set.count - 1].id
    }
}
