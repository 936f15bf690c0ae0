import ArgumentParser
import CharLM
import CharNN
import CharTokenizer
import Foundation

// The options that set a run's `RunConfig`, one group per part of it. Every option is
// optional: a group adds only the options the user gave to `RunOptions`, naming each by its
// flag, so that a new run applies them to charlm's defaults and a resumed run to its own
// config (refusing, flag by flag, those that would change a fixed field).
//
// Adding an option: a property here with its `options.set(...)` line, and the field in
// `RunConfig` (NetworkConfig, TokenizerConfig or TrainingConfig) that it sets.

extension CellKind: ExpressibleByArgument {}
extension WeightPrecision: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension NaNPolicy: ExpressibleByArgument {}
extension NormalizationForm: ExpressibleByArgument {}
extension TokenUnit: ExpressibleByArgument {}
extension Fallback: ExpressibleByArgument {}
extension TaggingTask: ExpressibleByArgument {}

/// The network (config.json's `model`).
struct ModelOptions: ParsableArguments {
    @Option(help: "Recurrent cell: lstm, gru or rnn (default lstm).")
    var cell: CellKind?

    @Option(help: "Number of stacked recurrent layers (default 2).")
    var layers: Int?

    @Option(help: "Hidden units per layer (default 384).")
    var hidden: Int?

    @Option(help: "Dropout between layers and before the output layer (default 0.25).")
    var dropout: Float?

    @Option(
        help: ArgumentHelp(
            "Learn an input embedding of this width (torch-rnn's wordvec_size) instead of one-hot inputs (default: "
                + "one-hot).")
    )
    var embedding: Int?

    @Flag(
        help: ArgumentHelp(
            "Bidirectional layers (PyTorch's bidirectional=True): each position sees the whole chunk, left and "
                + "right. For --task only: such a model labels text, it cannot generate it."))
    var bidirectional = false

    @Option(
        help: ArgumentHelp(
            "Train a tagger instead of a language model: restore-marks (input: the text with its diacritics "
                + "stripped) or restore-case (input: the text case-folded); the target is the text itself. Its tokenizer "
                + "is fixed: every grapheme of the corpus after NFC.",
            valueName: "task"))
    var task: TaggingTask?

    func add(to options: inout RunOptions) {
        options.set(\.model.cell, to: cell, as: "--cell")
        options.set(\.model.layers, to: layers, as: "--layers")
        options.set(\.model.hiddenSize, to: hidden, as: "--hidden")
        options.set(\.model.dropout, to: dropout, as: "--dropout")
        options.set(\.model.embeddingSize, to: embedding.map(Optional.some), as: "--embedding")
        if bidirectional { options.set(\.model.bidirectional, to: true, as: "--bidirectional") }
        options.set(\.training.task, to: task.map(Optional.some), as: "--task")
    }
}

/// How text becomes tokens: `train`, `tokenizer build` and `tokenizer stats` share them.
struct TokenizerOptions: ParsableArguments {
    @Option(help: "Unicode normalization: nfc, nfd, nfkc, nfkd or none (default nfc).")
    var normalization: NormalizationForm?

    @Option(help: "Token unit: grapheme (user-perceived character), scalar (code point) or byte (default grapheme).")
    var unit: TokenUnit?

    @Option(help: "Units missing from the vocabulary: scalars (an error naming them), bytes (lossless) or unknown.")
    var fallback: Fallback?

    @Flag(inversion: .prefixedNo, help: "Apply Unicode case folding (\"Straße\" → \"strasse\").")
    var caseFold: Bool?

    @Flag(inversion: .prefixedNo, help: "Remove combining marks (accents): \"é\" → \"e\".")
    var stripMarks: Bool?

    @Flag(inversion: .prefixedNo, help: "Keep CR and CRLF as they are instead of turning them into LF.")
    var keepNewlines: Bool?

    @Option(help: "Leave out units seen fewer times than this (default 1).")
    var minCount: Int?

    @Option(
        help: ArgumentHelp(
            "Keep at most this many distinct characters, the most frequent; the rest are spelled in bytes (default "
                + "1024; 0: no limit).")
    )
    var maxSize: Int?

    @Flag(inversion: .prefixedNo, help: "Replace invalid UTF-8 with U+FFFD instead of stopping with an error.")
    var replaceInvalid: Bool?

    func validate() throws {
        if let minCount, minCount < 1 { throw ValidationError("--min-count must be at least 1.") }
        if let maxSize, maxSize < 0 { throw ValidationError("--max-size must be 0 (no limit) or more.") }
    }

    func add(to options: inout RunOptions) {
        options.set(\.tokenizer.normalization.form, to: normalization, as: "--normalization")
        options.set(\.tokenizer.unit, to: unit, as: "--unit")
        options.set(\.tokenizer.fallback, to: fallback, as: "--fallback")
        options.set(\.tokenizer.normalization.caseFold, to: caseFold, as: "--case-fold")
        options.set(\.tokenizer.normalization.stripMarks, to: stripMarks, as: "--strip-marks")
        options.set(\.tokenizer.normalization.normalizeNewlines, to: keepNewlines.map { !$0 }, as: "--keep-newlines")
        options.set(\.tokenizer.minCount, to: minCount, as: "--min-count")
        options.set(\.tokenizer.maxSize, to: maxSize.map { $0 == 0 ? nil : $0 }, as: "--max-size")
        options.set(\.tokenizer.invalidUTF8, to: replaceInvalid.map { $0 ? .replace : .error }, as: "--replace-invalid")
    }

    /// The tokenizer options given, on charlm's defaults.
    var tokenizerConfig: TokenizerConfig {
        var options = RunOptions()
        add(to: &options)
        return options.applied(to: RunConfig()).tokenizer
    }
}

/// What each step learns from, and how (config.json's `training`).
struct OptimizationOptions: ParsableArguments {
    @Option(help: "Streams trained side by side (default 50).")
    var batch: Int?

    @Option(help: "Characters per stream per step: the truncated-BPTT length (default 50).")
    var seqLength: Int?

    @Option(help: "Optimizer: adam, adamw, rmsprop or sgd (default adam).")
    var optimizer: OptimizerKind?

    @Option(help: "Learning rate (default 2e-3).")
    var lr: Float?

    @Option(
        help: ArgumentHelp(
            "Learning-rate schedule: auto (the default: with a --time or --max-steps limit of 1000 steps or more, "
                + "a straight decay to 0.1x over its last quarter; constant otherwise), constant, step:EVERY:FACTOR, cosine[:WARMUP[:MIN]] (to "
                + "the end of the step, epoch or time limit), plateau[:FACTOR[:PATIENCE]]."),
        transform: { try LearningRateSchedule(parsing: $0) })
    var lrSchedule: LearningRateSchedule?

    @Option(help: "Weight decay (decoupled for adamw, L2 otherwise; default 0, adamw 0.01).")
    var weightDecay: Float?

    @Option(help: "Momentum for sgd and rmsprop (default 0).")
    var momentum: Float?

    @Option(help: "Clip the global gradient norm to this; 0 turns clipping off (default 5).")
    var gradClip: Float?

    @Option(
        help: ArgumentHelp(
            "Validate, preview and keep as best/ an exponential moving average of the weights with this decay per "
                + "step, e.g. 0.999 (default 0: the weights as trained).", valueName: "decay"))
    var emaDecay: Float?

    @Option(help: "Fraction of the corpus held out for validation: it picks the best checkpoint (default 0.05).")
    var valFraction: Double?

    @Option(
        help: ArgumentHelp(
            "Fraction of the corpus held out for the test, on which the best checkpoint's loss is reported; no "
                + "part of training sees it (default 0.05; 0: none)."))
    var testFraction: Double?

    @Option(
        help: ArgumentHelp(
            "Where the held-out text is: blocks (4096 units, spread evenly through the corpus), blocks:SIZE, "
                + "or tail (the end, as char-rnn; default blocks).", valueName: "split"),
        transform: { try ValidationSplit(parsing: $0) })
    var valSplit: ValidationSplit?

    @Option(
        help: ArgumentHelp(
            "Units of the validation split each validation reads, spread through it; the whole split is "
                + "read once at the end (default 250000; 0: always the whole split).", valueName: "units"))
    var valSample: Int?

    @Option(help: "Validate on this file instead of a split of the corpus.")
    var valFile: String?

    @Option(help: "Seed of initialisation and dropout (default 1).")
    var seed: UInt64?

    func add(to options: inout RunOptions) {
        options.set(\.training.batchSize, to: batch, as: "--batch")
        options.set(\.training.seqLength, to: seqLength, as: "--seq-length")
        if let optimizer {
            // Another optimizer starts from its own defaults (AdamW's weight decay), at the rate set so far.
            options.update(\.training.optimizer.kind, as: "--optimizer") {
                $0.training.optimizer = OptimizerConfig(
                    kind: optimizer, learningRate: $0.training.optimizer.learningRate)
            }
        }
        options.set(\.training.optimizer.learningRate, to: lr, as: "--lr")
        options.set(\.training.schedule, to: lrSchedule, as: "--lr-schedule")
        options.set(\.training.optimizer.weightDecay, to: weightDecay, as: "--weight-decay")
        options.set(\.training.optimizer.momentum, to: momentum, as: "--momentum")
        options.set(\.training.gradClip, to: gradClip, as: "--grad-clip")
        options.set(\.training.averagingDecay, to: emaDecay.map { $0 == 0 ? nil : $0 }, as: "--ema-decay")
        options.set(\.training.valFraction, to: valFraction, as: "--val-fraction")
        options.set(\.training.testFraction, to: testFraction, as: "--test-fraction")
        options.set(\.training.validationSplit, to: valSplit, as: "--val-split")
        options.set(\.training.validationSampleSize, to: valSample.map { $0 == 0 ? nil : $0 }, as: "--val-sample")
        options.set(
            \.training.validationFile, to: valFile.map { .some(URL(fileURLWithPath: $0).standardizedFileURL.path) },
            as: "--val-file")
        options.set(\.training.seed, to: seed, as: "--seed")
    }
}

/// When training stops. Limits replace the run's limits as a set: giving any of them removes
/// the others (and the default of 50 epochs).
struct LimitOptions: ParsableArguments {
    @Option(help: "Stop after this many steps in total.")
    var maxSteps: Int?

    @Option(help: "Stop after this many passes over the training split (default 50 when no other limit is given).")
    var epochs: Int?

    @Option(help: "Stop after this much training time in total, e.g. 10m, 1h30m, 90s, the last validation included.")
    var time: Duration?

    @Option(help: "Stop when this many validations in a row bring no improvement; 0 never stops early (default 8).")
    var patience: Int?

    @Option(help: "What to do when the loss becomes NaN or Inf: skip (skip the step, halve the rate) or stop.")
    var nanPolicy: NaNPolicy?

    func add(to options: inout RunOptions) {
        if maxSteps != nil || epochs != nil || time != nil {
            options.set(\.training.maxSteps, to: .some(maxSteps), as: "--max-steps")
            options.set(\.training.epochs, to: .some(epochs), as: "--epochs")
            options.set(\.training.timeLimit, to: .some(time?.seconds), as: "--time")
        }
        if let patience {
            options.set(\.training.earlyStoppingPatience, to: .some(patience == 0 ? nil : patience), as: "--patience")
        }
        options.set(\.training.nanPolicy, to: nanPolicy, as: "--nan-policy")
    }
}

/// How often training validates, saves and reports, and on how many threads.
struct ReportingOptions: ParsableArguments {
    @Option(help: "Validate (see --val-sample) and checkpoint every this many steps (default 250).")
    var evalEvery: Int?

    @Option(help: "Print a short sample every this many steps; 0 never (default 1000).")
    var sampleEvery: Int?

    @Option(help: "Temperature of those samples (default 0.8).")
    var sampleTemperature: Float?

    @Option(help: "Text those samples continue (default: the start of a line).")
    var samplePrompt: String?

    @Option(help: "Characters per sample (default 200).")
    var sampleLength: Int?

    @Option(
        help:
            "At every validation, keep that step's weights as checkpoints/step-N: this many of the latest (default 0).")
    var keepCheckpoints: Int?

    @Option(help: "Report progress every this many steps (default 10).")
    var logEvery: Int?

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    func add(to options: inout RunOptions) {
        options.set(\.training.evalEvery, to: evalEvery, as: "--eval-every")
        options.set(\.training.sampleEvery, to: sampleEvery, as: "--sample-every")
        options.set(\.training.sampleTemperature, to: sampleTemperature, as: "--sample-temperature")
        options.set(\.training.samplePrompt, to: samplePrompt, as: "--sample-prompt")
        options.set(\.training.sampleLength, to: sampleLength, as: "--sample-length")
        options.set(\.training.keepCheckpoints, to: keepCheckpoints, as: "--keep-checkpoints")
        options.set(\.training.logEvery, to: logEvery, as: "--log-every")
        options.set(\.training.threads, to: threads, as: "--threads")
    }
}
