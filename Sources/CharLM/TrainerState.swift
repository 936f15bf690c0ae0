import CharNN
import Foundation

/// The contents of trainer_state.json: where training is, so that a resumed run continues
/// exactly as if it had never stopped.
public struct TrainerState: Codable, Sendable, Equatable {
    public static let currentFormat = "charlm-trainer-state"
    public static let currentVersion = 1

    public struct Evaluation: Codable, Sendable, Equatable {
        public var step: Int
        /// Mean training loss since the previous validation (nil if every step was skipped).
        public var trainLoss: Double?
        public var validationLoss: Double
    }

    public var format = TrainerState.currentFormat
    public var version = TrainerState.currentVersion
    /// Optimizer steps taken.
    public var step = 0
    /// Completed passes over the training split.
    public var epoch = 0
    /// Position of the next chunk within each stream.
    public var cursor = 0
    public var charactersSeen = 0
    /// Training time so far, in seconds, over every session.
    public var elapsedSeconds = 0.0
    /// Learning rate of the last step, and the factor that plateau decay and NaN recovery apply.
    public var learningRate: Float = 0
    public var rateFactor: Float = 1
    /// The lowest validation loss so far (the weights in best/).
    public var bestValidationLoss: Double?
    public var bestStep: Int?
    /// The lowest loss of the scheduled (every-`evalEvery`) validations, which early stopping
    /// and plateau decay compare against.
    public var scheduledBestLoss: Double?
    /// Validations in a row without improvement (early stopping and plateau decay).
    public var evaluationsWithoutImprovement = 0
    public var plateauCount = 0
    /// Bad (NaN/Inf) steps in a row and in total.
    public var consecutiveBadSteps = 0
    public var badSteps = 0
    /// State of the generator that draws sample previews.
    public var rng: [UInt64] = SeededGenerator(seed: 1).state
    /// Every validation so far.
    public var history: [Evaluation] = []
    /// Mean training loss since the last validation (for the history).
    public var runningLoss = 0.0
    public var runningCount = 0
    /// MPI ranks the run last trained on (nil: one process).
    public var ranks: Int?

    public init() {}

    func jsonData() throws -> Data {
        try JSONFile.encode(self)
    }

    /// Reads and validates trainer_state.json.
    public static func load(from url: URL) throws -> TrainerState {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CharLMError.missingFile(path: url.path, hint: "")
        }
        return try load(data: data, source: url.path)
    }

    /// Parses and validates the bytes of a trainer_state.json.
    /// - Parameter source: how to name the data in error messages.
    public static func load(data: Data, source: String) throws -> TrainerState {
        struct Header: Decodable { let format: String? }
        guard (try? JSONDecoder().decode(Header.self, from: data))?.format == currentFormat else {
            throw CharLMError.invalidFile(path: source, reason: "not a charlm trainer state (truncated or damaged?)")
        }
        let state: TrainerState
        do {
            state = try JSONFile.decode(TrainerState.self, from: data, defaults: TrainerState())
        } catch let error as DecodingError {
            throw CharLMError.invalidFile(path: source, reason: "unreadable trainer state: \(error.shortDescription)")
        } catch {
            throw CharLMError.invalidFile(
                path: source, reason: "unreadable trainer state: \(error.localizedDescription)")
        }
        guard state.format == currentFormat else {
            throw CharLMError.invalidFile(path: source, reason: "not a charlm trainer state")
        }
        guard state.version <= currentVersion else {
            throw CharLMError.invalidFile(
                path: source, reason: "trainer state version \(state.version) is newer than this charlm supports")
        }
        if let problem = state.problem {
            throw CharLMError.invalidFile(path: source, reason: "trainer state holds an impossible value: \(problem)")
        }
        return state
    }

    /// Counters read from a file must stay below this (2^53, where doubles still count exactly),
    /// so that training can go on adding to them without overflowing.
    static let maximumCount = 1 << 53

    /// The first field outside its possible range, if any.
    var problem: String? {
        func count(_ name: String, _ value: Int) -> String? {
            value >= 0 && value <= Self.maximumCount ? nil : "\(name) \(value) is outside 0...2^53"
        }
        let counts = [
            ("step", step), ("epoch", epoch), ("cursor", cursor), ("characters_seen", charactersSeen),
            ("evaluations_without_improvement", evaluationsWithoutImprovement), ("plateau_count", plateauCount),
            ("consecutive_bad_steps", consecutiveBadSteps), ("bad_steps", badSteps), ("running_count", runningCount),
        ]
        for (name, value) in counts { if let problem = count(name, value) { return problem } }
        if !(elapsedSeconds >= 0 && elapsedSeconds <= TrainingConfig.maximumSeconds) {
            return "elapsed_seconds \(elapsedSeconds)"
        }
        if !(learningRate.isFinite && learningRate >= 0) { return "learning_rate \(learningRate)" }
        if !(rateFactor >= 0 && rateFactor <= 1) { return "rate_factor \(rateFactor) is not in [0, 1]" }
        if !runningLoss.isFinite { return "running_loss \(runningLoss)" }
        if runningCount > step { return "running_count \(runningCount) is more than the step \(step)" }
        for (name, loss) in [("best_validation_loss", bestValidationLoss), ("scheduled_best_loss", scheduledBestLoss)] {
            if let loss, !loss.isFinite { return "\(name) \(loss)" }
        }
        if let bestStep, !(bestStep >= 0 && bestStep <= step) { return "best_step \(bestStep) is not in 0...\(step)" }
        if (bestStep == nil) != (bestValidationLoss == nil) {
            return "best_step and best_validation_loss must both be set or both be missing"
        }
        for evaluation in history
        where
            !(evaluation.step >= 0 && evaluation.step <= step && evaluation.validationLoss.isFinite
            && (evaluation.trainLoss?.isFinite ?? true))
        {
            return "history entry at step \(evaluation.step)"
        }
        if SeededGenerator(state: rng) == nil { return "rng must be four numbers, not all zero" }
        return nil
    }
}
