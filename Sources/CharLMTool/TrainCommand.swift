import ArgumentParser
import CharLM
import CharNN
import CharTokenizer
import Foundation

extension CellKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension NaNPolicy: ExpressibleByArgument {}

/// `charlm train CORPUS`: train a model on a text file, into a run directory.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a character model on a UTF-8 text file.",
        discussion: """
        With no options, trains a 2-layer LSTM (hidden 384, dropout 0.25, batch 50, sequence 50, \
        Adam 2e-3, gradient clipping at 5) for up to 50 epochs with early stopping, into \
        runs/<corpus-name>/. Ctrl-C saves a checkpoint and exits; `--resume RUN` continues exactly \
        where it stopped.
        """
    )

    @Argument(help: "The text file to train on (optional with --resume: the run remembers it).")
    var corpus: String?

    @Option(help: "Run directory to create (default: runs/<corpus name>).")
    var out: String?

    @Option(help: "Continue the run in this directory from its latest checkpoint.")
    var resume: String?

    @Flag(help: "Replace an existing run directory.")
    var overwrite = false

    // MARK: Model

    @Option(help: "Recurrent cell: lstm, gru or rnn (default lstm).")
    var cell: CellKind?

    @Option(help: "Number of stacked recurrent layers (default 2).")
    var layers: Int?

    @Option(help: "Hidden units per layer (default 384).")
    var hidden: Int?

    @Option(help: "Dropout between layers and before the output layer (default 0.25).")
    var dropout: Float?

    // MARK: Tokenizer

    @Option(help: "Unicode normalization: nfc, nfd, nfkc, nfkd or none (default nfc).")
    var normalization: NormalizationForm?

    @Option(help: "Token unit: grapheme, scalar or byte (default grapheme).")
    var unit: TokenUnit?

    @Option(help: "Characters missing from the vocabulary at generation: scalars (an error naming them), bytes (lossless), unknown (<unk>). Default scalars.")
    var fallback: Fallback?

    @Flag(inversion: .prefixedNo, help: "Apply Unicode case folding to the corpus.")
    var caseFold: Bool?

    @Option(help: "Leave out units seen fewer times than this (default 1).")
    var minCount: Int?

    // MARK: Optimisation

    @Option(help: "Streams trained side by side (default 50).")
    var batch: Int?

    @Option(help: "Characters per stream per step: the truncated-BPTT length (default 50).")
    var seqLength: Int?

    @Option(help: "Optimizer: adam, adamw, rmsprop or sgd (default adam).")
    var optimizer: OptimizerKind?

    @Option(help: "Learning rate (default 2e-3).")
    var lr: Float?

    @Option(help: "Learning-rate schedule: constant, step:EVERY:FACTOR, cosine[:WARMUP[:MIN]], plateau[:FACTOR[:PATIENCE]].")
    var lrSchedule: String?

    @Option(help: "Weight decay (decoupled for adamw, L2 otherwise; default 0, adamw 0.01).")
    var weightDecay: Float?

    @Option(help: "Momentum for sgd and rmsprop (default 0).")
    var momentum: Float?

    @Option(help: "Clip the global gradient norm to this; 0 turns clipping off (default 5).")
    var gradClip: Float?

    @Option(help: "Fraction of the corpus, at its end, held out for validation (default 0.1).")
    var valFraction: Double?

    @Option(help: "Validate on this file instead of a split of the corpus.")
    var valFile: String?

    @Option(help: "Seed of initialisation and dropout (default 1).")
    var seed: UInt64?

    // MARK: Stopping and reporting

    @Option(help: "Stop after this many steps in total.")
    var maxSteps: Int?

    @Option(help: "Stop after this many passes over the training split (default 50 when no other limit is given).")
    var epochs: Int?

    @Option(help: "Stop after this much training time in total, e.g. 10m, 1h30m, 90s.")
    var time: Duration?

    @Option(help: "Stop when this many validations in a row bring no improvement; 0 never stops early (default 8).")
    var patience: Int?

    @Option(help: "Validate over the whole validation split, and checkpoint, every this many steps (default 250).")
    var evalEvery: Int?

    @Option(help: "Print a short sample every this many steps; 0 never (default 1000).")
    var sampleEvery: Int?

    @Option(help: "What to do when the loss becomes NaN or Inf: skip (skip the step, halve the rate) or stop.")
    var nanPolicy: NaNPolicy?

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: "Report progress every this many steps (default 10).")
    var logEvery: Int?

    @Flag(help: "Print only the final summary.")
    var quiet = false

    @Flag(help: "Report progress as JSON lines on stdout.")
    var json = false

    func validate() throws {
        if resume == nil && corpus == nil { throw ValidationError("Give the corpus to train on, or --resume RUN.") }
        if resume != nil && (out != nil || overwrite) { throw ValidationError("--resume continues a run in place; --out and --overwrite do not apply.") }
        if let v = layers, v < 1 { throw ValidationError("--layers must be at least 1.") }
        if let v = hidden, v < 1 || v > 16384 { throw ValidationError("--hidden must be between 1 and 16384.") }
        if let v = dropout, !(v >= 0 && v < 1) { throw ValidationError("--dropout must be in [0, 1).") }
        if let v = minCount, v < 1 { throw ValidationError("--min-count must be at least 1.") }
        if let v = patience, v < 0 { throw ValidationError("--patience must not be negative.") }
        if quiet && json { throw ValidationError("--quiet and --json do not go together.") }
    }

    // MARK: Mapping to the library

    var shape: ModelShape {
        let d = ModelShape()
        return ModelShape(cell: cell ?? d.cell, layers: layers ?? d.layers, hiddenSize: hidden ?? d.hiddenSize, dropout: dropout ?? d.dropout)
    }

    var tokenizerConfig: TokenizerConfig {
        var c = TokenizerConfig()
        if let normalization { c.normalization.form = normalization }
        if let unit { c.unit = unit }
        if let fallback { c.fallback = fallback }
        if let caseFold { c.normalization.caseFold = caseFold }
        if let minCount { c.minCount = minCount }
        return c
    }

    func schedule() throws -> LearningRateSchedule? {
        try lrSchedule.map { try LearningRateSchedule(parsing: $0) }
    }

    func trainingConfig() throws -> TrainingConfig {
        var t = TrainingConfig()
        if let batch { t.batchSize = batch }
        if let seqLength { t.seqLength = seqLength }
        if let optimizer {
            let rate = t.optimizer.learningRate
            t.optimizer = OptimizerConfig(kind: optimizer, learningRate: rate)
        }
        if let lr { t.optimizer.learningRate = lr }
        if let weightDecay { t.optimizer.weightDecay = weightDecay }
        if let momentum { t.optimizer.momentum = momentum }
        if let s = try schedule() { t.schedule = s }
        if let gradClip { t.gradClip = gradClip }
        if let valFraction { t.valFraction = valFraction }
        t.validationFile = valFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        if let seed { t.seed = seed }
        t.maxSteps = maxSteps
        t.epochs = epochs
        t.timeLimit = time?.seconds
        if maxSteps == nil && epochs == nil && time == nil { t.epochs = 50 }
        if let patience { t.earlyStoppingPatience = patience == 0 ? nil : patience }
        if let evalEvery { t.evalEvery = evalEvery }
        if let sampleEvery { t.sampleEvery = sampleEvery }
        if let nanPolicy { t.nanPolicy = nanPolicy }
        if let threads { t.threads = threads }
        if let logEvery { t.logEvery = logEvery }
        return t
    }

    var expectations: ResumeExpectations {
        get throws {
            var e = ResumeExpectations()
            e.shape.cell = cell
            e.shape.layers = layers
            e.shape.hiddenSize = hidden
            e.shape.dropout = dropout
            e.tokenizer.form = normalization
            e.tokenizer.unit = unit
            e.tokenizer.fallback = fallback
            e.tokenizer.caseFold = caseFold
            e.tokenizer.minCount = minCount
            e.training.batchSize = batch
            e.training.seqLength = seqLength
            e.training.optimizer = optimizer
            e.training.weightDecay = weightDecay
            e.training.momentum = momentum
            e.training.schedule = try schedule()
            e.training.gradClip = gradClip
            e.training.valFraction = valFraction
            e.training.validationFile = valFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
            e.training.seed = seed
            return e
        }
    }

    var overrides: ResumeOverrides {
        var o = ResumeOverrides()
        if maxSteps != nil || epochs != nil || time != nil {
            o.maxSteps = .some(maxSteps)
            o.epochs = .some(epochs)
            o.timeLimit = .some(time?.seconds)
        }
        o.evalEvery = evalEvery
        o.sampleEvery = sampleEvery
        o.threads = threads
        o.logEvery = logEvery
        o.learningRate = lr
        o.nanPolicy = nanPolicy
        if let patience { o.earlyStoppingPatience = .some(patience == 0 ? nil : patience) }
        return o
    }

    /// runs/<corpus file name without extension>
    static func defaultRunDirectory(for corpus: String) -> String {
        let name = URL(fileURLWithPath: corpus).deletingPathExtension().lastPathComponent
        return "runs/" + (name.isEmpty ? "run" : name)
    }

    // MARK: Running

    func run() throws {
        // Before anything is written: a signal from here on stops training cleanly.
        StopSignal.install()
        Console.onClosedOutput = .stopTraining
        try Console.run {
            let trainer: Trainer
            if let resume {
                trainer = try Trainer.resume(runDirectory: URL(fileURLWithPath: resume), corpus: corpus.map { URL(fileURLWithPath: $0) },
                                             expecting: try expectations, overrides: overrides)
            } else {
                let corpus = corpus!
                let directory = out ?? Self.defaultRunDirectory(for: corpus)
                if !quiet && !json { Console.note("charlm: reading \(corpus)") }
                trainer = try Trainer.start(corpus: URL(fileURLWithPath: corpus), runDirectory: URL(fileURLWithPath: directory),
                                            shape: shape, training: try trainingConfig(), tokenizerConfig: tokenizerConfig,
                                            overwrite: overwrite, shouldStop: { StopSignal.isRequested })
            }
            var display = TrainingDisplay(mode: json ? .json : quiet ? .quiet : Console.stderrIsTerminal ? .live : .lines)
            let summary = try trainer.train(shouldStop: { StopSignal.isRequested }, onEvent: { display.show($0) })
            display.finish(summary)
            if summary.reason == .diverged { throw ExitCode(1) }
            if summary.reason == .interrupted && StopSignal.exitCode != 0 { throw ExitCode(StopSignal.exitCode) }
        }
    }
}

/// Turns training events into a live progress line (terminal), plain lines (pipes, CI),
/// JSON lines, or nothing but the summary.
struct TrainingDisplay {
    enum Mode { case live, lines, json, quiet }
    let mode: Mode
    private var lineOpen = false
    /// In `.lines` mode (a pipe or a log file), progress is printed at most this often.
    private let lineInterval = 10.0
    private var lastLine = -Double.infinity

    init(mode: Mode) {
        self.mode = mode
    }

    private mutating func line(_ text: String) {
        if lineOpen {
            Console.note("\r\u{1B}[K", newline: false)
            lineOpen = false
        }
        Console.note(text)
    }

    mutating func show(_ event: TrainingEvent) {
        if mode == .json {
            if let object = Self.json(event) { Console.out(Console.json(object) + "\n") }
            return
        }
        if mode == .quiet { return }
        switch event {
        case .started(let s):
            if let step = s.resumedFromStep { line("charlm: resuming \(s.runDirectory) at step \(step)") }
            line("charlm: \(s.parameterCount.formatted()) parameters, vocabulary \(s.vocabularySize), \(s.trainUnits.formatted()) training and \(s.validationUnits.formatted()) validation units, \(s.stepsPerEpoch) steps per epoch, \(s.threads) thread\(s.threads == 1 ? "" : "s")")
            line("charlm: kernels: \(s.kernels)")
            line("charlm: writing \(s.runDirectory)")
        case .progress(let p):
            let val = p.validationLoss.map { String(format: " | val %.3f", $0) } ?? ""
            let eta = p.etaSeconds.map { " | ETA \(Console.duration($0))" } ?? ""
            let text = String(format: "step %d | epoch %d (%.0f%%) | loss %.3f (%.2f bpc)", p.step, p.epoch + 1, p.epochProgress * 100, p.trainLoss, p.bitsPerCharacter)
                + val + String(format: " | lr %.2g | ", p.learningRate) + "\(Console.rate(p.charactersPerSecond)) chars/s | \(Console.duration(p.elapsedSeconds))" + eta
            if mode == .live {
                Console.note("\r\u{1B}[K" + text, newline: false)
                lineOpen = true
            } else if p.elapsedSeconds - lastLine >= lineInterval {
                lastLine = p.elapsedSeconds
                line(text)
            }
        case .validation(let v):
            line(String(format: "step %d: validation loss %.4f nats/char (%.3f bpc)%@; best %.4f at step %d", v.step, v.loss, v.bitsPerCharacter,
                        v.improved ? ", new best" : "", v.bestLoss, v.bestStep))
        case .sample(let step, let text):
            line("--- sample at step \(step) ---\n\(text)\n---")
        case .checkpoint:
            break
        case .notice(let text):
            line("charlm: \(text)")
        }
    }

    mutating func finish(_ s: TrainingSummary) {
        if mode == .json {
            var object: [String: Any] = ["event": "finished", "reason": s.reason.rawValue, "step": s.step, "epoch": s.epoch,
                                         "elapsed_s": s.elapsedSeconds, "run": s.runDirectory]
            if let b = s.bestValidationLoss { object["best_val_loss"] = b }
            if let b = s.bestStep { object["best_step"] = b }
            Console.out(Console.json(object) + "\n")
            return
        }
        let best = s.bestValidationLoss.map { String(format: "best validation loss %.4f nats/char (%.3f bpc) at step %d", $0, $0 / log(2), s.bestStep ?? 0) } ?? "no validation yet"
        line("charlm: stopped at step \(s.step) after \(Console.duration(s.elapsedSeconds)): \(s.reason.rawValue); \(best)")
        let run = Self.shellQuoted(s.runDirectory)
        if s.reason == .interrupted {
            line("charlm: checkpoint saved at step \(s.step); continue with: charlm train --resume \(run)")
        }
        if s.bestValidationLoss != nil || s.step > 0 {
            line("charlm: the run is in \(s.runDirectory); generate with: charlm generate \(run) --prompt \"...\"")
        }
    }

    static func shellQuoted(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        let shown = path.hasPrefix(cwd) ? String(path.dropFirst(cwd.count)) : path
        return shown.contains(" ") ? "'\(shown)'" : shown
    }

    static func json(_ event: TrainingEvent) -> [String: Any]? {
        switch event {
        case .started(let s):
            return ["event": "started", "run": s.runDirectory, "parameters": s.parameterCount, "vocabulary": s.vocabularySize,
                    "train_units": s.trainUnits, "val_units": s.validationUnits, "steps_per_epoch": s.stepsPerEpoch,
                    "kernels": s.kernels, "threads": s.threads, "resumed_from": s.resumedFromStep.map { $0 as Any } ?? NSNull()]
        case .progress(let p):
            var o: [String: Any] = ["event": "progress", "step": p.step, "epoch": p.epoch, "train_loss": p.trainLoss, "bpc": p.bitsPerCharacter,
                                    "lr": Double(p.learningRate), "chars_per_s": p.charactersPerSecond, "elapsed_s": p.elapsedSeconds,
                                    "grad_norm": p.gradientNorm, "clipped_steps": p.clippedSteps]
            if let v = p.validationLoss { o["val_loss"] = v }
            if let e = p.etaSeconds { o["eta_s"] = e }
            return o
        case .validation(let v):
            return ["event": "validation", "step": v.step, "val_loss": v.loss, "val_bpc": v.bitsPerCharacter, "improved": v.improved,
                    "best_val_loss": v.bestLoss, "best_step": v.bestStep]
        case .sample(let step, let text):
            return ["event": "sample", "step": step, "text": text]
        case .checkpoint(let step, let best, let path):
            return ["event": "checkpoint", "step": step, "best": best, "path": path]
        case .notice(let text):
            return ["event": "notice", "message": text]
        }
    }
}
