import ArgumentParser
import CharLM
import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLMTool

/// `charlm train`'s option groups: each option sets its one field of RunConfig, and a resumed
/// run accepts the ones that may change and refuses the others, by flag.
@Suite struct TrainOptionsTests {
    func config(_ arguments: [String]) throws -> RunConfig {
        let train = try #require(try CharLMCommand.parseAsRoot(["train", "corpus.txt"] + arguments) as? Train)
        return train.options.applied(to: RunConfig())
    }

    @Test func noOptionsGiveTheDefaults() throws {
        #expect(try config([]) == RunConfig())
        #expect(RunConfig().training.epochs == 50 && RunConfig().model.hiddenSize == 384)
    }

    @Test func everyOptionSetsItsField() throws {
        let c = try config([
            "--cell", "gru", "--layers", "3", "--hidden", "64", "--dropout", "0.1",
            "--normalization", "nfkd", "--unit", "scalar", "--fallback", "bytes", "--case-fold", "--strip-marks",
            "--keep-newlines", "--min-count", "2", "--max-size", "300", "--replace-invalid",
            "--batch", "16", "--seq-length", "32", "--optimizer", "adamw", "--lr", "0.01", "--lr-schedule", "cosine:10",
            "--weight-decay", "0.05", "--momentum", "0.9", "--grad-clip", "1", "--val-fraction", "0.2", "--seed", "9",
            "--max-steps", "500", "--patience", "0", "--nan-policy", "stop",
            "--eval-every", "50", "--sample-every", "0", "--sample-temperature", "0.5", "--log-every", "5", "--threads",
            "1",
        ])
        #expect(c.model == NetworkConfig(cell: .gru, vocabularySize: 0, hiddenSize: 64, layers: 3, dropout: 0.1))
        #expect(
            c.tokenizer
                == TokenizerConfig(
                    normalization: Normalization(
                        form: .nfkd, caseFold: true, stripMarks: true,
                        normalizeNewlines: false),
                    unit: .scalar, fallback: .bytes, minCount: 2, maxSize: 300, invalidUTF8: .replace))
        let t = c.training
        #expect(
            t.batchSize == 16 && t.seqLength == 32 && t.optimizer.kind == .adamw && t.optimizer.learningRate == 0.01)
        #expect(
            t.schedule == .cosine(warmup: 10, minFactor: 0.1) && t.optimizer.weightDecay == 0.05
                && t.optimizer.momentum == 0.9)
        #expect(t.gradClip == 1 && t.valFraction == 0.2 && t.seed == 9)
        #expect(t.maxSteps == 500 && t.epochs == nil && t.timeLimit == nil, "a limit replaces the default 50 epochs")
        #expect(t.earlyStoppingPatience == nil && t.nanPolicy == .stop)
        #expect(
            t.evalEvery == 50 && t.sampleEvery == 0 && t.sampleTemperature == 0.5 && t.logEvery == 5 && t.threads == 1)
        #expect(
            try config(["--optimizer", "adamw"]).training.optimizer.weightDecay == 0.01, "AdamW's own default decay")
    }

    @Test func aResumeChangesWhatMayChangeAndRefusesTheRestByFlag() throws {
        let run = try config(["--hidden", "64", "--max-steps", "100", "--threads", "2"])
        func options(_ arguments: [String]) throws -> RunOptions {
            try #require(try CharLMCommand.parseAsRoot(["train", "--resume", "r"] + arguments) as? Train).options
        }
        let longer = try options(["--max-steps", "200", "--lr", "0.001", "--sample-temperature", "1", "--threads", "1"])
        #expect(longer.conflicts(resuming: run).isEmpty)
        #expect(longer.applied(to: run).training.maxSteps == 200)
        let changes = longer.changes(resuming: run)
        #expect(changes.map(\.name) == ["--lr", "--max-steps", "--sample-temperature", "--threads"])
        #expect(
            changes.map(\.from) == ["0.002", "100", "0.8", "2"] && changes.map(\.to) == ["0.001", "200", "1.0", "1"])
        #expect(try options(["--hidden", "64"]).conflicts(resuming: run).isEmpty, "the run's own value is no conflict")
        let refused = try options(["--hidden", "128", "--batch", "4", "--unit", "byte"]).conflicts(resuming: run)
        #expect(
            refused == [
                "--hidden 128 (the run uses 64)", "--unit byte (the run uses grapheme)", "--batch 4 (the run uses 50)",
            ])
    }
}
