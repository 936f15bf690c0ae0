import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLM

/// Every bad input is one clear error, and nothing is written over.
@Suite struct BadInputTests {
    func startError(_ corpus: URL, in dir: URL, training: TrainingConfig = smallTraining(steps: 5)) -> CharLMError? {
        do {
            _ = try Trainer.start(
                corpus: corpus, runDirectory: dir.appendingPathComponent("run"),
                config: smallConfig(training: training), overwrite: false)
            return nil
        } catch let error as CharLMError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test func corporaThatCannotBeTrainedOnAreRejectedBeforeAnythingIsWritten() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let cases: [(URL, String)] = [
            (dir.appendingPathComponent("missing.txt"), "no such file"),
            (writeFile(dir, "empty.txt", ""), "empty"),
            (writeFile(dir, "short.txt", "just a few words"), "fewer than one step"),
            (dir, "directory"),
        ]
        for (url, phrase) in cases {
            let error = try #require(startError(url, in: dir))
            #expect(error.description.contains(phrase), "\(url.lastPathComponent): \(error)")
            #expect(
                !FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path),
                "nothing written for \(url.lastPathComponent)")
        }
        let binary = dir.appendingPathComponent("binary.bin")
        try Data([0x7F, 0x45, 0x4C, 0x46, 0, 0, 1, 2, 3]).write(to: binary)
        #expect(try #require(startError(binary, in: dir)).description.contains("binary"))
        let invalid = dir.appendingPathComponent("latin1.txt")
        try Data(Array("caf".utf8) + [0xE9] + Array(String(repeating: " and more text", count: 200).utf8)).write(
            to: invalid)
        let error = try #require(startError(invalid, in: dir))
        #expect(error.description.contains("offset 3"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path))
    }

    @Test func anExistingRunIsNotOverwritten() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let run = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        writeFile(run, "notes.txt", "mine")
        let error = try #require(startError(projectCorpus("brackets.txt"), in: dir))
        #expect(error == .runExists(path: run.standardizedFileURL.path))
        #expect(throws: CharLMError.self, "a directory with foreign files is not removed even with overwrite") {
            _ = try Trainer.start(
                corpus: projectCorpus("brackets.txt"), runDirectory: run,
                config: smallConfig(training: smallTraining(steps: 5)), overwrite: true)
        }
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("notes.txt").path))
        let file = writeFile(dir, "precious.txt", "not a run")
        #expect(throws: CharLMError.self, "a file is never removed by --overwrite") {
            _ = try Trainer.start(
                corpus: projectCorpus("brackets.txt"), runDirectory: file,
                config: smallConfig(training: smallTraining(steps: 5)), overwrite: true)
        }
        #expect(try String(contentsOf: file, encoding: .utf8) == "not a run")
    }

    @Test func impossibleOptionValuesAreRejected() throws {
        var t = smallTraining(steps: 5)
        t.batchSize = 0
        #expect(throws: CharLMError.self) { try t.validate() }
        t = smallTraining(steps: 5)
        t.valFraction = 1
        #expect(throws: CharLMError.self) { try t.validate() }
        t = smallTraining(steps: 5)
        t.optimizer.learningRate = -1
        #expect(throws: CharLMError.self) { try t.validate() }
        t = smallTraining(steps: 5)
        t.maxSteps = nil
        t.epochs = nil
        t.schedule = .cosine(warmup: 10, minFactor: 0.1)
        #expect(throws: CharLMError.self, "cosine needs an end") { try t.validate() }
        #expect(throws: CharLMError.self) { try LearningRateSchedule(parsing: "step:0:0.5") }
        #expect(throws: CharLMError.self) { try LearningRateSchedule(parsing: "wiggly") }
        #expect(try LearningRateSchedule(parsing: "cosine:100") == .cosine(warmup: 100, minFactor: 0.1))
        #expect(try LearningRateSchedule(parsing: "step:2000:0.5") == .step(every: 2000, factor: 0.5))
    }

    @Test func resumeRefusesDifferentShapesAndChangedCorpora() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let run = dir.appendingPathComponent("run")
        let copy = dir.appendingPathComponent("corpus.txt")
        try FileManager.default.copyItem(at: projectCorpus("brackets.txt"), to: copy)
        _ = try Trainer.start(
            corpus: copy, runDirectory: run, config: smallConfig(training: smallTraining(steps: 10)), overwrite: false
        ).train()
        var hidden = RunOptions()
        hidden.set(\.model.hiddenSize, to: 32, as: "--hidden")
        var unit = RunOptions()
        unit.set(\.tokenizer.unit, to: .byte, as: "--unit")
        var batch = RunOptions()
        batch.set(\.training.batchSize, to: 4, as: "--batch")
        for (options, expected) in [
            (hidden, "--hidden 32 (the run uses 24)"), (unit, "--unit byte (the run uses grapheme)"),
            (batch, "--batch 4 (the run uses 8)"),
        ] {
            do {
                _ = try Trainer.resume(runDirectory: run, options: options)
                Issue.record("\(expected) must be refused")
            } catch let error as CharLMError {
                #expect(error.description.contains(expected), "\(error)")
            }
        }
        var same = RunOptions()
        same.set(\.model.hiddenSize, to: 24, as: "--hidden")
        same.set(\.training.maxSteps, to: .some(12), as: "--max-steps")
        #expect(throws: Never.self, "options equal to the run's, and a new limit, are accepted") {
            _ = try Trainer.resume(runDirectory: run, options: same)
        }
        let handle = try FileHandle(forWritingTo: copy)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("(more text)\n".utf8))
        try handle.close()
        #expect(throws: CharLMError.self, "a changed corpus is noticed") {
            _ = try Trainer.resume(runDirectory: run)
        }
    }

    @Test func damagedRunFilesGiveClearErrors() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let run = try trainedRun(in: dir, steps: 10)
        let config = run.appendingPathComponent("config.json")
        let original = try Data(contentsOf: config)
        try Data(#"{"format": "something-else", "version": 1}"#.utf8).write(to: config)
        #expect(throws: CharLMError.self) { _ = try LanguageModel.load(run, checkpoint: .latest) }
        try Data(#"{"format": "charlm", "version": 99}"#.utf8).write(to: config)
        do {
            _ = try LanguageModel.load(run, checkpoint: .latest)
            Issue.record("a newer version must be refused")
        } catch let error as CharLMError {
            #expect(error.description.contains("newer"))
        }
        try original.prefix(original.count / 2).write(to: config)
        #expect(throws: CharLMError.self) { _ = try LanguageModel.load(run, checkpoint: .latest) }
        try original.write(to: config)
        let tokenizerFile = run.appendingPathComponent("tokenizer.json")
        try Data("{}".utf8).write(to: tokenizerFile)
        #expect(throws: CharLMError.self) { _ = try LanguageModel.load(run, checkpoint: .latest) }
        #expect(throws: CharLMError.self) { _ = try LanguageModel.load(dir.appendingPathComponent("nothing-here")) }
    }

    // MARK: - Values that used to trap (Swift arithmetic overflow)

    @Test func limitsBeyondAnyRealRunAreRejectedNotOverflowed() throws {
        for adjust in [
            { (t: inout TrainingConfig) in t.maxSteps = 100_000_000_000_000_000 },
            { t in
                t.maxSteps = nil; t.epochs = 10_000_000_000_000_000
            },
            { t in
                t.maxSteps = nil; t.timeLimit = 1e300
            },
            { t in
                t.batchSize = 100_000; t.seqLength = 100_000
            },
            { t in t.evalEvery = Int.max },
            { t in t.sampleLength = Int.max },
        ] {
            var t = smallTraining(steps: 5)
            adjust(&t)
            #expect(throws: CharLMError.self) { try t.validate() }
        }
        var largest = smallTraining(steps: TrainingConfig.maximumSteps)
        largest.maxSteps = nil
        largest.epochs = TrainingConfig.maximumEpochs
        #expect(throws: Never.self, "the largest allowed limits are accepted") { try largest.validate() }
    }

    @Test func extremeTrainerStateValuesAreRefusedWhereTheyAreRead() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let run = try trainedRun(in: dir, steps: 10)
        let url = run.appendingPathComponent("trainer_state.json")
        let original = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let extremes: [(String, Any)] = [
            ("elapsed_seconds", 1e300), ("elapsed_seconds", -1), ("epoch", Int.max), ("characters_seen", Int.max),
            ("running_count", Int.max), ("step", -1), ("cursor", Int.max), ("best_step", 1 << 40), ("rate_factor", 7),
            ("learning_rate", -1), ("bad_steps", Int.max), ("plateau_count", -3),
            ("evaluations_without_improvement", Int.max),
        ]
        for (field, value) in extremes {
            var state = original
            state[field] = value
            try JSONSerialization.data(withJSONObject: state).write(to: url)
            do {
                _ = try TrainerState.load(from: url)
                Issue.record("\(field) = \(value) must be refused")
            } catch let error as CharLMError {
                #expect(error.description.contains(field), "\(field): \(error)")
            }
            let resumed = try Trainer.resume(runDirectory: run)
            #expect(
                resumed.state.step == 0,
                "\(field): the resume falls back to the previous checkpoint, step \(resumed.state.step)")
        }
    }

    @Test func aTensorShapeThatOverflowsIsAnErrorNotATrap() throws {
        let header = #"{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(Data(header.utf8))
        data.append(Data(count: 4))
        do {
            _ = try SafeTensors(data: data, source: "huge")
            Issue.record("a shape of 2^62 float32 values must be refused")
        } catch let error as CharLMError {
            #expect(error.description.contains("overflows"), "\(error)")
        }
        for shape in ["[1.5]", "[true]", "[-1]", "[18446744073709551615]", "[1e30]"] {
            let odd = #"{"w":{"dtype":"F32","shape":"# + shape + #","data_offsets":[0,4]}}"#
            var bytes = Data()
            var count = UInt64(odd.utf8.count).littleEndian
            withUnsafeBytes(of: &count) { bytes.append(contentsOf: $0) }
            bytes.append(Data(odd.utf8))
            bytes.append(Data(count: 4))
            #expect(throws: CharLMError.self, "shape \(shape)") { try SafeTensors(data: bytes, source: "odd") }
        }
    }
}
