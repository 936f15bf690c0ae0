import ArgumentParser
import CharLM
import CharNN
import CharTokenizer
import Foundation

/// `charlm info RUN`: what a run holds.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a run's model, vocabulary, training state and the kernels in use.")

    @Argument(help: ArgumentHelp("Run directory or model.safetensors.", valueName: "run"))
    var runPath: String

    @Option(help: "Which checkpoint of a run directory: best, latest, or step-N (kept with --keep-checkpoints).")
    var checkpoint: LanguageModel.Checkpoint = .best

    @Flag(help: "Print the information as JSON.")
    var json = false

    func run() throws {
        try Console.run {
            let model = try LanguageModel.load(URL(fileURLWithPath: runPath), checkpoint: checkpoint)
            let m = model.config.model, t = model.config.training, tok = model.tokenizer
            let latestURL = URL(fileURLWithPath: runPath).appendingPathComponent("trainer_state.json")
            // A damaged latest state does not stop `info` from describing the rest.
            var latest: TrainerState?, latestProblem: String?
            if FileManager.default.fileExists(atPath: latestURL.path) {
                do { latest = try TrainerState.load(from: latestURL) } catch { latestProblem = "\(error)" }
            }
            let saved = model.trainerState
            let kernels = BLAS.info
            let units = (0..<Int32(min(tok.vocabularySize, 40))).compactMap { tok.unit(for: $0) }
            if json {
                var object: [String: Any] = [
                    "weights": model.weightsURL.path, "cell": m.cell.rawValue, "layers": m.layers,
                    "hidden_size": m.hiddenSize, "bidirectional": m.bidirectional,
                    "task": model.task?.rawValue ?? NSNull(),
                    "vocabulary_size": m.vocabularySize, "dropout": Double(m.dropout),
                    "parameters": model.network.parameterCount,
                    "tokenizer": [
                        "unit": tok.config.unit.rawValue, "normalization": tok.config.normalization.form.rawValue,
                        "fallback": tok.config.fallback.rawValue, "case_fold": tok.config.normalization.caseFold,
                    ],
                    "training": [
                        "batch": t.batchSize, "seq_length": t.seqLength, "optimizer": t.optimizer.kind.rawValue,
                        "lr": Double(t.optimizer.learningRate), "schedule": t.schedule.description,
                        "grad_clip": Double(t.gradClip),
                        "ema_decay": t.averagingDecay.map { Double($0) as Any } ?? NSNull(),
                        "val_fraction": t.validationFile == nil ? t.valFraction as Any : NSNull(),
                        "test_fraction": t.testFraction,
                    ],
                    "kernels": kernels.summary, "openblas_core": kernels.openBLASCore ?? NSNull(),
                    "kernel_isa": kernels.kernelISA, "weight_gradients": kernels.weightGradients,
                    "distributed": Distributed.isAvailable, "ranks": Distributed.launchedRanks,
                    "unicode_version": Tokenizer.unicodeVersion,
                ]
                object["unit"] = model.config.lossUnit
                if let saved {
                    object["step"] = saved.step
                    object["best_val_loss"] = saved.bestValidationLoss ?? NSNull()
                    object["best_val_bits"] = saved.bestValidationLoss.map { $0 / log(2) } ?? NSNull()
                    object["best_step"] = saved.bestStep ?? NSNull()
                }
                if let latest { object["latest_step"] = latest.step }
                if let latestProblem { object["latest_error"] = latestProblem }
                Console.out(Console.json(object) + "\n")
                return
            }
            var lines: [(String, String)] = []
            lines.append(("weights", model.weightsURL.path))
            lines.append(
                (
                    "model",
                    "\(m.layers)-layer \(m.bidirectional ? "bidirectional " : "")\(m.cell.rawValue.uppercased()), "
                        + "hidden \(m.hiddenSize), dropout \(m.dropout): \(model.network.parameterCount.formatted()) parameters"
                ))
            if let task = model.task {
                lines.append(
                    (
                        "task",
                        "\(task): a tagger; restore a text with charlm restore, measure it with charlm eval"
                    ))
            }
            lines.append(
                (
                    "vocabulary",
                    "\(tok.vocabularySize) tokens (\(tok.config.unit.rawValue)s, "
                        + tok.config.normalization.form.rawValue.uppercased()
                        + (tok.config.normalization.caseFold ? ", case-folded" : "")
                        + ", fallback \(tok.config.fallback.rawValue))"
                ))
            lines.append(
                ("", units.map(displayUnit).joined(separator: " ") + (tok.vocabularySize > units.count ? " …" : "")))
            lines.append(
                (
                    "training",
                    "batch \(t.batchSize) x seq \(t.seqLength), \(t.optimizer.kind.rawValue) lr "
                        + "\(t.optimizer.learningRate) (\(t.schedule)), clip \(t.gradClip)"
                        + (t.averagingDecay.map { ", weights averaged (decay \($0))" } ?? "")
                ))
            lines.append(
                (
                    "held out",
                    (t.validationFile.map { "validation \($0)" } ?? "\(Self.percent(t.valFraction)) for validation")
                        + (t.testFraction > 0 ? ", \(Self.percent(t.testFraction)) for the test" : ", no test split")
                ))
            if let latest {
                lines.append(
                    (
                        "progress",
                        "step \(latest.step), epoch \(latest.epoch + 1), \(latest.charactersSeen.formatted()) "
                            + "characters seen, \(Console.duration(latest.elapsedSeconds)) of training"
                    ))
            } else if let latestProblem {
                lines.append(("progress", "unknown: \(latestProblem)"))
            }
            if let saved, let best = saved.bestValidationLoss {
                lines.append(
                    (
                        "validation",
                        String(
                            format: "best %.4f nats/%@ (%.3f bits/%@, perplexity %.2f) at step %d", best,
                            model.config.lossUnit, best / log(2), model.config.lossUnit, exp(best), saved.bestStep ?? 0)
                    ))
            } else {
                lines.append(("validation", "none yet"))
            }
            if let corpus = model.config.corpus { lines.append(("corpus", corpus)) }
            lines.append(("kernels", kernels.summary))
            lines.append(("distributed", Distributed.summary))
            lines.append(("unicode", "utf8proc \(Tokenizer.utf8procVersion), Unicode \(Tokenizer.unicodeVersion)"))
            let width = lines.map(\.0.count).max() ?? 0
            for (key, value) in lines {
                Console.out(key.padding(toLength: width + 2, withPad: " ", startingAt: 0) + value + "\n")
            }
        }
    }

    /// A fraction as a percentage: 5%, 2.5%.
    static func percent(_ fraction: Double) -> String {
        let value = fraction * 100
        return (value == value.rounded() ? String(Int(value)) : String(format: "%.3g", value)) + "%"
    }
}
