import CharLM
import Foundation

/// Turns training events into a live progress line (terminal), plain lines (pipes, CI), JSON
/// lines, or nothing but the summary.
///
/// The live line fits the terminal: fields are dropped, least useful first, until it does,
/// so that it never wraps. Epochs are counted as a fraction everywhere ("epoch 3.94": three
/// passes done and 94% of the fourth); losses are per unit of the run's tokenizer (characters,
/// or bytes for a byte model).
struct TrainingDisplay {
    enum Mode { case live, lines, json, quiet }
    let mode: Mode
    /// "char" or "byte".
    let unit: String
    let config: RunConfig
    /// loss.svg, redrawn at every checkpoint.
    let plot: LossPlotFile
    private var lineOpen = false
    /// In `.lines` mode (a pipe or a log file), progress is printed at most this often.
    private let lineInterval = 10.0
    private var lastLine = -Double.infinity
    /// The last progress line's fields, kept to show validation progress beside them.
    private var lastProgress: TrainingProgress?

    init(mode: Mode, config: RunConfig, plot: LossPlotFile) {
        self.mode = mode
        self.config = config
        self.plot = plot
        unit = config.lossUnit
    }

    // MARK: - Events

    mutating func show(_ event: TrainingEvent) {
        if case .checkpoint(_, false, _) = event { plot.redraw() }
        if mode == .json {
            if let object = json(event) { Console.out(Console.json(object) + "\n") }
            return
        }
        if mode == .quiet { return }
        switch event {
        case .started(let s):
            if let step = s.resumedFromStep { line("charlm: resuming \(s.runDirectory) at step \(step)") }
            line(
                "charlm: \(s.parameterCount.formatted()) parameters, vocabulary \(s.vocabularySize), "
                    + "\(s.trainUnits.formatted()) training, \(s.validationUnits.formatted()) validation"
                    + (s.testUnits > 0 ? " and \(s.testUnits.formatted()) test" : "") + " \(unit)s, "
                    + "\(s.stepsPerEpoch) steps per epoch, \(s.threads) thread\(s.threads == 1 ? "" : "s")")
            line("charlm: kernels: \(s.kernels)")
            if s.ranks > 1 || Distributed.isAvailable { line("charlm: distributed: \(Distributed.summary)") }
            line("charlm: writing \(s.runDirectory)")
        case .progress(let p):
            lastProgress = p
            if mode == .live {
                live(progressLine(p, width: Console.terminalWidth))
            } else if p.elapsedSeconds - lastLine >= lineInterval {
                lastLine = p.elapsedSeconds
                line(progressLine(p, width: .max))
            }
        case .validating(let step, let fraction, let units):
            if mode == .live {
                let text =
                    "step \(step) | validating \(Int(fraction * 100))% of \(Console.rate(Double(units))) \(unit)s"
                live(fitted([text], width: Console.terminalWidth))
            }
        case .validation(let v):
            line(
                String(
                    format: "step %d: validation loss %.4f nats/%@ (%.3f bits/%@)%@; best %.4f at step %d", v.step,
                    v.loss,
                    unit, v.bitsPerCharacter, unit, v.improved ? ", new best" : "", v.bestLoss, v.bestStep))
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
                "event": "finished", "reason": s.reason.rawValue, "step": s.step, "epoch": Double(s.epoch),
                "elapsed_s": s.elapsedSeconds, "run": s.runDirectory, "unit": unit,
            ]
            if let b = s.bestValidationLoss { object["best_val_loss"] = b }
            if let b = s.bestStep { object["best_step"] = b }
            if let v = s.lastValidationLoss { object["val_loss"] = v; object["val_bits"] = v / log(2) }
            if let v = s.testLoss { object["test_loss"] = v; object["test_bits"] = v / log(2) }
            Console.out(Console.json(object) + "\n")
            return
        }
        let best =
            s.bestValidationLoss.map {
                String(
                    format: "best validation loss %.4f nats/%@ (%.3f bits/%@) at step %d", $0, unit, $0 / log(2), unit,
                    s.bestStep ?? 0)
            } ?? "no validation yet"
        line(
            "charlm: stopped at step \(s.step) after \(Console.duration(s.elapsedSeconds)): \(s.reason.rawValue); "
                + "\(best)"
        )
        if let last = s.lastValidationLoss, s.step != s.bestStep {
            line(String(format: "charlm: the final weights: %.4f nats/%@ on the whole validation split", last, unit))
        }
        if let test = s.testLoss {
            line(
                String(
                    format: "charlm: test loss of the best checkpoint %.4f nats/%@ (%.3f bits/%@) on %@ held-out %@s",
                    test, unit, test / log(2), unit, s.testUnits.formatted(), unit))
        }
        let run = Self.shellQuoted(s.runDirectory)
        if let more = continuation(s) {
            line("charlm: to train on: charlm train --resume \(run) \(more)")
        }
        if s.bestValidationLoss != nil || s.step > 0 {
            if config.training.task != nil {
                line("charlm: the run is in \(s.runDirectory); restore a text with: charlm restore \(run) FILE")
            } else {
                line("charlm: the run is in \(s.runDirectory); generate with: charlm generate \(run) --prompt \"...\"")
            }
        }
    }

    /// The options a resume needs to go further than the limit that stopped this session.
    private func continuation(_ s: TrainingSummary) -> String? {
        let t = config.training
        switch s.reason {
        case .interrupted:
            return "(the checkpoint at step \(s.step) is saved)"
        case .maxSteps:
            return "--max-steps \(s.step * 2) (a total: this run has taken \(s.step) steps)"
        case .epochs:
            return "--epochs \((t.epochs ?? 1) * 2) (a total: this run has made \(s.epoch) passes over the text)"
        case .time:
            let next = Console.duration((t.timeLimit ?? s.elapsedSeconds) * 2)
            return "--time \(next) (a total: this run has trained \(Console.duration(s.elapsedSeconds)))"
        case .earlyStopping:
            return "--patience \((t.earlyStoppingPatience ?? 0) * 2) or --patience 0 (validation stopped improving)"
        case .diverged:
            return nil
        }
    }

    // MARK: - Lines

    private mutating func line(_ text: String) {
        if lineOpen {
            Console.note("\r\u{1B}[K", newline: false)
            lineOpen = false
        }
        Console.note(text)
    }

    private mutating func live(_ text: String) {
        Console.note("\r\u{1B}[K" + text, newline: false)
        lineOpen = true
    }

    /// The progress line, with as many fields as fit in `width` columns.
    func progressLine(_ p: TrainingProgress, width: Int) -> String {
        let epoch = String(format: "epoch %.2f", Double(p.epoch) + p.epochProgress)
        let loss = String(format: "loss %.3f", p.trainLoss)
        let bits = String(format: "loss %.3f (%.2f bits/%@)", p.trainLoss, p.bitsPerCharacter, unit)
        let val = p.validationLoss.map { String(format: "val %.3f", $0) }
        let lr = String(format: "lr %.2g", p.learningRate)
        let speed = "\(Console.rate(p.charactersPerSecond)) \(unit)s/s"
        let elapsed = Console.duration(p.elapsedSeconds)
        let eta = p.etaSeconds.map { "ETA \(Console.duration($0))" }
        // From the fullest line to the shortest: each drops the least useful field left.
        let full: [String?] = ["step \(p.step)", epoch, bits, val, lr, speed, elapsed, eta]
        let candidates: [[String?]] = [
            full,
            ["step \(p.step)", epoch, loss, val, lr, speed, elapsed, eta],
            ["step \(p.step)", epoch, loss, val, speed, elapsed, eta],
            ["step \(p.step)", epoch, loss, val, speed, eta],
            ["step \(p.step)", loss, val, speed, eta],
            ["step \(p.step)", loss, val, eta],
            ["step \(p.step)", loss, val],
            ["step \(p.step)", loss],
        ]
        for fields in candidates {
            let text = fields.compactMap { $0 }.joined(separator: " | ")
            if text.count < width { return text }
        }
        return fitted(["step \(p.step)"], width: width)
    }

    /// `fields` joined, cut to `width - 1` columns at most.
    private func fitted(_ fields: [String], width: Int) -> String {
        let text = fields.joined(separator: " | ")
        return text.count < width ? text : String(text.prefix(max(width - 1, 1)))
    }

    static func shellQuoted(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        let shown = path.hasPrefix(cwd) ? String(path.dropFirst(cwd.count)) : path
        return shown.contains(" ") ? "'\(shown)'" : shown
    }

    // MARK: - JSON

    /// The event as one JSON object, with the keys every command uses: losses in nats
    /// (`train_loss`, `val_loss`), bits (`*_bits`), `unit`, `epoch` as a fraction.
    func json(_ event: TrainingEvent) -> [String: Any]? {
        switch event {
        case .started(let s):
            return [
                "event": "started", "run": s.runDirectory, "parameters": s.parameterCount,
                "vocabulary_size": s.vocabularySize,
                "train_units": s.trainUnits, "val_units": s.validationUnits, "test_units": s.testUnits,
                "steps_per_epoch": s.stepsPerEpoch,
                "kernels": s.kernels, "threads": s.threads, "unit": unit, "ranks": s.ranks,
                "resumed_from": s.resumedFromStep.map { $0 as Any } ?? NSNull(),
            ]
        case .progress(let p):
            var o: [String: Any] = [
                "event": "progress", "step": p.step, "epoch": Double(p.epoch) + p.epochProgress,
                "train_loss": p.trainLoss,
                "train_bits": p.bitsPerCharacter, "lr": Double(p.learningRate), "units_per_s": p.charactersPerSecond,
                "elapsed_s": p.elapsedSeconds, "grad_norm": p.gradientNorm, "clipped_steps": p.clippedSteps,
                "unit": unit,
            ]
            if let v = p.validationLoss { o["val_loss"] = v }
            if let e = p.etaSeconds { o["eta_s"] = e }
            return o
        case .validating:
            return nil
        case .validation(let v):
            return [
                "event": "validation", "step": v.step, "val_loss": v.loss, "val_bits": v.bitsPerCharacter,
                "improved": v.improved, "best_val_loss": v.bestLoss, "best_step": v.bestStep, "unit": unit,
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
