import ArgumentParser
import CharLM
import CharNN
import CharTokenizer
import Foundation

/// `charlm train CORPUS`: train a model on a text file, into a run directory.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a character model on a UTF-8 text file.",
        discussion: """
            With no options, trains a 2-layer LSTM (hidden 384, dropout 0.25, batch 50, sequence 50, \
            Adam 2e-3, gradient clipping at 5) for up to 50 epochs with early stopping, into \
            runs/<corpus-name>/. Ctrl-C saves a checkpoint and exits with 130; `--resume RUN` continues \
            exactly where it stopped, and may change the limits, the learning rate, the patience, the \
            NaN policy, reporting and threads.
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

    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Tokenizer") var tokenizer: TokenizerOptions
    @OptionGroup(title: "Optimization") var optimization: OptimizationOptions
    @OptionGroup(title: "Stopping") var limits: LimitOptions
    @OptionGroup(title: "Reporting") var reporting: ReportingOptions

    @Flag(help: "Print only the final summary.")
    var quiet = false

    @Flag(help: "Report progress as JSON lines on stdout.")
    var json = false

    func validate() throws {
        if resume == nil && corpus == nil { throw ValidationError("Give the corpus to train on, or --resume RUN.") }
        if resume != nil && (out != nil || overwrite) {
            throw ValidationError("--resume continues a run in place; --out and --overwrite do not apply.")
        }
        if quiet && json { throw ValidationError("--quiet and --json do not go together.") }
    }

    /// Every option given, in the library's terms.
    var options: RunOptions {
        var options = RunOptions()
        model.add(to: &options)
        tokenizer.add(to: &options)
        optimization.add(to: &options)
        limits.add(to: &options)
        reporting.add(to: &options)
        return options
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
                trainer = try Trainer.resume(
                    runDirectory: URL(fileURLWithPath: resume), corpus: corpus.map { URL(fileURLWithPath: $0) },
                    options: options)
            } else {
                let corpus = corpus!
                let directory = out ?? Self.defaultRunDirectory(for: corpus)
                if !quiet && !json { Console.note("charlm: reading \(corpus)") }
                trainer = try Trainer.start(
                    corpus: URL(fileURLWithPath: corpus), runDirectory: URL(fileURLWithPath: directory),
                    config: options.applied(to: RunConfig()), overwrite: overwrite,
                    shouldStop: { StopSignal.isRequested })
            }
            var display = TrainingDisplay(
                mode: json ? .json : quiet ? .quiet : Console.stderrIsTerminal ? .live : .lines,
                plot: LossPlotFile(run: trainer.run, config: trainer.config))
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
    /// loss.svg, redrawn at every checkpoint.
    let plot: LossPlotFile
    private var lineOpen = false
    /// In `.lines` mode (a pipe or a log file), progress is printed at most this often.
    private let lineInterval = 10.0
    private var lastLine = -Double.infinity

    init(mode: Mode, plot: LossPlotFile) {
        self.mode = mode
        self.plot = plot
    }

    private mutating func line(_ text: String) {
        if lineOpen {
            Console.note("\r\u{1B}[K", newline: false)
            lineOpen = false
        }
        Console.note(text)
    }

    mutating func show(_ event: TrainingEvent) {
        if case .checkpoint(_, false, _) = event { plot.redraw() }
        if mode == .json {
            if let object = Self.json(event) { Console.out(Console.json(object) + "\n") }
            return
        }
        if mode == .quiet { return }
        switch event {
        case .started(let s):
            if let step = s.resumedFromStep { line("charlm: resuming \(s.runDirectory) at step \(step)") }
            line(
                "charlm: \(s.parameterCount.formatted()) parameters, vocabulary \(s.vocabularySize), "
                    + "\(s.trainUnits.formatted()) training and \(s.validationUnits.formatted()) validation units, "
                        + "\(s.stepsPerEpoch) steps per epoch, \(s.threads) thread\(s.threads == 1 ? "" : "s")"
            )
            line("charlm: kernels: \(s.kernels)")
            line("charlm: writing \(s.runDirectory)")
        case .progress(let p):
            let val = p.validationLoss.map { String(format: " | val %.3f", $0) } ?? ""
            let eta = p.etaSeconds.map { " | ETA \(Console.duration($0))" } ?? ""
            let text =
                String(
                    format: "step %d | epoch %d (%.0f%%) | loss %.3f (%.2f bpc)", p.step, p.epoch + 1,
                    p.epochProgress * 100, p.trainLoss, p.bitsPerCharacter)
                + val + String(format: " | lr %.2g | ", p.learningRate)
                + "\(Console.rate(p.charactersPerSecond)) chars/s | \(Console.duration(p.elapsedSeconds))" + eta
            if mode == .live {
                Console.note("\r\u{1B}[K" + text, newline: false)
                lineOpen = true
            } else if p.elapsedSeconds - lastLine >= lineInterval {
                lastLine = p.elapsedSeconds
                line(text)
            }
        case .validation(let v):
            line(
                String(
                    format: "step %d: validation loss %.4f nats/char (%.3f bpc)%@; best %.4f at step %d", v.step,
                    v.loss, v.bitsPerCharacter,
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
            var object: [String: Any] = [
                "event": "finished", "reason": s.reason.rawValue, "step": s.step, "epoch": s.epoch,
                "elapsed_s": s.elapsedSeconds, "run": s.runDirectory,
            ]
            if let b = s.bestValidationLoss { object["best_val_loss"] = b }
            if let b = s.bestStep { object["best_step"] = b }
            Console.out(Console.json(object) + "\n")
            return
        }
        let best =
            s.bestValidationLoss.map {
                String(
                    format: "best validation loss %.4f nats/char (%.3f bpc) at step %d", $0, $0 / log(2),
                    s.bestStep ?? 0)
            } ?? "no validation yet"
        line(
            "charlm: stopped at step \(s.step) after \(Console.duration(s.elapsedSeconds)): \(s.reason.rawValue); "
                + "\(best)"
        )
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
            return [
                "event": "started", "run": s.runDirectory, "parameters": s.parameterCount,
                "vocabulary": s.vocabularySize,
                "train_units": s.trainUnits, "val_units": s.validationUnits, "steps_per_epoch": s.stepsPerEpoch,
                "kernels": s.kernels, "threads": s.threads,
                "resumed_from": s.resumedFromStep.map { $0 as Any } ?? NSNull(),
            ]
        case .progress(let p):
            var o: [String: Any] = [
                "event": "progress", "step": p.step, "epoch": p.epoch, "train_loss": p.trainLoss,
                "bpc": p.bitsPerCharacter,
                "lr": Double(p.learningRate), "chars_per_s": p.charactersPerSecond, "elapsed_s": p.elapsedSeconds,
                "grad_norm": p.gradientNorm, "clipped_steps": p.clippedSteps,
            ]
            if let v = p.validationLoss { o["val_loss"] = v }
            if let e = p.etaSeconds { o["eta_s"] = e }
            return o
        case .validation(let v):
            return [
                "event": "validation", "step": v.step, "val_loss": v.loss, "val_bpc": v.bitsPerCharacter,
                "improved": v.improved,
                "best_val_loss": v.bestLoss, "best_step": v.bestStep,
            ]
        case .sample(let step, let text):
            return ["event": "sample", "step": step, "text": text]
        case .checkpoint(let step, let best, let path):
            return ["event": "checkpoint", "step": step, "best": best, "path": path]
        case .notice(let text):
            return ["event": "notice", "message": text]
        }
    }
}
