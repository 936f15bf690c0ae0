import CharNN
import CharTokenizer
import Foundation
@testable import CharLM

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A corpus the project generates itself (corpora/).
func projectCorpus(_ name: String) -> URL {
    repositoryRoot.appendingPathComponent("corpora").appendingPathComponent(name)
}

/// A fresh temporary directory, removed by the caller with `cleanup`.
func temporaryDirectory(_ name: String = #function) -> URL {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
        "charlm-tests-\(safe)-\(UUID().uuidString.prefix(8))")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func cleanup(_ url: URL) {
    try? FileManager.default.removeItem(at: url)
}

/// Writes `text` to a file in `directory` and returns its URL.
@discardableResult
func writeFile(_ directory: URL, _ name: String, _ text: String) -> URL {
    let url = directory.appendingPathComponent(name)
    try! Data(text.utf8).write(to: url)
    return url
}

/// A small, quick training configuration, at a constant learning rate (QualityTests cover
/// the default schedule, which decays to the end of the step limit).
func smallTraining(steps: Int, evalEvery: Int = 10) -> TrainingConfig {
    var t = TrainingConfig()
    t.schedule = .constant
    t.batchSize = 8
    t.seqLength = 16
    t.maxSteps = steps
    t.evalEvery = evalEvery
    t.sampleEvery = 0
    t.logEvery = 1
    t.threads = 2
    t.optimizer.learningRate = 5e-3
    return t
}

/// A small model with `training`, on the default tokenizer.
func smallConfig(training: TrainingConfig = smallTraining(steps: 10), tokenizer: TokenizerConfig = TokenizerConfig())
    -> RunConfig
{
    var config = RunConfig()
    config.model = NetworkConfig(cell: .lstm, vocabularySize: 0, hiddenSize: 24, layers: 2, dropout: 0.1)
    config.tokenizer = tokenizer
    config.training = training
    return config
}

/// Per-step training losses reported through progress events (log every step).
final class LossRecorder: @unchecked Sendable {
    var losses: [Int: Double] = [:]
    var validations: [Int: Double] = [:]
    var notices: [String] = []
    var samples: [Int: String] = [:]

    func record(_ event: TrainingEvent) {
        switch event {
        case .sample(let step, let text): samples[step] = text
        case .progress(let p): losses[p.step] = p.trainLoss
        case .validation(let v): validations[v.step] = v.loss
        case .notice(let n): notices.append(n)
        default: break
        }
    }
}

/// A small model trained for 40 steps on brackets.txt on one thread, in a temporary
/// directory: (the directory, the model).
func smallBracketsModel(_ name: String) -> (URL, LanguageModel) {
    let dir = temporaryDirectory(name)
    var t = smallTraining(steps: 40, evalEvery: 20)
    t.threads = 1
    _ = try! Trainer.start(
        corpus: projectCorpus("brackets.txt"), runDirectory: dir.appendingPathComponent("run"),
        config: smallConfig(training: t)
    ).train()
    return (dir, try! LanguageModel.load(dir.appendingPathComponent("run")))
}

/// A small model trained for `steps` steps on brackets.txt, in DIR/run.
func trainedRun(in directory: URL, steps: Int) throws -> URL {
    let run = directory.appendingPathComponent("run")
    _ = try Trainer.start(
        corpus: projectCorpus("brackets.txt"), runDirectory: run,
        config: smallConfig(training: smallTraining(steps: steps))
    ).train()
    return run
}
