import Foundation
import Testing
@testable import CharTokenizer

@Suite("Vocabulary")
struct VocabularyTests {
    @Test("units are sorted by UTF-8 bytes after the reserved tokens, with corpus counts")
    func orderAndCounts() throws {
        let tokenizer = try Tokenizer.build(corpus: "baab\n!é")
        #expect(tokenizer.vocabulary.map(\.text) == ["\n", "!", "a", "b", "é"])
        #expect(tokenizer.vocabulary.map(\.count) == [1, 1, 2, 2, 1])
        #expect(tokenizer.vocabularySize == 5)

        let bytes = try Tokenizer.build(corpus: "ba", config: TokenizerConfig(fallback: .bytes))
        #expect(bytes.vocabularySize == 258)
        #expect(bytes.vocabulary[0...255].enumerated().allSatisfy { $0.element.kind == .byte(UInt8($0.offset)) })
        #expect(bytes.vocabulary[0x61].text == "<0x61>")
        #expect(bytes.vocabulary[256...].map(\.text) == ["a", "b"])
        #expect(bytes.vocabulary[0].isSpecial && !bytes.vocabulary[256].isSpecial)
        #expect(bytes.entry(for: 256)?.kind == .unit && bytes.entry(for: 258) == nil && bytes.entry(for: -1) == nil)
        #expect(bytes.unit(for: 257) == "b" && bytes.count(for: 257) == 1 && bytes.count(for: 0) == 0)
        #expect(bytes.id(forByte: 0x61) == 0x61 && bytes.id(for: "a") == 256 && bytes.id(for: "z") == nil)

        let unknown = try Tokenizer.build(corpus: "ba", config: TokenizerConfig(fallback: .unknown))
        #expect(unknown.vocabulary.map(\.text) == ["<unk>", "a", "b"])
        #expect(unknown.unknownID == 0)
    }

    /// tinyshakespeare, where `corpora/fetch.sh` puts it or in the workspace's shared corpora.
    static let tinyShakespeareFile: URL? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return ["corpora/data/tinyshakespeare.txt", "../shared/corpora/tinyshakespeare.txt"]
            .map { root.appendingPathComponent($0).standardizedFileURL }
            .first { FileManager.default.fileExists(atPath: $0.path) }
    }()

    @Test(
        "tinyshakespeare gives char-rnn's 65 characters",
        .enabled(if: tinyShakespeareFile != nil, "tinyshakespeare.txt not found: run corpora/fetch.sh tinyshakespeare"))
    func tinyShakespeare() throws {
        let corpus = try #require(Self.tinyShakespeareFile)
        let tokenizer = try Tokenizer.build(corpusFile: corpus)
        #expect(tokenizer.vocabularySize == 65)
        #expect(tokenizer.vocabulary.prefix(3).map(\.text) == ["\n", " ", "!"])
        let encoded = try tokenizer.encodeFile(corpus)
        #expect(encoded.width == .uint8)
        #expect(encoded.count == 1_115_394)
    }

    @Test("minCount drops rare units; maxSize keeps the most frequent, ties broken by bytes")
    func limits() throws {
        let corpus = "aaaa bbb cc d e"
        let minimum = try Tokenizer.build(corpus: corpus, config: TokenizerConfig(fallback: .unknown, minCount: 3))
        #expect(minimum.vocabulary.map(\.text) == ["<unk>", " ", "a", "b"])
        // Dropped units are counted where they go: <unk> got c, c, d, e.
        #expect(minimum.vocabulary[0].count == 4)

        let limited = try Tokenizer.build(corpus: corpus, config: TokenizerConfig(fallback: .unknown, maxSize: 3))
        #expect(limited.vocabulary.map(\.text) == ["<unk>", " ", "a", "b"])
        let ties = try Tokenizer.build(corpus: "zyx", config: TokenizerConfig(fallback: .unknown, maxSize: 2))
        #expect(ties.vocabulary.map(\.text) == ["<unk>", "x", "y"])
    }

    @Test("the limits hold for every unit: what they leave out is spelled in bytes, losslessly")
    func limitsHoldForEveryUnit() throws {
        // Four distinct characters, "a" and " " frequent; at most two are kept.
        let corpus = "aaaa bbb é ü"
        for unit in [TokenUnit.grapheme, .scalar] {
            for fallback in [Fallback.scalars, .bytes] {
                let config = TokenizerConfig(unit: unit, fallback: fallback, maxSize: 2)
                let tokenizer = try Tokenizer.build(corpus: corpus, config: config)
                let units = tokenizer.vocabulary.filter { $0.kind == .unit }.map(\.text)
                #expect(units == [" ", "a"], "\(unit) \(fallback): the two most frequent, nothing else")
                #expect(tokenizer.config.fallback == .bytes, "a left-out character can only be spelled in bytes")
                #expect(tokenizer.vocabularySize == 256 + 2)
                let ids = try tokenizer.encode(corpus)
                #expect(tokenizer.decode(ids) == corpus, "\(unit) \(fallback): lossless")
                #expect(ids.count == corpus.utf8.count, "b, é and ü are spelled in their bytes")
                // Token counts are what encoding the corpus gives: é and ü, two bytes each.
                #expect(tokenizer.count(for: try #require(tokenizer.id(forByte: 0xC3))) == 2)
            }
        }
        // minCount alike, and without a limit nothing changes: every character, no byte tokens.
        let rare = try Tokenizer.build(corpus: corpus, config: TokenizerConfig(minCount: 2))
        #expect(rare.vocabulary.filter { $0.kind == .unit }.map(\.text) == [" ", "a", "b"])
        let all = try Tokenizer.build(corpus: corpus)
        #expect(all.vocabularySize == 5 && all.config.fallback == .scalars)
    }

    @Test("a vocabulary can be extended: the base's units stay, the new text's are added by frequency")
    func extendingAVocabulary() throws {
        let directory = try TemporaryDirectory()
        let base = try Tokenizer.build(corpus: "abc abc\n", config: TokenizerConfig(maxSize: 7))
        let file = try directory.file("new.txt", text: "xxxx yyy zz a\n")
        let extended = try Tokenizer.build(corpusFile: file, extending: base)
        let units = extended.vocabulary.map(\.text)
        #expect(
            Set(base.vocabulary.map(\.text)).isSubset(of: Set(units)), "every unit of the base stays, even unseen ones")
        #expect(units.contains("x") && units.contains("y"), "the new text's most frequent characters are added")
        #expect(!units.contains("z"), "within the base's limit of 7 units")
        #expect(extended.config.fallback == .bytes, "and the rest is spelled in bytes")
        #expect(extended.decode(try extended.encode("xyz abc")) == "xyz abc")
    }

    @Test("a unit and its canonically equivalent spelling are different tokens")
    func canonicalEquivalentsStayDistinct() throws {
        let config = TokenizerConfig(normalization: Normalization(form: .none))
        let tokenizer = try Tokenizer.build(corpus: "\u{E9}e\u{301}", config: config)
        // "e", "e\u{301}", "é", "\u{301}": the scalars of every grapheme are kept too.
        #expect(tokenizer.vocabulary.map(\.utf8) == [[0x65], [0x65, 0xCC, 0x81], [0xC3, 0xA9], [0xCC, 0x81]])
        let composed = try #require(tokenizer.id(for: "\u{E9}"))
        let decomposed = try #require(tokenizer.id(for: "e\u{301}"))
        #expect(composed != decomposed)
        #expect(try tokenizer.encode("e\u{301}\u{E9}") == [decomposed, composed])
    }

    @Test("explicit vocabularies are validated")
    func explicitVocabulary() throws {
        let tokenizer = try Tokenizer(units: ["a", "b", "\u{1F600}"])
        #expect(try tokenizer.encode("ab😀") == [0, 1, 2])
        #expect(throws: TokenizerError.self) { try Tokenizer(units: ["a", "a"]) }
        #expect(throws: TokenizerError.self) { try Tokenizer(units: ["ab"], config: TokenizerConfig(unit: .scalar)) }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(
                config: TokenizerConfig(fallback: .unknown), vocabulary: [VocabularyEntry(unit: Array("a".utf8))])
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(config: TokenizerConfig(), vocabulary: [VocabularyEntry(unit: [0xFF])])
        }
        #expect(throws: TokenizerError.self) { try Tokenizer(config: TokenizerConfig(), vocabulary: []) }
    }

    @Test("statistics and a tokenizer come from one pass")
    func statistics() throws {
        let stats = try CorpusStatistics(corpus: "abca\r\n👍🏽é", config: TokenizerConfig())
        #expect(stats.bytes == Array("abca\r\n👍🏽é".utf8).count)
        #expect(stats.units == 7)
        #expect(stats.scalars == 8)
        #expect(stats.distinctUnits == 6)
        #expect(stats.topUnits(1).first?.text == "a")
        #expect(abs(stats.coverage(ofTop: 1) - 2.0 / 7.0) < 1e-12)
        #expect(stats.coverage(ofTop: 100) == 1)
        let tokenizer = try Tokenizer.build(from: stats, config: TokenizerConfig(fallback: .unknown, maxSize: 1))
        #expect(
            tokenizer
                == (try Tokenizer.build(corpus: "abca\r\n👍🏽é", config: TokenizerConfig(fallback: .unknown, maxSize: 1))))
        #expect(abs(stats.vocabularyCoverage(of: tokenizer) - 2.0 / 7.0) < 1e-12)
        #expect(throws: TokenizerError.self) {
            try Tokenizer.build(from: stats, config: TokenizerConfig(unit: .scalar))
        }
    }
}

@Suite("Encoding and fallback")
struct EncodingTests {
    @Test("every error message is one actionable line")
    func errorMessages() {
        let errors: [TokenizerError] = [
            .invalidUTF8(offset: 3, source: nil), .emptyCorpus(source: "c.txt"), .unknownCharacters(["é"]),
            .unknownCharacters((0x41...0x5A).compactMap(Unicode.Scalar.init)), .invalidTokenID(-1, vocabularySize: 3),
            .invalidConfiguration("x"), .unreadableFile(path: "p", reason: "r"),
            .unwritableFile(path: "p", reason: "r"),
            .notATokenizerFile(path: "p", reason: "r"), .corruptTokenizerFile(path: "p", reason: "r"),
            .unsupportedVersion(path: "p", found: 9, supported: 1),
        ]
        for error in errors {
            let message = error.errorDescription ?? ""
            #expect(!message.isEmpty && !message.contains("\n"), "\(error)")
        }
        #expect(
            TokenizerError.unknownCharacters((0x41...0x5A).compactMap(Unicode.Scalar.init)).errorDescription?
                .contains("and 16 more") == true)
    }

    @Test("fallback bytes spells unseen characters in UTF-8 bytes")
    func byteFallback() throws {
        let tokenizer = try Tokenizer.build(corpus: "abc", config: TokenizerConfig(fallback: .bytes))
        let ids = try tokenizer.encode("a日")
        #expect(ids == [256, 0xE6, 0x97, 0xA5])
        #expect(tokenizer.decode(ids) == "a日")
    }

    @Test("fallback scalars names the missing characters")
    func unknownCharactersAreNamed() throws {
        let tokenizer = try Tokenizer.build(corpus: "abc")
        #expect(throws: TokenizerError.unknownCharacters(["é", "\u{301}"])) {
            try tokenizer.encode("aée\u{301}".precomposedStringWithCanonicalMapping + "\u{301}")
        }
        let error = TokenizerError.unknownCharacters(["é", "\u{301}", "\n"])
        let message = try #require(error.errorDescription)
        #expect(message.contains("'é' (U+00E9)"))
        #expect(message.contains("U+0301"))
        #expect(message.contains("U+000A"))
        #expect(message.contains("fallback 'bytes' or 'unknown'"))
    }

    @Test("fallback unknown maps a missing unit to <unk>, decoded as U+FFFD")
    func unknownToken() throws {
        let tokenizer = try Tokenizer.build(corpus: "ab", config: TokenizerConfig(fallback: .unknown))
        #expect(try tokenizer.encode("a👨‍👩‍👧b") == [1, 0, 2])
        #expect(tokenizer.decode([1, 0, 2]) == "a\u{FFFD}b")
    }

    @Test("units: graphemes keep ZWJ sequences and flags whole; scalars and bytes split them")
    func units() throws {
        let text = "👨‍👩‍👧🇺🇸🇬e\u{301}\r\n"
        let graphemes = try Tokenizer.build(
            corpus: text,
            config: TokenizerConfig(
                normalization: Normalization(form: .nfd, normalizeNewlines: false)))
        #expect(
            graphemes.tokenBytes(try graphemes.encode(text)).map { String(decoding: $0, as: UTF8.self) }
                .map { Array($0.utf8) } == ["👨‍👩‍👧", "🇺🇸", "🇬", "e\u{301}", "\r\n"].map { Array($0.utf8) })
        let scalars = try Tokenizer.build(corpus: text, config: TokenizerConfig(unit: .scalar))
        // 5 + 3 scalars of emoji, "é" composed by NFC, CRLF turned into LF.
        #expect(try scalars.encode(text).count == 10)
        let bytes = try Tokenizer.build(corpus: "é", config: TokenizerConfig(unit: .byte))
        #expect(bytes.vocabulary.map(\.text) == ["<0xA9>", "<0xC3>"])
        #expect(try bytes.encode("é") == [1, 0])
        #expect(bytes.decode([1, 0]) == "é")
    }

    @Test("normalization options")
    func normalizationOptions() throws {
        func normalized(_ text: String, _ normalization: Normalization) -> [UInt8] {
            Array(normalization.apply(to: text).utf8)
        }
        #expect(normalized("e\u{301}", Normalization()) == Array("\u{E9}".utf8))
        #expect(normalized("\u{E9}", Normalization(form: .nfd)) == Array("e\u{301}".utf8))
        #expect(normalized("ﬁ①", Normalization(form: .nfkc)) == Array("fi1".utf8))
        #expect(normalized("Straße ΣΑΣ", Normalization(caseFold: true)) == Array("strasse σασ".utf8))
        #expect(normalized("café", Normalization(stripMarks: true)) == Array("cafe".utf8))
        #expect(
            normalized("cafe\u{301} \u{E9}", Normalization(form: .none, stripMarks: true)) == Array("cafe \u{E9}".utf8))
        #expect(normalized("a\r\nb\rc\n\r", Normalization()) == Array("a\nb\nc\n\n".utf8))
        #expect(normalized("a\r\nb\rc", Normalization(normalizeNewlines: false)) == Array("a\r\nb\rc".utf8))
        #expect(normalized("\u{0085}\u{2028}", Normalization()) == Array("\u{0085}\u{2028}".utf8))
        #expect(normalized("Ｃafé\r\n", Normalization(form: .nfkc, caseFold: true)) == Array("café\n".utf8))
    }

    @Test("regression: utf8proc 2.8 drops U+11A7 after an LV syllable; charlm keeps it")
    func hangulFillerVowel() throws {
        for form in [NormalizationForm.nfc, .nfkc] {
            let normalization = Normalization(form: form)
            #expect(Array(normalization.apply(to: "\u{AC00}\u{11A7}").utf8) == Array("\u{AC00}\u{11A7}".utf8))
            #expect(Array(normalization.apply(to: "\u{1100}\u{1161}\u{11A7}").utf8) == Array("\u{AC00}\u{11A7}".utf8))
            #expect(Array(normalization.apply(to: "\u{1100}\u{1161}\u{11A8}").utf8) == Array("\u{AC01}".utf8))
        }
    }

    @Test("regression: a slow region never ends between the CR and LF of a CRLF")
    func crlfInsideSlowRegion() throws {
        for normalization in [
            Normalization(caseFold: true), Normalization(form: .none, stripMarks: true), Normalization(),
        ] {
            let text = "xe\u{34F}\u{32C}\r\r\nY\r\n"
            let expected = try ReferencePipeline.normalizedScalars(
                Array(text.utf8), config: TokenizerConfig(normalization: normalization))
            #expect(Array(normalization.apply(to: text).utf8) == UTF8Decoding.encode(expected))
        }
    }

    @Test("invalid UTF-8 is an error naming the byte offset, or U+FFFD when asked")
    func invalidUTF8() throws {
        let tokenizer = try Tokenizer.build(corpus: "abc")
        #expect(throws: TokenizerError.invalidUTF8(offset: 2, source: nil)) {
            try tokenizer.encode(utf8: [0x61, 0x62, 0xFF, 0x63])
        }
        #expect(throws: TokenizerError.invalidUTF8(offset: 1, source: nil)) {
            try tokenizer.encode(utf8: [0x61, 0xE2, 0x82])
        }
        #expect(
            TokenizerError.invalidUTF8(offset: 2, source: "x.txt").errorDescription?.contains(
                "byte offset 2 in 'x.txt'") == true)
        #expect(throws: TokenizerError.invalidUTF8(offset: 1, source: nil)) {
            try Tokenizer.build(utf8: [0x61, 0xC0, 0x80])
        }

        let replacing = try Tokenizer.build(
            utf8: [0x61, 0xFF, 0xE2, 0x82], config: TokenizerConfig(invalidUTF8: .replace))
        #expect(replacing.vocabulary.map(\.text) == ["a", "\u{FFFD}"])
        #expect(try replacing.encode(utf8: [0xF0, 0x9F, 0x98, 0x61]) == [1, 0])
    }

    @Test("an empty corpus is a clear error, also after normalization")
    func emptyCorpus() throws {
        #expect(throws: TokenizerError.emptyCorpus(source: nil)) { try Tokenizer.build(corpus: "") }
        #expect(throws: TokenizerError.emptyCorpus(source: nil)) {
            try Tokenizer.build(
                corpus: "\u{301}\u{302}", config: TokenizerConfig(normalization: Normalization(stripMarks: true)))
        }
        let directory = try TemporaryDirectory()
        let file = try directory.file("empty.txt", text: "")
        #expect(throws: TokenizerError.emptyCorpus(source: file.path)) { try Tokenizer.build(corpusFile: file) }
        #expect(TokenizerError.emptyCorpus(source: nil).errorDescription?.contains("empty") == true)
        #expect(try Tokenizer.build(corpus: "a").encode("") == [])
    }

    @Test("bad configurations are rejected")
    func badConfigurations() throws {
        #expect(throws: TokenizerError.self) { try Tokenizer.build(corpus: "a", config: TokenizerConfig(minCount: 0)) }
        #expect(throws: TokenizerError.self) { try Tokenizer.build(corpus: "a", config: TokenizerConfig(maxSize: 0)) }
        #expect(throws: Never.self, "a limit with fallback scalars spells what it leaves out in bytes") {
            try Tokenizer.build(corpus: "aab", config: TokenizerConfig(unit: .scalar, fallback: .scalars, maxSize: 1))
        }
        #expect(throws: Never.self) {
            try Tokenizer.build(corpus: "aab", config: TokenizerConfig(unit: .scalar, fallback: .bytes, maxSize: 1))
        }
    }

    @Test("decode is lenient, decodeChecked rejects ids out of range")
    func decoding() throws {
        let tokenizer = try Tokenizer.build(corpus: "ab")
        #expect(tokenizer.decode([0, 7, -1, 1]) == "a\u{FFFD}\u{FFFD}b")
        #expect(throws: TokenizerError.invalidTokenID(7, vocabularySize: 2)) { try tokenizer.decodeChecked([0, 7]) }
        #expect(try tokenizer.decodeChecked([1, 0]) == "ba")
    }

    @Test("a tokenizer is safe to share between concurrent tasks")
    func concurrentUse() async throws {
        let tokenizer = try Tokenizer.build(corpus: "hello wörld e\u{301} 👍🏽", config: TokenizerConfig(fallback: .bytes))
        let expected = try tokenizer.encode("hello wörld e\u{301} 👍🏽 日本")
        try await withThrowingTaskGroup(of: [Int32].self) { group in
            for _ in 0..<8 {
                group.addTask { try tokenizer.encode("hello wörld e\u{301} 👍🏽 日本") }
            }
            for try await ids in group { #expect(ids == expected) }
        }
    }
}

@Suite("Files, streaming and compact ids")
struct StreamingTests {
    @Test("encodeFile equals in-memory encoding for every worker count and chunk size")
    func encodeFile() throws {
        let directory = try TemporaryDirectory()
        var rng = SplitMix64(seed: 42)
        var text = ""
        while text.utf8.count < 300_000 { text += TextGenerator.string(maxPieces: 20, using: &rng) + "\n" }
        let file = try directory.file("corpus.txt", text: text)
        let tokenizer = try Tokenizer.build(corpusFile: file, config: TokenizerConfig(fallback: .bytes))
        #expect(tokenizer == (try Tokenizer.build(corpus: text, config: TokenizerConfig(fallback: .bytes))))
        let expected = try tokenizer.encode(text)
        for (chunkSize, workers) in [(4 << 20, 1), (4 << 20, 2), (10_000, 3), (4097, 2)] {
            let encoded = try tokenizer.encodeFile(file, chunkSize: chunkSize, workers: workers)
            #expect(encoded.ids == expected, "chunk size \(chunkSize), \(workers) workers")
        }
        var streamed: [Int32] = []
        try tokenizer.encodeFile(file) { streamed += $0 }
        #expect(streamed == expected)
        let handle = try FileHandle(forReadingFrom: file)
        var fromHandle: [Int32] = []
        try tokenizer.encode(contentsOf: handle) { fromHandle += $0 }
        #expect(fromHandle == expected)
    }

    @Test("inputs without any safe cut (only combining marks, only CJK) stream correctly")
    func pathologicalChunks() throws {
        let directory = try TemporaryDirectory()
        let marks = "a" + String(repeating: "\u{301}\u{323}", count: 3000) + "b"
        let cjk = String(repeating: "日本語中文한국어", count: 2000)
        let reference = try ReferencePipeline.normalizedScalars(Array(marks.utf8), config: TokenizerConfig())
        #expect(Array(Normalization().apply(to: marks).utf8) == UTF8Decoding.encode(reference))
        for text in [marks, cjk] {
            let file = try directory.file("pathological.txt", text: text)
            let tokenizer = try Tokenizer.build(corpus: text, config: TokenizerConfig(fallback: .bytes))
            for chunkSize in [64, 1000] {
                #expect(
                    try tokenizer.encodeFile(file, chunkSize: chunkSize, workers: 2).ids == (try tokenizer.encode(text))
                )
                let counts = try UnitCounter.count(file: file, config: tokenizer.config, chunkSize: chunkSize)
                #expect(try Tokenizer.build(counts: counts, config: tokenizer.config, source: nil) == tokenizer)
            }
        }
    }

    @Test("errors in files name the byte offset in the file")
    func fileErrors() throws {
        let directory = try TemporaryDirectory()
        var bytes = [UInt8](repeating: 0x61, count: 50_000)
        for index in stride(from: 99, to: bytes.count, by: 100) { bytes[index] = 0x0A }
        bytes[41_234] = 0xFF
        let file = try directory.file("bad.txt", bytes: bytes)
        let tokenizer = try Tokenizer.build(corpus: "a\n")
        #expect(throws: TokenizerError.invalidUTF8(offset: 41_234, source: file.path)) {
            try tokenizer.encodeFile(file, chunkSize: 1000, workers: 2)
        }
        #expect(throws: TokenizerError.invalidUTF8(offset: 41_234, source: file.path)) {
            try Tokenizer.build(corpusFile: file)
        }
        let missing = directory.url.appendingPathComponent("missing.txt")
        #expect(throws: TokenizerError.unreadableFile(path: missing.path, reason: "No such file or directory")) {
            try tokenizer.encodeFile(missing)
        }
        #expect(throws: TokenizerError.unreadableFile(path: directory.url.path, reason: "it is a directory")) {
            try Tokenizer.build(corpusFile: directory.url)
        }
    }

    @Test("EncodedCorpus stores 1, 2 or 4 bytes per id by vocabulary size")
    func compactWidths() throws {
        #expect(EncodedCorpus.Width(vocabularySize: 256) == .uint8)
        #expect(EncodedCorpus.Width(vocabularySize: 257) == .uint16)
        #expect(EncodedCorpus.Width(vocabularySize: 65_536) == .uint16)
        #expect(EncodedCorpus.Width(vocabularySize: 65_537) == .uint32)
        let units = (0..<70_000).map { String(Character(Unicode.Scalar(0x20000 + $0)!)) }
        let tokenizer = try Tokenizer(units: units)
        let directory = try TemporaryDirectory()
        let text = "\u{20000}\u{3116F}\u{20001}"
        let encoded = try tokenizer.encodeFile(try directory.file("wide.txt", text: text))
        #expect(encoded.width == .uint32)
        #expect(encoded.ids == [0, 69_999, 1])
        #expect(encoded[1] == 69_999)
        #expect(encoded.ids(1..<10) == [69_999, 1])
        encoded.withUnsafeBytes { #expect($0.count == 12) }
        let small = try EncodedCorpus(ids: [3, 1, 2], vocabularySize: 300)
        #expect(small.width == .uint16 && small.ids == [3, 1, 2] && small.count == 3)
        #expect(throws: TokenizerError.invalidTokenID(300, vocabularySize: 300)) {
            try EncodedCorpus(ids: [300], vocabularySize: 300)
        }
    }

    @Test("the streaming decoder emits text as soon as it is complete")
    func streamingDecoder() throws {
        let tokenizer = try Tokenizer.build(corpus: "ab", config: TokenizerConfig(fallback: .bytes))
        let ids = try tokenizer.encode("a日b")
        #expect(ids == [256, 0xE6, 0x97, 0xA5, 257])
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        #expect(try ids.map { try decoder.push($0) } == ["a", "", "", "日", "b"])
        #expect(decoder.finish() == "")

        var truncated = StreamingDecoder(tokenizer: tokenizer)
        #expect(try truncated.push([256, 0xE6, 0x97]) == "a")
        #expect(truncated.finish() == "\u{FFFD}")
        var invalid = StreamingDecoder(tokenizer: tokenizer)
        #expect(try invalid.push([0xE6, 256, 0xFF, 0x80]) == "\u{FFFD}a\u{FFFD}\u{FFFD}")
        #expect(throws: TokenizerError.invalidTokenID(999, vocabularySize: 258)) { try invalid.push(999) }

        var rng = SplitMix64(seed: 9)
        for _ in 0..<200 {
            let random = (0..<Int(rng.next() % 12)).map { _ in Int32(rng.next() % 258) }
            var stream = StreamingDecoder(tokenizer: tokenizer)
            let streamed = try random.map { try stream.push($0) }.joined() + stream.finish()
            #expect(Array(streamed.utf8) == Array(tokenizer.decode(random).utf8), "\(random)")
        }
    }

    @Test("one-hot rows, dense and as indices")
    func oneHot() throws {
        let tokenizer = try Tokenizer.build(corpus: "abc")
        let dense = try tokenizer.oneHot([2, 0])
        #expect(dense.rows == 2 && dense.columns == 3)
        #expect(dense.values == [0, 0, 1, 1, 0, 0])
        #expect(dense[0, 2] == 1 && dense[1, 1] == 0)
        let indices = try tokenizer.oneHotIndices([2, 0])
        #expect(indices.columnIndices == [2, 0])
        #expect(indices.flatIndices == [2, 3])
        #expect(indices.dense() == dense)
        #expect(throws: TokenizerError.invalidTokenID(3, vocabularySize: 3)) { try tokenizer.oneHot([3]) }
        #expect(try tokenizer.oneHot([Int32]()).values.isEmpty)
    }
}
