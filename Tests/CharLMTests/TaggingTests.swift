import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLM

/// Taggers: the reduced forms and candidates, the batches, the word baseline, and training a
/// bidirectional tagger on a text where only the right context tells the answer.
@Suite struct TaggingTests {
    func scheme(_ task: TaggingTask, _ text: String) throws -> TaggingScheme {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let tokenizer = try TaggingScheme.buildTokenizer(task: task, corpusFile: writeFile(dir, "corpus.txt", text))
        return try TaggingScheme(task: task, tokenizer: tokenizer)
    }

    @Test func marksAreStrippedAndEveryFormIsACandidateOfItsInput() throws {
        let s = try scheme(.restoreMarks, "Příliš žluťoučký kůň úpěl ďábelské ódy. ŽLUŤOUČKÝ KŮŇ\n")
        let t = s.tokenizer
        func id(_ unit: String) throws -> Int32 { try #require(t.id(for: unit), "\(unit) in the vocabulary") }
        #expect(s.inputOf[Int(try id("ř"))] == (try id("r")))
        #expect(s.inputOf[Int(try id("Ž"))] == (try id("Z")), "case stays")
        #expect(s.inputOf[Int(try id("ů"))] == (try id("u")))
        #expect(Set(s.candidateLists[Int(try id("u"))]) == Set(try ["u", "ú", "ů"].map(id)))
        #expect(s.candidateLists[Int(try id("k"))] == [try id("k")], "a letter with no marked form has one candidate")
        #expect(s.inputOf[Int(try id("k"))] == (try id("k")))
        // "D", "Y", "B" never appear unmarked in upper case... but "Ď" does not appear at all;
        // the stripped forms of the text's marked letters are all in the vocabulary.
        for (id, entry) in t.vocabulary.enumerated() where !entry.isSpecial {
            let reduced = TaggingTask.restoreMarks.reduce(entry.text)
            #expect(t.unit(for: s.inputOf[id]) == reduced, "\(entry.text) reads as \(reduced)")
            #expect(s.candidates.allows(Int32(id), for: s.inputOf[id]))
        }
        #expect(s.unchanged.isEmpty)
        let e = try id("e"), k = try id("k")
        #expect(s.isAmbiguous(e) && !s.isAmbiguous(k))
    }

    @Test func aReducedFormTheTextLacksJoinsTheVocabulary() throws {
        let s = try scheme(.restoreMarks, "ůůů ěě\n")
        #expect(s.tokenizer.id(for: "u") != nil && s.tokenizer.id(for: "e") != nil)
        #expect(s.inputOf[Int(s.tokenizer.id(for: "ů")!)] == s.tokenizer.id(for: "u"))
    }

    @Test func caseIsFoldedAndAFormThatIsNotOneGraphemeStaysAsItIs() throws {
        let s = try scheme(.restoreCase, "Straße ÁBC abc Σοφός ΣΟΦΌΣ\n")
        let t = s.tokenizer
        #expect(s.inputOf[Int(t.id(for: "Á")!)] == t.id(for: "á"), "á joined the vocabulary as Á's input")
        #expect(Set(s.candidateLists[Int(t.id(for: "a")!)]) == Set([t.id(for: "a")!]), "no capital A in the text")
        #expect(Set(s.candidateLists[Int(t.id(for: "b")!)]) == Set([t.id(for: "b")!, t.id(for: "B")!]))
        #expect(s.unchanged == ["ß"], "ß folds to ss, two graphemes: left as it is")
        #expect(s.inputOf[Int(t.id(for: "ß")!)] == t.id(for: "ß"))
        // Final sigma folds to σ: σ may become σ, ς or Σ.
        #expect(Set(s.candidateLists[Int(t.id(for: "σ")!)]) == Set(["σ", "ς", "Σ"].map { t.id(for: $0)! }))
    }

    @Test func aLabellingBatchPairsEachCharacterWithItsReducedForm() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let url = writeFile(dir, "c.txt", String(repeating: "kůň běží přes louku. ", count: 20))
        let tokenizer = try TaggingScheme.buildTokenizer(task: .restoreMarks, corpusFile: url)
        let s = try TaggingScheme(task: .restoreMarks, tokenizer: tokenizer)
        let batcher = try StreamBatcher(
            data: TokenSpan(tokenizer.encodeFile(url)), batchSize: 3, seqLength: 7, name: "c")
        let batch = batcher.labellingBatch(chunk: 1, inputOf: s.inputOf)
        #expect(batch.targets == batcher.batch(chunk: 1).inputs, "the targets are the text, not shifted")
        #expect(tokenizer.decode(batch.inputs) == TaggingTask.restoreMarks.reduce(tokenizer.decode(batch.targets)))
    }

    @Test func theWordBaselineTakesTheMostFrequentFormAndLeavesUnseenWords() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let url = writeFile(dir, "c.txt", "byt být být, byt; být kůň\n")
        let tokenizer = try TaggingScheme.buildTokenizer(task: .restoreMarks, corpusFile: url)
        let s = try TaggingScheme(task: .restoreMarks, tokenizer: tokenizer)
        let baseline = WordBaseline(scheme: s, span: TokenSpan(try tokenizer.encodeFile(url)))
        #expect(baseline.vocabularySize == 2)
        let byt = try tokenizer.encode("byt")
        #expect(baseline.restore(byt).word == (try tokenizer.encode("být")) && baseline.restore(byt).seen)
        #expect(baseline.restore(try tokenizer.encode("kun")).word == (try tokenizer.encode("kůň")))
        let les = try tokenizer.encode("les")
        let unseen = baseline.restore(les)
        #expect(!unseen.seen && unseen.word == les)
        #expect(WordBaseline.words(try tokenizer.encode("y, bt k"), scheme: s) == [0..<1, 3..<5, 6..<7])
    }

    /// A text whose marks only the next letter tells: "e" is written "é" exactly when a "d"
    /// follows. A bidirectional tagger learns it; a forward one cannot see the "d" coming.
    static func rightContextText(count: Int) -> String {
        var rng = SeededGenerator(seed: 42)
        let letters: [Character] = ["a", "d", "e", "k", "e", " "]
        var chars: [Character] = (0..<count).map { _ in letters[Int(rng.next() % UInt64(letters.count))] }
        for i in chars.indices.dropLast() where chars[i] == "e" && chars[i + 1] == "d" { chars[i] = "é" }
        return String(chars) + "\n"
    }

    @Test func aBidirectionalTaggerLearnsWhatOnlyTheRightContextTells() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let corpus = writeFile(dir, "right.txt", Self.rightContextText(count: 30_000))
        var errorRates: [Bool: Double] = [:]
        for bidirectional in [true, false] {
            var config = smallConfig(training: smallTraining(steps: 250, evalEvery: 250))
            config.model = NetworkConfig(
                cell: .lstm, vocabularySize: 0, hiddenSize: 16, layers: 1, bidirectional: bidirectional)
            config.training.task = .restoreMarks
            config.training.seqLength = 24
            config.training.batchSize = 16
            config.training.optimizer.learningRate = 1e-2
            let runURL = dir.appendingPathComponent(bidirectional ? "bi" : "uni")
            let trainer = try Trainer.start(corpus: corpus, runDirectory: runURL, config: config)
            let summary = try trainer.train()
            let model = try LanguageModel.load(runURL)
            #expect(throws: CharLMError.self) { try model.checkGenerates() }
            let tagger = try model.tagger(threads: 2)
            let evaluation = try tagger.evaluate(trainer.corpus.test, baseline: nil)
            #expect(evaluation.ambiguous > 500, "the test part has e's to decide")
            errorRates[bidirectional] = evaluation.ambiguousErrorRate
            // The summary's test loss is the evaluation's, on best/.
            let test = try #require(summary.testLoss)
            #expect(abs(test - evaluation.loss.nats) <= 1e-6 * max(1, test), "\(test) vs \(evaluation.loss.nats)")
            guard bidirectional else { continue }

            // Streaming in small blocks restores exactly what one pass over the whole text does.
            let text = "kaade ed eea keda\nadé 漢 ked"
            let file = writeFile(dir, "in.txt", text)
            var pieces: [String] = []
            let small = Tagger(network: tagger.network, scheme: tagger.scheme, core: 3, context: 4, threads: 1)
            try small.restore(FileHandle(forReadingAtPath: file.path)!, name: "in", block: 5) { pieces.append($0) }
            var whole = ""
            try small.restore(FileHandle(forReadingAtPath: file.path)!, name: "in", block: 1 << 20) { whole += $0 }
            #expect(pieces.count > 3 && pieces.joined() == whole)
            // And the logits behind each decision are one pass's: compare the decisions on a
            // text the model is unsure of (random letters, every e ambiguous) with `tag`.
            let noisy = Self.rightContextText(count: 400).replacingOccurrences(of: "é", with: "e")
            let noisyFile = writeFile(dir, "noisy.txt", noisy)
            var streamed = ""
            try small.restore(FileHandle(forReadingAtPath: noisyFile.path)!, name: "noisy", block: 7) {
                streamed += $0
            }
            let ids = try tagger.scheme.tokenizer.encode(noisy)
            let onePass = try small.tag(tagger.scheme.inputs(of: ids)).outputs
            #expect(streamed == tagger.scheme.tokenizer.decode(onePass))
            #expect(whole.count == text.count, "one grapheme out for each grapheme in")
            #expect(whole.contains("漢"), "a grapheme the vocabulary lacks is copied")
            #expect(whole == "kaade éd eea kéda\nade 漢 kéd", "é exactly before d: \(whole)")
            // Invalid UTF-8 is one clear error.
            let bad = dir.appendingPathComponent("bad.txt")
            try Data([0x61, 0xFF, 0x0A]).write(to: bad)
            #expect(throws: CharLMError.self) {
                try small.restore(FileHandle(forReadingAtPath: bad.path)!, name: "bad") { _ in }
            }
        }
        let bi = try #require(errorRates[true]), uni = try #require(errorRates[false])
        #expect(bi < 0.02, "bidirectional: \(bi) of the e's wrong")
        #expect(uni > 0.1, "a forward tagger cannot know: \(uni) wrong")
    }

    @Test func aBidirectionalModelWithoutATaskIsRefused() throws {
        var config = smallConfig()
        config.model.vocabularySize = 10
        config.model.bidirectional = true
        #expect(throws: CharLMError.self) { try config.validate() }
        config.training.task = .restoreCase
        try config.validate()
    }
}
