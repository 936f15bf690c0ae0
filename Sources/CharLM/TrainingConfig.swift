import CharNN
import CharTokenizer
import Foundation

/// How the learning rate changes over training.
public enum LearningRateSchedule: Codable, Sendable, Equatable, CustomStringConvertible {
    /// The base rate throughout.
    case constant
    /// charlm's default: the base rate, and when a step or time limit bounds the run to at least
    /// `autoMinimumSteps` steps, a linear decay over its last `autoDecayFraction` to
    /// `autoMinFactor` x the base rate at its end (warmup-stable-decay without the warm-up,
    /// which measured slower). A run resumed with a longer limit goes back to the stable phase
    /// until the new decay starts.
    case auto
    /// Multiply by `factor` every `every` steps.
    case step(every: Int, factor: Float)
    /// Linear warm-up over `warmup` steps, then a cosine decay to `minFactor` x the base rate
    /// at the end of the run's budget (needs a step, epoch or time limit).
    case cosine(warmup: Int, minFactor: Float)
    /// Multiply by `factor` when `patience` validations in a row bring no improvement.
    case plateau(factor: Float, patience: Int)

    /// The last part of the budget over which `auto` decays, and its final factor.
    public static let autoDecayFraction = 0.25
    public static let autoMinFactor: Float = 0.1
    /// The fewest steps a budget must hold for `auto` to decay (for a time limit, as the pace so
    /// far projects). Far from convergence the decay costs more than it gains: on
    /// tinyshakespeare, 2 minutes (about 400 steps) lost 0.059-0.073 nats of test loss with it
    /// on each of three seeds, and 10 minutes (about 2,000 steps) gained 0.015-0.022.
    public static let autoMinimumSteps = 1_000

    /// Parses the command-line spelling: `auto`, `constant`, `step:EVERY:FACTOR`,
    /// `cosine[:WARMUP[:MIN_FACTOR]]`, `plateau[:FACTOR[:PATIENCE]]`.
    public init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func number<T: LosslessStringConvertible>(_ i: Int, _ fallback: T) throws -> T {
            guard i < parts.count else { return fallback }
            guard let v = T(parts[i]) else {
                throw CharLMError.invalidOptions("learning-rate schedule '\(text)': '\(parts[i])' is not a number")
            }
            return v
        }
        switch parts[0] {
        case "constant" where parts.count == 1: self = .constant
        case "auto" where parts.count == 1: self = .auto
        case "step":
            guard parts.count == 3 else {
                throw CharLMError.invalidOptions("a step schedule is step:EVERY:FACTOR, e.g. step:2000:0.5")
            }
            self = .step(every: try number(1, 0), factor: try number(2, Float(0)))
        case "cosine" where parts.count <= 3:
            self = .cosine(warmup: try number(1, 0), minFactor: try number(2, Float(0.1)))
        case "plateau" where parts.count <= 3:
            self = .plateau(factor: try number(1, Float(0.5)), patience: try number(2, 2))
        default:
            throw CharLMError.invalidOptions(
                "learning-rate schedule '\(text)': expected auto, constant, step:EVERY:FACTOR, cosine[:WARMUP[:MIN]] "
                    + "or plateau[:FACTOR[:PATIENCE]]"
            )
        }
        try validate()
    }

    public func validate() throws {
        switch self {
        case .constant, .auto: break
        case .step(let every, let factor):
            guard every >= 1, factor > 0, factor <= 1 else {
                throw CharLMError.invalidOptions("step schedule needs EVERY >= 1 and 0 < FACTOR <= 1")
            }
        case .cosine(let warmup, let minFactor):
            guard warmup >= 0, minFactor >= 0, minFactor <= 1 else {
                throw CharLMError.invalidOptions("cosine schedule needs WARMUP >= 0 and 0 <= MIN <= 1")
            }
        case .plateau(let factor, let patience):
            guard factor > 0, factor < 1, patience >= 1 else {
                throw CharLMError.invalidOptions("plateau schedule needs 0 < FACTOR < 1 and PATIENCE >= 1")
            }
        }
    }

    public var description: String {
        switch self {
        case .constant: "constant"
        case .auto: "auto"
        case .step(let every, let factor): "step:\(every):\(factor)"
        case .cosine(let warmup, let minFactor): "cosine:\(warmup):\(minFactor)"
        case .plateau(let factor, let patience): "plateau:\(factor):\(patience)"
        }
    }

    /// The factor on the base rate at `step` (1-based), given what bounds the run: its steps
    /// in all (from a step limit, or for `cosine` an epoch limit too) and the fraction of its
    /// time limit used. The decay follows whichever of the two is further along.
    func factor(step: Int, totalSteps: Int?, timeUsed: Double?) -> Float {
        let (warmup, minFactor): (Int, Float)
        switch self {
        case .constant, .plateau: return 1
        case .step(let every, let factor): return pow(factor, Float((step - 1) / every))
        case .cosine(let w, let m): (warmup, minFactor) = (w, m)
        case .auto:
            var progress: Double?
            if let total = totalSteps { progress = Double(step) / Double(total) }
            if let timeUsed { progress = max(progress ?? 0, timeUsed) }
            guard let progress else { return 1 }
            let start = 1 - Self.autoDecayFraction
            // The steps the budget holds: the step limit, or fewer if the time runs out first.
            guard progress > start, Double(step) / progress >= Double(Self.autoMinimumSteps) else { return 1 }
            return 1 - (1 - Self.autoMinFactor) * Float(min(1, (progress - start) / Self.autoDecayFraction))
        }
        if warmup > 0, step <= warmup { return Float(step) / Float(warmup) }
        var progress: Double?
        if let total = totalSteps, total > warmup { progress = Double(step - warmup) / Double(total - warmup) }
        if let timeUsed { progress = max(progress ?? 0, timeUsed) }
        guard let progress else { return 1 }
        return minFactor + (1 - minFactor) * Float(0.5 * (1 + cos(Double.pi * min(1, max(0, progress)))))
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// What happens when a step's loss or gradients are NaN or infinite.
public enum NaNPolicy: String, Codable, Sendable, CaseIterable {
    /// Skip the step, halve the learning rate; stop after 3 bad steps in a row.
    case skip
    /// Stop at once, keeping the last good checkpoint.
    case stop
}

/// Everything about a training run other than the model's shape: stored in config.json and
/// checked on resume.
public struct TrainingConfig: Codable, Sendable, Equatable {
    public var batchSize: Int = 50
    public var seqLength: Int = 50
    public var optimizer = OptimizerConfig(kind: .adam, learningRate: 2e-3)
    public var schedule: LearningRateSchedule = .auto
    /// Decay of the exponential moving average of the weights that validation, previews and
    /// best/ use (nil, the default: the weights as trained; at 10 minutes on tinyshakespeare
    /// an average with 0.999 measured 0.0035 nats worse). Training itself never reads it.
    public var averagingDecay: Float?
    /// Maximum global gradient norm; 0 turns clipping off.
    public var gradClip: Float = 5
    /// Fraction of the corpus held out for validation, unless `validationFile` is set.
    public var valFraction: Double = 0.05
    /// Fraction of the corpus held out for the test: text that plays no part in training or in
    /// choosing the checkpoint, on which the best checkpoint's loss is reported (0: none).
    public var testFraction: Double = 0.05
    /// Which part that is: blocks spread through the text (the default) or its end.
    public var validationSplit: ValidationSplit = .standard
    public var validationFile: String?
    /// Scheduled validations measure at most this many units of the validation text (evenly
    /// spaced pieces of it, the same each time), as nanoGPT's `eval_iters`; the last validation
    /// of a run measures all of it. nil: all of it every time.
    public var validationSampleSize: Int? = 250_000
    /// Stop after this many optimizer steps in total.
    public var maxSteps: Int?
    /// Stop after this many passes over the training split (50 unless another limit is set).
    public var epochs: Int? = 50
    /// Stop after this much training time in total, in seconds.
    public var timeLimit: Double?
    /// Validate (over the whole validation split) and checkpoint every this many steps.
    public var evalEvery: Int = 250
    /// Print a short sample every this many steps (0: never).
    public var sampleEvery: Int = 1000
    public var sampleLength: Int = 200
    /// Temperature of those samples.
    public var sampleTemperature: Float = 0.8
    /// The text those samples continue ("": the start of a line).
    public var samplePrompt: String = ""
    /// At every scheduled validation, keep that step's weights as checkpoints/step-N, this many
    /// of the most recent (0: none).
    public var keepCheckpoints: Int = 0
    /// Stop when this many validations in a row bring no improvement (nil: never).
    public var earlyStoppingPatience: Int? = 8
    public var nanPolicy: NaNPolicy = .skip
    public var seed: UInt64 = 1
    public var threads: Int = BatchRunner.defaultThreads
    /// Report progress every this many steps.
    public var logEvery: Int = 10
    /// A labelling run: restore marks or case, one grapheme for each (nil: a language model,
    /// which predicts the next unit).
    public var task: TaggingTask?

    public init() {}

    /// Bounds on the limits, far beyond any real run, so that counts and products of them can
    /// never overflow (10^11 steps of 2^24 characters stay below 2^63).
    public static let maximumSteps = 100_000_000_000
    public static let maximumEpochs = 1_000_000_000
    public static let maximumSeconds = 100.0 * 365 * 24 * 3600
    /// Characters in one step (batch x sequence length): the network indexes them with 32-bit
    /// integers, and their logits must fit in memory.
    public static let maximumStepCharacters = 1 << 24

    /// Checks every value; throws `CharLMError.invalidOptions` naming the first bad one.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw CharLMError.invalidOptions(message) } }
        try check(batchSize >= 1 && batchSize <= 100_000, "batch size must be between 1 and 100000, got \(batchSize)")
        try check(
            seqLength >= 1 && seqLength <= 100_000, "sequence length must be between 1 and 100000, got \(seqLength)")
        try check(
            batchSize * seqLength <= Self.maximumStepCharacters,
            "batch size x sequence length must be at most \(Self.maximumStepCharacters) characters per step, got "
                + "\(batchSize) x \(seqLength)"
        )
        try check(
            averagingDecay.map { $0 > 0 && $0 < 1 } ?? true,
            "the weight-averaging decay must be between 0 and 1 (exclusive), got \(averagingDecay ?? 0)")
        try check(gradClip >= 0 && gradClip.isFinite, "gradient clipping must be 0 (off) or positive, got \(gradClip)")
        try check(
            validationFile != nil || (valFraction > 0 && valFraction < 1),
            "the validation fraction must be between 0 and 1 (exclusive), got \(valFraction)")
        try check(
            testFraction >= 0 && testFraction < 1,
            "the test fraction must be at least 0 and below 1, got \(testFraction)")
        try check(
            (validationFile != nil ? 0 : valFraction) + testFraction < 1,
            "the validation and test fractions together must leave some text to train on")
        if case .blocks(let size) = validationSplit {
            try check(size >= 1 && size <= 1 << 30, "the validation block size must be between 1 and 2^30, got \(size)")
        }
        try check(validationSampleSize.map { $0 >= 1 } ?? true, "the validation sample must be at least 1 unit")
        try check(
            maxSteps.map { $0 >= 1 && $0 <= Self.maximumSteps } ?? true,
            "the step limit must be between 1 and \(Self.maximumSteps)")
        try check(
            epochs.map { $0 >= 1 && $0 <= Self.maximumEpochs } ?? true,
            "the epoch limit must be between 1 and \(Self.maximumEpochs)")
        try check(
            timeLimit.map { $0 > 0 && $0 <= Self.maximumSeconds } ?? true,
            "the time limit must be positive and at most \(Int(Self.maximumSeconds / 3600)) hours")
        try check(
            evalEvery >= 1 && evalEvery <= Self.maximumSteps,
            "the validation interval must be between 1 and \(Self.maximumSteps) steps, got \(evalEvery)")
        try check(
            sampleEvery >= 0 && sampleEvery <= Self.maximumSteps,
            "the sample interval must be between 0 (never) and \(Self.maximumSteps) steps")
        try check(sampleLength >= 1 && sampleLength <= 1_000_000, "the sample length must be between 1 and 1000000")
        try check(sampleTemperature >= 0 && sampleTemperature.isFinite, "the sample temperature must be 0 or positive")
        try check(
            keepCheckpoints >= 0 && keepCheckpoints <= 100_000,
            "the number of kept checkpoints must be between 0 and 100000")
        try check(
            earlyStoppingPatience.map { $0 >= 1 && $0 <= 1_000_000 } ?? true,
            "the early-stopping patience must be between 1 and 1000000 validations")
        try check(threads >= 1 && threads <= 1024, "the thread count must be between 1 and 1024, got \(threads)")
        try check(
            logEvery >= 1 && logEvery <= Self.maximumSteps, "log interval must be between 1 and \(Self.maximumSteps)")
        if case .cosine = schedule {
            try check(
                maxSteps != nil || epochs != nil || timeLimit != nil,
                "a cosine schedule needs a step, epoch or time limit to know where training ends")
        }
        try schedule.validate()
        do { try optimizer.validate() } catch let e as NetworkError { throw CharLMError.invalidOptions("\(e)") }
    }
}
