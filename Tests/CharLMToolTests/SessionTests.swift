@testable import CharLM
import Foundation
import Testing
@testable import CharLMTool

/// What a user sees: one error format, one vocabulary of JSON keys, a progress line that fits
/// the terminal, losses named by their unit.
@Suite(.serialized) struct SessionTests {
    typealias CLI = CommandLineTests

    @Test func everyCommandReportsErrorsTheSameWay() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        for arguments in [
            ["train"], ["train", CLI.corpus, "--batch", "x"], ["generate"], ["tokenizer", "build"],
            ["tokenizer", "stats", "nope.txt"], ["eval", "nope", "nope.txt"], ["info", "nope"],
            ["bench", "train", "--layers", "0"],
        ] {
            let result = try CLI.charlm(arguments, in: dir)
            #expect(result.status == 64 || result.status == 1, "\(arguments): \(result.status)")
            #expect(result.stderr.hasPrefix("charlm: error: "), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("\nError:"), "\(arguments)")
        }
    }

    @Test func jsonOutputsShareOneVocabularyOneObjectPerLine() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try CLI.charlm(
            ["train", CLI.corpus, "--max-steps", "20", "--json", "--log-every", "5"] + CLI.small, in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        let events = train.stdout.split(separator: "\n").map { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        #expect(events.allSatisfy { $0 != nil }, "every line is one JSON object")
        let progress = try #require(events.compactMap { $0 }.first { $0["event"] as? String == "progress" })
        let validation = try #require(events.compactMap { $0 }.first { $0["event"] as? String == "validation" })
        #expect(
            progress["train_loss"] is Double && progress["train_bits"] is Double
                && progress["unit"] as? String == "char")
        #expect(progress["epoch"] is Double, "epochs as a fraction, as on screen")
        #expect(
            validation["val_loss"] is Double && validation["val_bits"] is Double
                && validation["best_val_loss"] is Double)
        let eval = try CLI.charlm(["eval", "runs/brackets", CLI.corpus, "--json"], in: dir)
        let info = try CLI.charlm(["info", "runs/brackets", "--json"], in: dir)
        let stats = try CLI.charlm(["tokenizer", "stats", CLI.corpus, "--json"], in: dir)
        for (name, output) in [("eval", eval.stdout), ("info", info.stdout), ("stats", stats.stdout)] {
            #expect(output.split(separator: "\n").count == 1, "\(name): one line")
            #expect((try? JSONSerialization.jsonObject(with: Data(output.utf8))) is [String: Any], "\(name)")
        }
        let e = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        let i = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        let s = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        #expect(e["loss"] is Double && e["bits"] is Double && e["unit"] as? String == "char")
        #expect(i["best_val_loss"] is Double && i["best_val_bits"] is Double && i["unit"] as? String == "char")
        #expect(i["vocabulary_size"] as? Int == s["vocabulary_size"] as? Int, "the same key for the same thing")
    }

    @Test func theProgressLineFitsTheTerminal() throws {
        let display = TrainingDisplay(
            mode: .live, config: RunConfig(),
            plot: LossPlotFile(
                run: RunDirectory(URL(fileURLWithPath: "/tmp/x")),
                config: RunConfig()))
        let p = TrainingProgress(
            step: 1_234_567, epoch: 41, epochProgress: 0.937, trainLoss: 1.4213, validationLoss: 1.5651,
            learningRate: 0.002, charactersPerSecond: 15_234, elapsedSeconds: 99_999, etaSeconds: 88_888,
            gradientNorm: 1, clippedSteps: 0, steps: 10)
        for width in [40, 60, 80, 100, 160] {
            let line = display.progressLine(p, width: width)
            #expect(line.count < width, "\(width): \(line)")
            #expect(line.hasPrefix("step 1234567"))
        }
        #expect(display.progressLine(p, width: 80).contains("val 1.565"), "at 80 columns the validation loss is shown")
        #expect(
            display.progressLine(p, width: 200).contains("bits/char")
                && display.progressLine(p, width: 200).contains("epoch 41.94"))
    }

    @Test func aByteModelSpeaksOfBytes() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try CLI.charlm(["train", CLI.corpus, "--max-steps", "10", "--unit", "byte"] + CLI.small, in: dir)
        #expect(
            train.status == 0 && train.stderr.contains("nats/byte") && !train.stderr.contains("nats/char"),
            "\(train.stderr)")
        let svg = try String(contentsOf: dir.appendingPathComponent("runs/brackets/loss.svg"), encoding: .utf8)
        #expect(svg.contains("nats per byte"))

        // eval: losses per byte, and bits per character of the text to compare with char models.
        try String(repeating: "(αβ [γ δ]) ", count: 300).write(
            to: dir.appendingPathComponent("greek.txt"), atomically: true, encoding: .utf8)
        let greek = try CLI.charlm(["train", "greek.txt", "--max-steps", "3", "--unit", "byte"] + CLI.small, in: dir)
        #expect(greek.status == 0, "\(greek.stderr)")
        let eval = try CLI.charlm(["eval", "runs/greek", "greek.txt", "--json"], in: dir)
        let e = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        let units = try #require(e["units"] as? Int), chars = try #require(e["chars"] as? Int)
        let bits = try #require(e["bits"] as? Double), charBits = try #require(e["char_bits"] as? Double)
        #expect(e["unit"] as? String == "byte")
        #expect(Double(units) / Double(chars) > 1.3, "four of every 11 characters are two bytes")
        #expect(abs(charBits - bits * Double(units) / Double(chars)) < 1e-9)

        // One character in two bytes: one byte predicted, no character, so no bits per character.
        try "γ".write(to: dir.appendingPathComponent("one.txt"), atomically: true, encoding: .utf8)
        let one = try CLI.charlm(["eval", "runs/greek", "one.txt", "--json"], in: dir)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any])
        #expect(o["units"] as? Int == 1 && o["chars"] as? Int == 0 && o["char_bits"] == nil, "\(one.stdout)")
    }

    @Test func trainAcceptsEveryTokenizerOption() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dirty = dir.appendingPathComponent("dirty.txt")
        try Data(Array(String(repeating: "(ant [bee]) ", count: 300).utf8) + [0xFF] + Array("\n".utf8)).write(to: dirty)
        let refused = try CLI.charlm(["train", "dirty.txt"] + CLI.small, in: dir)
        #expect(refused.status == 1 && refused.stderr.contains("--replace-invalid"), "\(refused.stderr)")
        let accepted = try CLI.charlm(
            [
                "train", "dirty.txt", "--replace-invalid", "--max-steps", "4", "--strip-marks", "--case-fold",
                "--keep-newlines", "--max-size", "8", "--min-count", "2",
            ] + CLI.small, in: dir)
        #expect(accepted.status == 0, "\(accepted.stderr)")
        let tokenizer = try String(contentsOf: dir.appendingPathComponent("runs/dirty/tokenizer.json"), encoding: .utf8)
        #expect(
            tokenizer.contains("\"max_size\": 8") && tokenizer.contains("\"min_count\": 2")
                && tokenizer.contains("\"invalid_utf8\": \"replace\""))
        #expect(
            tokenizer.contains("\"fallback\": \"bytes\""), "the limit left characters out: they are spelled in bytes")
    }

    @Test func fineTuningAndKeptCheckpointsFromTheCommandLine() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(
            try CLI.charlm(["train", CLI.corpus, "--max-steps", "20", "--keep-checkpoints", "3"] + CLI.small, in: dir)
                .status == 0)
        let step10 = try CLI.charlm(
            ["generate", "runs/brackets", "--checkpoint", "step-10", "--length", "10", "--seed", "1"], in: dir)
        #expect(step10.status == 0, "\(step10.stderr)")
        let tuned = try CLI.charlm(
            [
                "train", CommandLineTests.root.appendingPathComponent("corpora/counting.txt").path, "--init-from",
                "runs/brackets", "--max-steps", "6", "--eval-every", "3", "--sample-every", "0",
            ], in: dir)
        #expect(tuned.status == 0, "\(tuned.stderr)")
        let generated = try CLI.charlm(
            ["generate", "runs/counting", "--prompt", "(ant 7", "--length", "10", "--seed", "1"], in: dir)
        #expect(generated.status == 0, "a prompt with old and new characters: \(generated.stderr)")
        let refused = try CLI.charlm(
            [
                "train", CommandLineTests.root.appendingPathComponent("corpora/counting.txt").path,
                "--init-from", "runs/brackets", "--hidden", "64", "--out", "runs/x",
            ], in: dir)
        #expect(refused.status == 64 && refused.stderr.contains("hidden size 64"), "\(refused.stderr)")
    }

    @Test func theValidationSplitIsChosenOnTheCommandLine() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try CLI.charlm(
            ["train", CLI.corpus, "--max-steps", "4", "--val-split", "blocks:64", "--val-sample", "500"] + CLI.small,
            in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        let config = try RunConfig.load(from: dir.appendingPathComponent("runs/brackets/config.json"))
        #expect(config.training.validationSplit == .blocks(size: 64) && config.training.validationSampleSize == 500)
        let changed = try CLI.charlm(["train", "--resume", "runs/brackets", "--val-split", "tail"], in: dir)
        #expect(
            changed.status == 64 && changed.stderr.contains("--val-split tail"),
            "the split is part of the run: \(changed.stderr)")
        let bad = try CLI.charlm(["train", CLI.corpus, "--val-split", "middle"], in: dir)
        #expect(bad.status == 64 && bad.stderr.contains("blocks, blocks:SIZE or tail"), "\(bad.stderr)")
        let whole = try CLI.charlm(
            [
                "train", CLI.corpus, "--max-steps", "2", "--val-split", "tail", "--val-sample", "0",
                "--out", "runs/tail",
            ] + CLI.small, in: dir)
        #expect(whole.status == 0, "\(whole.stderr)")
        let tail = try RunConfig.load(from: dir.appendingPathComponent("runs/tail/config.json"))
        #expect(
            tail.training.validationSplit == .tail && tail.training.validationSampleSize == nil, "0: the whole split")
    }

    @Test func aStoppedRunSaysWhatToRaiseAndTheResumeDoesIt() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try CLI.charlm(["train", CLI.corpus, "--max-steps", "4"] + CLI.small, in: dir)
        let hint = "charlm: to train on: charlm train --resume runs/brackets --max-steps 8"
        #expect(first.status == 0 && first.stderr.contains(hint), "\(first.stderr)")
        let command = try #require(first.stderr.split(separator: "\n").first { $0.hasPrefix(hint) })
        let arguments = command.dropFirst("charlm: to train on: charlm ".count).split(separator: " ").prefix(5).map(
            String.init)
        let second = try CLI.charlm(arguments, in: dir)
        #expect(second.status == 0 && second.stderr.contains("stopped at step 8"), "\(arguments): \(second.stderr)")
        let epochs = try CLI.charlm(
            ["train", "--resume", "runs/brackets", "--epochs", "1000", "--time", "1s"], in: dir)
        #expect(
            epochs.status == 0 && epochs.stderr.contains("reached the time limit"),
            "limits are replaced as a set: \(epochs.stderr)")
    }
}
