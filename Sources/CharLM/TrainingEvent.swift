import Foundation

/// What the trainer reports while it runs; the command line turns these into progress lines.
public enum TrainingEvent: Sendable {
    case started(TrainingStart)
    case progress(TrainingProgress)
    /// Part of a validation pass is done (`fraction` of `units` units).
    case validating(step: Int, fraction: Double, units: Int)
    case validation(ValidationReport)
    case sample(step: Int, text: String)
    case checkpoint(step: Int, best: Bool, path: String)
    /// Something the user should know: clipping, NaN recovery, a skipped step.
    case notice(String)
}

public struct TrainingStart: Sendable {
    public let runDirectory: String
    public let resumedFromStep: Int?
    public let parameterCount: Int
    public let vocabularySize: Int
    public let trainUnits: Int
    public let validationUnits: Int
    /// Units of the test split (0: none is held out).
    public var testUnits: Int = 0
    public let stepsPerEpoch: Int
    public let kernels: String
    public let threads: Int
    /// MPI ranks training together (1: this process alone).
    public var ranks: Int = 1
}

public struct TrainingProgress: Sendable {
    public let step: Int
    public let epoch: Int
    /// Fraction of the current epoch done.
    public let epochProgress: Double
    /// Mean training loss (nats per unit) since the last report.
    public let trainLoss: Double
    public let validationLoss: Double?
    public let learningRate: Float
    public let charactersPerSecond: Double
    public let elapsedSeconds: Double
    /// Estimated seconds left, when a step, epoch or time limit is set.
    public let etaSeconds: Double?
    public let gradientNorm: Double
    /// Steps since the last report whose gradients were clipped.
    public let clippedSteps: Int
    public let steps: Int

    public var bitsPerCharacter: Double { trainLoss / log(2) }
}

public struct ValidationReport: Sendable {
    public let step: Int
    public let loss: Double
    public let improved: Bool
    public let bestLoss: Double
    public let bestStep: Int
    public var bitsPerCharacter: Double { loss / log(2) }
}

/// Why training stopped, and where its results are.
public struct TrainingSummary: Sendable {
    public enum Reason: String, Sendable {
        case maxSteps = "reached the step limit"
        case epochs = "completed the epochs"
        case time = "reached the time limit"
        case earlyStopping = "validation loss stopped improving (early stopping)"
        case interrupted = "interrupted"
        case diverged = "training diverged (NaN or Inf)"
    }

    public let reason: Reason
    public let step: Int
    /// Passes over the training text, as a fraction (3.5: three, and half of the fourth).
    public let epoch: Double
    public let bestValidationLoss: Double?
    public let bestStep: Int?
    /// The loss of the weights training ended with, on the whole validation split.
    public let lastValidationLoss: Double?
    public let elapsedSeconds: Double
    public let runDirectory: String
    /// The best checkpoint's loss on the test split, which played no part in training or in
    /// choosing that checkpoint (nil: no test split, or no checkpoint was validated).
    public var testLoss: Double?
    /// Units of the test split.
    public var testUnits: Int = 0
}
