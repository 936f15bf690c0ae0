import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLM

@Suite struct SamplerTests {
    let logits: [Float] = [0.5, 3, -1, 2.9, 1, -4, 2, 0]

    @Test func temperatureZeroIsArgmax() {
        var rng = SeededGenerator(seed: 1)
        var sampler = StandardSampler(options: SamplingOptions(temperature: 0))
        for _ in 0..<50 { #expect(sampler.sample(logits: logits, recent: [], using: &rng) == 1) }
        #expect(sampler.sample(logits: [2, 5, 5, 1], recent: [], using: &rng) == 1, "ties go to the lower id")
    }

    @Test func topKNeverLeavesItsSet() {
        var rng = SeededGenerator(seed: 2)
        var sampler = StandardSampler(options: SamplingOptions(temperature: 5, topK: 3))
        let allowed: Set<Int32> = [1, 3, 6]
        #expect(Set(sampler.candidates(logits: logits, recent: []).map(\.id)) == allowed)
        var seen = Set<Int32>()
        for _ in 0..<3000 { seen.insert(sampler.sample(logits: logits, recent: [], using: &rng)) }
        #expect(seen == allowed, "a hot temperature reaches every allowed token and no other")
    }

    @Test func topPKeepsTheSmallestSetReachingP() {
        let probs: [Double] = [0.5, 0.25, 0.15, 0.1]
        let logits = probs.map { Float(log($0)) }
        var rng = SeededGenerator(seed: 3)
        for (p, expected) in [
            (Float(0.5), Set<Int32>([0])), (0.7, [0, 1]), (0.75, [0, 1]), (0.76, [0, 1, 2]), (1.0, [0, 1, 2, 3]),
        ] {
            var sampler = StandardSampler(options: SamplingOptions(topP: p))
            #expect(Set(sampler.candidates(logits: logits, recent: []).map(\.id)) == expected, "p = \(p)")
            for _ in 0..<500 { #expect(expected.contains(sampler.sample(logits: logits, recent: [], using: &rng))) }
        }
        var both = StandardSampler(options: SamplingOptions(topK: 2, topP: 0.99))
        #expect(Set(both.candidates(logits: logits, recent: []).map(\.id)) == [0, 1], "top-k applies before top-p")
        _ = both.sample(logits: logits, recent: [], using: &rng)
    }

    @Test func samplingFollowsTheDistribution() {
        let probs: [Double] = [0.6, 0.3, 0.1]
        let logits = probs.map { Float(log($0)) }
        var rng = SeededGenerator(seed: 4)
        var sampler = StandardSampler(options: SamplingOptions())
        var counts = [0, 0, 0]
        let n = 20000
        for _ in 0..<n { counts[Int(sampler.sample(logits: logits, recent: [], using: &rng))] += 1 }
        for i in 0..<3 { #expect(abs(Double(counts[i]) / Double(n) - probs[i]) < 0.015, "token \(i): \(counts[i])") }
        let cold = StandardSampler(options: SamplingOptions(temperature: 0.5)).candidates(logits: logits, recent: [])
        #expect(abs(cold[0].probability - 0.36 / 0.46) < 1e-6, "temperature 0.5 squares and renormalises")
    }

    @Test func repetitionPenaltyLowersRecentTokens() {
        let sampler = StandardSampler(options: SamplingOptions(temperature: 0, repetitionPenalty: 2))
        #expect(sampler.candidates(logits: [3, 2, -1], recent: [0]).first?.id == 1, "3/2 < 2")
        let none = StandardSampler(options: SamplingOptions(temperature: 0))
        #expect(none.candidates(logits: [3, 2, -1], recent: [0]).first?.id == 0)
        let soft = StandardSampler(options: SamplingOptions(temperature: 1, repetitionPenalty: 2))
        let p = soft.candidates(logits: [0, -1], recent: [1])
        #expect(abs(p.first { $0.id == 1 }!.probability - 1 / (1 + exp(2.0))) < 1e-9, "negative logits are multiplied")
    }

    @Test func invalidOptionsAreRejected() {
        #expect(throws: CharLMError.self) { try SamplingOptions(temperature: -1).validate() }
        #expect(throws: CharLMError.self) { try SamplingOptions(topK: 0).validate() }
        #expect(throws: CharLMError.self) { try SamplingOptions(topP: 1.5).validate() }
        #expect(throws: CharLMError.self) { try SamplingOptions(repetitionPenalty: 0).validate() }
    }
}

/// Generation from a small trained model.
@Suite(.serialized) struct GenerationTests {
    static let trained = smallBracketsModel("generation")

    var model: LanguageModel { Self.trained.1 }

    @Test func theSameSeedGivesTheSameText() throws {
        let request = GenerationRequest(prompt: "(lynx [", length: 120, seed: 42)
        let a = try model.generate(request), b = try model.generate(request)
        #expect(a == b)
        var other = request
        other.seed = 43
        #expect(try model.generate(other)[0].text != a[0].text)
        let streamed = try model.stream(prompt: "(lynx [", length: 120, seed: 42).joined()
        #expect(streamed == a[0].text, "the Sequence yields the same text")
    }

    @Test func batchedSamplesEqualSingleOnes() throws {
        let batch = try model.generate(GenerationRequest(prompt: "<", length: 60, seed: 7, numSamples: 4))
        #expect(batch.count == 4)
        for i in 0..<4 {
            let single = try model.generate(GenerationRequest(prompt: "<", length: 60, seed: 7 + UInt64(i)))
            #expect(single[0].text == batch[i].text, "sample \(i)")
            #expect(batch[i].seed == 7 + UInt64(i))
        }
    }

    @Test func temperatureZeroFollowsTheArgmax() throws {
        let options = SamplingOptions(temperature: 0)
        let out = try model.generate(GenerationRequest(prompt: "(ant ", length: 30, options: options, seed: 1))[0]
        let session = InferenceSession(network: model.network)
        var logits = try session.feed(try model.encodePrompt("(ant "))
        for token in out.tokens {
            let argmax = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!
            #expect(Int(token) == argmax)
            logits = try session.feed([token])
        }
        #expect(out.text == model.tokenizer.decode(out.tokens))
    }

    @Test func stopStringsEndASampleWithoutPrintingThem() throws {
        // The same seed without a stop string shows what the sample would be; a stop string
        // taken from its middle must then fire exactly there.
        let free = try model.generate(GenerationRequest(prompt: "(", length: 400, seed: 5))[0].text
        let characters = Array(free)
        let start = characters.count / 2
        let stop = String(characters[start..<(start + 3)])
        let expected = String(free[..<free.range(of: stop)!.lowerBound])
        var pieces = ""
        let samples = try model.generate(
            GenerationRequest(prompt: "(", length: 400, seed: 5, stop: ["\u{1}never", stop])
        ) { _, text in
            pieces += text
        }
        let s = samples[0]
        #expect(s.stoppedBy == stop, "the stop string \(stop.debugDescription) fired")
        #expect(s.text == expected, "the text ends right before the stop string")
        #expect(!s.text.contains(stop))
        #expect(s.tokens.count < 400)
        #expect(pieces == s.text, "streamed pieces add up to the text")
    }

    /// Found by FuzzPrompt: a stop string of U+FFFD and NUL made Foundation's `range(of:)`
    /// index past the end of the text (a crash). Stops are now matched on UTF-8 bytes.
    @Test func oddStopStringsNeverCrash() throws {
        let crash: [UInt8] = [
            0x48, 0xc3, 0xa9, 0x6c, 0x6c, 0x6f, 0x20, 0xf0, 0x9f, 0x91, 0x8b, 0xf0, 0x9f, 0xc3, 0xb6, 0x72, 0x6c, 0x00,
            0x61, 0x62, 0xfe, 0x00, 0x9f, 0x00, 0xf7, 0x00,
        ]
        let prompt = String(decoding: crash, as: UTF8.self)
        let tokenizer = try Tokenizer.build(
            corpus: "(ant [bee {cat}])\nHéllo 👋🏽 wörld\r\n", config: TokenizerConfig(fallback: .bytes))
        let network = try Network(
            config: NetworkConfig(cell: .gru, vocabularySize: tokenizer.vocabularySize, hiddenSize: 8, layers: 2),
            seed: 1)
        let model = LanguageModel(
            tokenizer: tokenizer, network: network,
            config: RunConfig(model: network.config, training: TrainingConfig(), corpus: nil),
            trainerState: nil, weightsURL: URL(fileURLWithPath: "/dev/null"))
        for stop in [String(prompt.suffix(2)), "\u{FFFD}", "\0", "e\u{301}", "\u{301}"] {
            let samples = try model.generate(
                GenerationRequest(
                    prompt: prompt, length: 40, options: SamplingOptions(temperature: 1.5),
                    seed: 1, numSamples: 3, stop: [stop]))
            for sample in samples where sample.stoppedBy != nil { #expect(!sample.text.contains(stop)) }
        }
        #expect(SampleStream.firstOffset(of: Array("\u{FFFD}\0".utf8), in: Array("ab\u{FFFD}\0c".utf8)) == 2)
        #expect(SampleStream.firstOffset(of: Array("cd".utf8), in: Array("abc".utf8)) == nil)
    }

    @Test func unknownPromptCharactersAreNamed() throws {
        do {
            _ = try model.generate(GenerationRequest(prompt: "(lynx ⚡ Ж)", length: 5))
            Issue.record("the prompt must be refused")
        } catch let error as CharLMError {
            #expect(error.description.contains("U+26A1") && error.description.contains("U+0416"), "\(error)")
        }
    }

    @Test func byteFallbackModelsAcceptAnyPrompt() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        var t = smallTraining(steps: 3, evalEvery: 3)
        t.threads = 1
        _ = try Trainer.start(
            corpus: projectCorpus("brackets.txt"), runDirectory: dir.appendingPathComponent("run"),
            config: smallConfig(training: t, tokenizer: TokenizerConfig(fallback: .bytes))
        ).train()
        let m = try LanguageModel.load(dir.appendingPathComponent("run"))
        let out = try m.generate(GenerationRequest(prompt: "(lynx ⚡ Ж)", length: 10, seed: 1))
        #expect(out[0].tokens.count == 10)
    }

    @Test func anEmptyPromptStartsAtALineStart() throws {
        #expect(model.startID == model.tokenizer.id(for: "\n"))
        let out = try model.generate(GenerationRequest(prompt: "", length: 50, seed: 9))
        #expect(out[0].tokens.count == 50)
    }
}

/// The int8 weights file saved beside a model's float32 weights (`model.int8.safetensors`).
@Suite struct Int8WeightsFileTests {
    /// The same text from the saved int8 weights as from quantizing at load, seeded; the
    /// float32 network, made on demand, equal to the one loaded eagerly.
    @Test func savedWeightsGenerateTheSameText() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let run = try trainedRun(in: dir, steps: 20)
        let request = GenerationRequest(prompt: "(", length: 80, seed: 3)
        let plain = try LanguageModel.load(run)
        #expect(!plain.quantizedWeightsFromFile)
        let expected = try plain.generate(request)[0]
        let saved = try #require(try plain.saveQuantizedWeights())
        #expect(saved.path == run.appendingPathComponent("best/model.int8.safetensors").path)

        let fast = try LanguageModel.load(run)
        #expect(fast.quantizedWeightsFromFile)
        #expect(try fast.saveQuantizedWeights() == nil, "already current")
        #expect(try fast.generate(request)[0].tokens == expected.tokens)
        for name in fast.network.layout.tensors.map(\.name) {
            #expect(try fast.network.tensor(name) == plain.network.tensor(name), "\(name)")
        }
        // Float32 and batches run on the network made on demand.
        for other in [
            GenerationRequest(prompt: "(", length: 40, seed: 4, precision: .f32),
            GenerationRequest(prompt: "(", length: 40, seed: 4, numSamples: 3),
        ] {
            #expect(try fast.generate(other).map(\.tokens) == plain.generate(other).map(\.tokens))
        }
        // `--checkpoint latest` reads the run's own weights, beside which nothing is saved yet.
        let latest = try LanguageModel.load(run, checkpoint: .latest)
        #expect(!latest.quantizedWeightsFromFile)
        #expect(try latest.saveQuantizedWeights()?.path == run.appendingPathComponent("model.int8.safetensors").path)
        #expect(try LanguageModel.load(run, checkpoint: .latest).quantizedWeightsFromFile)
    }

    /// A file made from other weights, a damaged one, or one whose tensors do not fit is
    /// ignored: the model quantizes its own weights, as if there were no file.
    @Test func staleOrDamagedFilesAreIgnored() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let run = try trainedRun(in: dir, steps: 10)
        let weights = run.appendingPathComponent("best/model.safetensors")
        let int8 = run.appendingPathComponent("best/model.int8.safetensors")
        let request = GenerationRequest(prompt: "(", length: 60, seed: 8)
        let model = try LanguageModel.load(run)
        try model.saveQuantizedWeights()
        let good = try Data(contentsOf: int8)

        // New float32 weights in place of the old: the saved file no longer counts.
        let other = try Network(config: model.network.config, seed: 99)
        try writeDurably(CheckpointFiles.modelFile(other, step: 10).encoded(), to: weights)
        let replaced = try LanguageModel.load(run)
        #expect(!replaced.quantizedWeightsFromFile)
        let reference = LanguageModel(
            tokenizer: model.tokenizer, network: other, config: model.config, trainerState: nil, weightsURL: weights)
        #expect(try reference.saveQuantizedWeights() == nil, "a model made in memory saves nothing")
        let expected = try reference.generate(request)[0].tokens
        #expect(try replaced.generate(request)[0].tokens == expected)
        try replaced.saveQuantizedWeights()
        let current = try Data(contentsOf: int8)
        #expect(current != good)

        // Damaged copies of the current file (the weights' identity still matches).
        let header = Int(current.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var flipped = current
        flipped[8 + header / 2] ^= 0x20
        for damaged in [current.prefix(current.count - 1), current.prefix(8 + header), Data("junk".utf8), flipped] {
            try damaged.write(to: int8)
            let loaded = try LanguageModel.load(run)
            #expect(!loaded.quantizedWeightsFromFile)
            #expect(try loaded.generate(request)[0].tokens == expected)
        }
        // A file for another shape of model, stamped with this weights file's identity.
        let wider = try Network(config: NetworkConfig(cell: .gru, vocabularySize: 7, hiddenSize: 9, layers: 1))
        let source = try #require(QuantizedWeightsFile.identity(of: weights))
        try QuantizedWeightsFile.encoded(QuantizedWeights(network: wider), source: source, step: nil).write(to: int8)
        #expect(!(try LanguageModel.load(run).quantizedWeightsFromFile))
        try current.write(to: int8)
        #expect(try LanguageModel.load(run).quantizedWeightsFromFile, "the intact file counts again")
    }

    /// The file's bytes read back from memory (not a mapping), and the fuzzing seed, which
    /// must reach the one-stream kernel: the same logits as the network's own int8 session.
    @Test func int8FilesReadFromMemory() throws {
        let config = NetworkConfig(cell: .lstm, vocabularySize: 5, hiddenSize: 3, layers: 2)
        let net = try Network(config: config, seed: 4)
        let data = QuantizedWeightsFile.encoded(QuantizedWeights(network: net), source: "here", step: "7")
        let file = try SafeTensors(data: data, source: "memory")
        #expect(file.quantizedWeights(config: config, source: "there") == nil, "another identity")
        let weights = try #require(file.quantizedWeights(config: config, source: "here"))
        let expected = try InferenceSession(network: net, precision: .int8, threads: 2).feed([0, 4, 2])
        #expect(try InferenceSession(quantized: weights, threads: 2) { net }.feed([0, 4, 2]) == expected)

        let seed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../Fuzz/Corpus/FuzzSafeTensors/int8-lstm-5x3x2.safetensors")
        let fuzzSeed = try SafeTensors(contentsOf: seed)
        let seeded = try #require(fuzzSeed.quantizedWeights(config: config, source: "seed"))
        let logits = try InferenceSession(quantized: seeded, threads: 2) { net }.feed([0, 4, 2])
        #expect(logits.count == 5 && logits.allSatisfy(\.isFinite))
    }

    /// Saving takes the run's lock, so that it never writes into a checkpoint that a training
    /// is replacing.
    @Test func savingWaitsForTheRunsLock() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let run = try trainedRun(in: dir, steps: 10)
        let model = try LanguageModel.load(run)
        let lock = try RunDirectory(run).lock()
        #expect(throws: CharLMError.self) { try model.saveQuantizedWeights() }
        lock.release()
        #expect(try model.saveQuantizedWeights() != nil)
    }
}
