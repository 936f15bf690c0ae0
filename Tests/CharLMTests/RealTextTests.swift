import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLM

/// Text as users bring it: many scripts, a held-out part that is like the whole, invalid
/// bytes, byte models, fine-tuning.
@Suite struct RealTextTests {
    // MARK: - Validation split

    @Test func validationBlocksAreSpreadEvenlyThroughTheText() {
        let (train, validation) = ValidationSplit.blocks(size: 100).ranges(count: 10_000, fraction: 0.1)
        #expect(validation.count == 10, "one block in ten")
        #expect(validation.map(\.count).reduce(0, +) == 1_000)
        #expect(validation.map(\.lowerBound) == stride(from: 400, to: 10_000, by: 1000).map { $0 }, "evenly spaced")
        #expect(train.map(\.count).reduce(0, +) == 9_000)
        let all = (train + validation).sorted { $0.lowerBound < $1.lowerBound }
        #expect(
            zip(all, all.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound } && all.first?.lowerBound == 0,
            "the two splits tile the text")
        let (tailTrain, tail) = ValidationSplit.tail.ranges(count: 10_000, fraction: 0.1)
        #expect(tail == [9_000..<10_000] && tailTrain == [0..<9_000])
        let (_, short) = ValidationSplit.standard.ranges(count: 50_000, fraction: 0.05)
        #expect(
            short.count == 5 && short.map(\.count).reduce(0, +) == 2_500, "a short text has smaller blocks: 100 of 500")
        let (_, tiny) = ValidationSplit.standard.ranges(count: 720, fraction: 0.1)
        #expect(tiny.map(\.count).reduce(0, +) == 70, "a tiny one too")
    }

    @Test func aSpanOfBlocksReadsAsOneText() throws {
        let corpus = try EncodedCorpus(ids: (0..<100).map { Int32($0 % 50) }, vocabularySize: 50)
        let span = TokenSpan(corpus, ranges: [10..<20, 40..<45, 90..<100])
        #expect(span.count == 25)
        let expected: [Int32] = (Array(10..<20) + Array(40..<45) + Array(90..<100)).map { Int32($0 % 50) }
        #expect(span.ids(0..<25) == expected)
        #expect(span.ids(8..<12) == [18, 19, 40, 41], "a read across two blocks")
        let sample = span.sample(atMost: 10, piece: 5)
        #expect(
            sample.count == 10 && sample.ids(0..<10) == span.ids(0..<5) + span.ids(12..<17), "two pieces of 5, 12 apart"
        )
        #expect(span.sample(atMost: 100).count == 25, "a span shorter than the sample is the sample")
    }

    @Test func oldRunsKeepTheTailSplit() throws {
        var config = RunConfig()
        config.model.vocabularySize = 5
        var object = try #require(try JSONSerialization.jsonObject(with: config.jsonData()) as? [String: Any])
        var training = try #require(object["training"] as? [String: Any])
        training["validation_split"] = nil
        training["validation_sample_size"] = nil
        object["training"] = training
        let old = try RunConfig.load(data: JSONSerialization.data(withJSONObject: object), source: "old")
        #expect(old.training.validationSplit == .tail, "a config.json from before blocks means the tail")
        #expect(old.training.validationSampleSize == nil)
        #expect(RunConfig().training.validationSplit == .standard)
    }

    // MARK: - Many scripts

    /// Three scripts in three sections of the file (Chinese, Russian, German), one after the
    /// other as real collections are: a small model learns to go on in the prompt's script.
    @Test func aModelContinuesEachScriptInThatScript() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        var rng = SeededGenerator(seed: 3)
        func words(_ alphabet: [Character], count: Int, separator: String) -> String {
            (0..<count).map { _ in
                String((0..<(2 + Int(rng.next() % 4))).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            }
            .joined(separator: separator)
        }
        let chinese = Array("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年")
        let russian = Array("абвгдежзийклмнопрстуфхцчшщыэюя")
        let german = Array("abcdefghiklmnoprstuwzäöüß")
        let text =
            words(chinese, count: 1500, separator: "，") + "\n" + words(russian, count: 1500, separator: " ") + "\n"
            + words(german, count: 1500, separator: " ") + "\n"
        let corpus = writeFile(dir, "scripts.txt", text)
        var training = smallTraining(steps: 250, evalEvery: 125)
        training.batchSize = 16
        training.seqLength = 32
        training.optimizer.learningRate = 1e-2
        var config = smallConfig(training: training)
        config.model.hiddenSize = 48
        config.model.dropout = 0
        _ = try Trainer.start(corpus: corpus, runDirectory: dir.appendingPathComponent("run"), config: config).train()
        let model = try LanguageModel.load(dir.appendingPathComponent("run"))
        for (prompt, alphabet) in [("的一是不", chinese), ("абвгд", russian), ("abcäö", german)] {
            let request = GenerationRequest(
                prompt: prompt, length: 40, options: SamplingOptions(temperature: 0.8), seed: 1)
            let sample = try model.generate(request)[0].text
            let letters = sample.filter { $0.isLetter }
            let inScript = letters.filter { alphabet.contains($0) }
            #expect(
                letters.count >= 10 && Double(inScript.count) >= 0.9 * Double(letters.count),
                "\(prompt) → \(sample.debugDescription)")
        }
    }

    // MARK: - Bytes

    @Test func theGuardAllowsExactlyTheBytesOfValidUTF8() throws {
        let tokenizer = try Tokenizer.build(corpus: "a", config: TokenizerConfig(unit: .byte, fallback: .bytes))
        // Every sequence of up to three bytes: the guard's choices are valid UTF-8 prefixes.
        for first in 0...255 {
            var guard1 = ValidUTF8Guard(tokenizer: tokenizer)
            let id1 = try #require(tokenizer.id(forByte: UInt8(first)))
            #expect(guard1.allows(id1, room: 4) == Self.isValidPrefix([UInt8(first)]), "byte \(first)")
            guard guard1.allows(id1, room: 4) else { continue }
            guard1.accept(id1)
            for second in [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xE0, 0xFF] {
                let id2 = try #require(tokenizer.id(forByte: UInt8(second)))
                let prefix = [UInt8(first), UInt8(second)]
                #expect(
                    guard1.allows(id2, room: 4) == Self.isValidPrefix(prefix)
                        || (guard1.isBetweenCharacters
                            && Self.isValidPrefix([UInt8(second)])),
                    "\(prefix)")
            }
        }
        var guardrail = ValidUTF8Guard(tokenizer: tokenizer)
        #expect(
            !guardrail.allows(try #require(tokenizer.id(forByte: 0xE4)), room: 2),
            "no room to finish a 3-byte character")
        #expect(guardrail.allows(try #require(tokenizer.id(forByte: 0xE4)), room: 3))
        guardrail.accept(try #require(tokenizer.id(forByte: 0xF0)))
        #expect(!guardrail.allows(try #require(tokenizer.id(forByte: 0x80)), room: 3), "F0 80 is an overlong start")
    }

    static func isValidPrefix(_ bytes: [UInt8]) -> Bool {
        // A prefix is valid when some completion decodes without error.
        let continuations: [[UInt8]] = [
            [], [0x80], [0x80, 0x80], [0x80, 0x80, 0x80], [0x90], [0x90, 0x80], [0x90, 0x80, 0x80],
            [0xA0], [0xA0, 0x80],
        ]
        return continuations.contains { tail in
            String(validating: bytes + tail, as: UTF8.self) != nil
        }
    }

    /// A byte model trained a little on several scripts, sampled hot: never invalid UTF-8.
    @Test func aByteModelNeverEmitsInvalidUTF8() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let text = String(repeating: "Grüße aus Köln — 你好，世界 — Привет, мир! 👋🏽\n", count: 120)
        let corpus = writeFile(dir, "bytes.txt", text)
        var config = smallConfig(
            training: smallTraining(steps: 20, evalEvery: 20), tokenizer: TokenizerConfig(unit: .byte))
        config.model.hiddenSize = 16
        _ = try Trainer.start(corpus: corpus, runDirectory: dir.appendingPathComponent("run"), config: config).train()
        let model = try LanguageModel.load(dir.appendingPathComponent("run"))
        #expect(model.config.lossUnit == "byte")
        let samples = try model.generate(
            GenerationRequest(
                prompt: "Grü", length: 301, options: SamplingOptions(temperature: 2),
                seed: 9, numSamples: 8))
        for sample in samples {
            #expect(!sample.text.contains("\u{FFFD}"), "\(sample.text.debugDescription)")
            #expect(
                String(
                    validating: sample.tokens.map {
                        UInt8(truncatingIfNeeded: model.tokenizer.vocabulary[Int($0)].utf8[0])
                    },
                    as: UTF8.self) != nil)
            #expect(sample.tokens.count == 301, "the length is kept: no character is started without room to finish it")
        }
    }

    // MARK: - Dirty input and fine-tuning

    @Test func invalidBytesAreAnErrorOrReplacedWhenAsked() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let file = dir.appendingPathComponent("latin1.txt")
        try Data(Array(String(repeating: "(ant [bee]) ", count: 60).utf8) + [0xE9, 0xFF] + Array(" (cat)\n".utf8))
            .write(to: file)
        do {
            _ = try Trainer.start(corpus: file, runDirectory: dir.appendingPathComponent("a"), config: smallConfig())
            Issue.record("invalid UTF-8 must be refused")
        } catch let error as CharLMError {
            #expect(error.description.contains("offset 720") && error.description.contains("replace"), "\(error)")
        }
        var config = smallConfig()
        config.tokenizer.invalidUTF8 = .replace
        let trainer = try Trainer.start(corpus: file, runDirectory: dir.appendingPathComponent("b"), config: config)
        #expect(trainer.tokenizer.id(for: "\u{FFFD}") != nil, "each invalid sequence became U+FFFD")
    }

    @Test func fineTuningKeepsTheWeightsOfKnownCharactersAndExtendsTheVocabulary() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let source = try trainedRun(in: dir, steps: 20)
        let base = try LanguageModel.load(source)
        var config = smallConfig(training: smallTraining(steps: 6, evalEvery: 3))
        config.model = base.config.model
        let tuned = try Trainer.start(
            corpus: projectCorpus("counting.txt"), runDirectory: dir.appendingPathComponent("tuned"),
            config: config, initFrom: source)
        #expect(tuned.config.initializedFrom == base.weightsURL.path)
        let newTokens = tuned.tokenizer.vocabulary.map(\.text)
        #expect(Set(base.tokenizer.vocabulary.map(\.text)).isSubset(of: Set(newTokens)))
        #expect(
            newTokens.contains("7") && !base.tokenizer.vocabulary.map(\.text).contains("7"),
            "the new text's digits are added")
        let oldOut = try base.network.tensor("out.weight"), newOut = try tuned.network.tensor("out.weight")
        let H = base.config.model.hiddenSize
        for unit in ["a", "(", " "] {
            let old = Int(try #require(base.tokenizer.id(for: unit))),
                new = Int(try #require(tuned.tokenizer.id(for: unit)))
            #expect(Array(oldOut[(old * H)..<((old + 1) * H)]) == Array(newOut[(new * H)..<((new + 1) * H)]), "\(unit)")
        }
        #expect(try base.network.tensor("rnn.weight_hh_l1") == tuned.network.tensor("rnn.weight_hh_l1"))
        _ = try tuned.train()
        var wrong = config
        wrong.model.hiddenSize = 32
        #expect(throws: CharLMError.self, "a fine-tuned model keeps its shape") {
            _ = try Trainer.start(
                corpus: projectCorpus("counting.txt"), runDirectory: dir.appendingPathComponent("wrong"),
                config: wrong, initFrom: source)
        }
    }

    @Test func stepCheckpointsAreKeptAndLoadable() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        var training = smallTraining(steps: 40, evalEvery: 10)
        training.keepCheckpoints = 2
        let run = dir.appendingPathComponent("run")
        _ = try Trainer.start(
            corpus: projectCorpus("brackets.txt"), runDirectory: run, config: smallConfig(training: training)
        ).train()
        #expect(RunDirectory(run).keptCheckpointSteps() == [30, 40], "the two latest")
        let thirty = try LanguageModel.load(run, checkpoint: .step(30))
        #expect(thirty.trainerState?.step == 30)
        #expect(throws: CharLMError.self) { _ = try LanguageModel.load(run, checkpoint: .step(10)) }
        #expect(LanguageModel.Checkpoint("step-30") == .step(30) && LanguageModel.Checkpoint("best") == .best)
        #expect(LanguageModel.Checkpoint("step-x") == nil)
    }
}
