import Foundation
import Testing
@testable import CharTokenizer

@Suite("tokenizer.json")
struct TokenizerFileTests {
    /// Units that break naive JSON writers and String comparisons.
    static let trickyCorpus =
        "a\0b\r\r\nc\u{301}\u{E9}e\u{301}\"\\\u{7F}\u{2028}\u{2029}\t👨‍👩‍👧\u{FEFF}\u{1F1FA}\u{1F1F8}\u{FFFD}\u{10FFFF}/"

    static let configs: [TokenizerConfig] = [
        TokenizerConfig(),
        TokenizerConfig(
            normalization: Normalization(form: .none, normalizeNewlines: false), fallback: .bytes, minCount: 1),
        TokenizerConfig(
            normalization: Normalization(form: .nfkd, caseFold: true, stripMarks: true), unit: .scalar,
            fallback: .unknown, maxSize: 5, invalidUTF8: .replace),
        TokenizerConfig(unit: .byte, fallback: .bytes),
        TokenizerConfig(normalization: Normalization(form: .nfd), unit: .byte, fallback: .unknown, minCount: 2),
    ]

    @Test("save and load round-trip exactly", arguments: configs)
    func roundTrip(config: TokenizerConfig) throws {
        let directory = try TemporaryDirectory()
        let tokenizer = try Tokenizer.build(corpus: Self.trickyCorpus, config: config)
        let url = directory.url.appendingPathComponent("tokenizer.json")
        try tokenizer.save(to: url)
        let loaded = try Tokenizer.load(from: url)
        #expect(loaded == tokenizer)
        #expect(loaded.vocabulary.map(\.utf8) == tokenizer.vocabulary.map(\.utf8))
        #expect(loaded.jsonData() == tokenizer.jsonData())
        #expect(try Data(contentsOf: url) == tokenizer.jsonData())
        #expect(try loaded.encode(Self.trickyCorpus) == tokenizer.encode(Self.trickyCorpus))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.url.path)
        #expect(leftovers == ["tokenizer.json"], "the atomic write left temporary files")
    }

    @Test("NFD and NFC spellings of a unit survive the file as distinct units")
    func canonicalEquivalentsInFile() throws {
        let config = TokenizerConfig(normalization: Normalization(form: .none))
        let tokenizer = try Tokenizer.build(corpus: "\u{E9}e\u{301}\u{1E0C}\u{307}D\u{323}\u{307}", config: config)
        let loaded = try Tokenizer.load(jsonData: tokenizer.jsonData())
        #expect(loaded.vocabulary.map(\.utf8) == tokenizer.vocabulary.map(\.utf8))
        #expect(Set(loaded.vocabulary.map(\.utf8)).count == loaded.vocabularySize)
    }

    @Test("the file is readable JSON in the documented layout")
    func layout() throws {
        let tokenizer = try Tokenizer.build(corpus: "ab\0", config: TokenizerConfig(fallback: .unknown))
        let text = String(decoding: tokenizer.jsonData(), as: UTF8.self)
        #expect(text.hasPrefix("{\n  \"format\": \"charlm-tokenizer\",\n  \"version\": 1,\n"))
        #expect(text.contains("{\"id\": 0, \"special\": \"<unk>\", \"count\": 0}"))
        #expect(text.contains("{\"id\": 1, \"unit\": \"\\u0000\", \"count\": 1}"))
        let object = try #require(try JSONSerialization.jsonObject(with: tokenizer.jsonData()) as? [String: Any])
        #expect(object["vocabulary_size"] as? Int == 4)
        let config = try #require(object["config"] as? [String: Any])
        #expect(config["unit"] as? String == "grapheme")
        #expect(config["max_size"] is NSNull)
        let bytes = try Tokenizer.build(corpus: "a", config: TokenizerConfig(fallback: .bytes))
        #expect(
            String(decoding: bytes.jsonData(), as: UTF8.self).contains("{\"id\": 255, \"byte\": 255, \"count\": 0}"))
    }

    static func loadError(_ text: String) -> TokenizerError? {
        do {
            _ = try Tokenizer.load(jsonData: Data(text.utf8), source: "t.json")
            return nil
        } catch let error as TokenizerError {
            return error
        } catch {
            return nil
        }
    }

    static func valid() throws -> String {
        String(decoding: try Tokenizer.build(corpus: "hello").jsonData(), as: UTF8.self)
    }

    @Test("a truncated file is an error at every cut, never a crash")
    func truncated() throws {
        let data = try Tokenizer.build(corpus: Self.trickyCorpus, config: TokenizerConfig(fallback: .bytes)).jsonData()
        for length in stride(from: 0, to: data.count - 1, by: 7) {
            do {
                _ = try Tokenizer.load(jsonData: data.prefix(length), source: "t.json")
                Issue.record("a file cut at byte \(length) of \(data.count) loaded")
            } catch let error as TokenizerError {
                switch error {
                case .corruptTokenizerFile, .notATokenizerFile: break
                default: Issue.record("cut at \(length): unexpected \(error)")
                }
            }
        }
        let cut = Self.loadError(String(try Self.valid().prefix(200)))
        #expect(cut == .corruptTokenizerFile(path: "t.json", reason: "it is not valid JSON (truncated?)"))
        #expect(Self.loadError("") == .corruptTokenizerFile(path: "t.json", reason: "the file is empty"))
    }

    @Test("foreign files are recognised as such")
    func foreign() throws {
        #expect(
            Self.loadError("{\"format\": \"other\", \"version\": 1}")
                == .notATokenizerFile(path: "t.json", reason: "its format is other, not \"charlm-tokenizer\""))
        let huggingFace = #"{"version": "1.0", "model": {"type": "BPE"}, "added_tokens": [], "normalizer": null}"#
        #expect(Self.loadError(huggingFace)?.errorDescription?.contains("Hugging Face") == true)
        #expect(Self.loadError("[1, 2, 3]") == .notATokenizerFile(path: "t.json", reason: "it is not a JSON object"))
        #expect(Self.loadError("\u{7F}ELF binary") == .notATokenizerFile(path: "t.json", reason: "it is not JSON"))
        #expect(Self.loadError("{\"vocab\": {}}")?.errorDescription?.contains("no \"format\"") == true)
    }

    @Test("a newer version asks for an upgrade")
    func newerVersion() throws {
        let newer = try Self.valid().replacingOccurrences(of: "\"version\": 1,", with: "\"version\": 2,")
        let error = try #require(Self.loadError(newer))
        #expect(error == .unsupportedVersion(path: "t.json", found: 2, supported: 1))
        #expect(error.errorDescription?.contains("upgrade charlm") == true)
        let zero = try Self.valid().replacingOccurrences(of: "\"version\": 1,", with: "\"version\": 0,")
        #expect(Self.loadError(zero) == .corruptTokenizerFile(path: "t.json", reason: "version 0 does not exist"))
    }

    @Test("inconsistent files name what is wrong")
    func inconsistent() throws {
        let valid = try Self.valid()
        let cases: [(String, String)] = [
            (
                valid.replacingOccurrences(of: "\"vocabulary_size\": 4", with: "\"vocabulary_size\": 5"),
                "vocabulary_size is 5"
            ),
            (valid.replacingOccurrences(of: "\"unit\": \"l\"", with: "\"unit\": \"h\""), "appears twice"),
            (valid.replacingOccurrences(of: "{\"id\": 2,", with: "{\"id\": 7,"), "entry 2 has id 7"),
            (
                valid.replacingOccurrences(of: "\"form\": \"nfc\"", with: "\"form\": \"nfx\""),
                "config.normalization.form"
            ),
            (valid.replacingOccurrences(of: "\"min_count\": 1,", with: ""), "\"min_count\" is missing"),
            (valid.replacingOccurrences(of: "\"unit\": \"e\"", with: "\"byte\": 300"), "has byte 300"),
            (valid.replacingOccurrences(of: "\"unit\": \"e\"", with: "\"unit\": \"\""), "empty"),
        ]
        for (text, expected) in cases {
            let error = Self.loadError(text)
            guard case .corruptTokenizerFile(_, let reason)? = error else {
                Issue.record("expected a corrupt-file error containing \(expected), got \(String(describing: error))")
                continue
            }
            #expect(reason.contains(expected), "\(reason)")
        }
    }

    @Test("unreadable and unwritable paths")
    func paths() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.url.appendingPathComponent("nope.json")
        #expect(throws: TokenizerError.unreadableFile(path: missing.path, reason: "no such file")) {
            try Tokenizer.load(from: missing)
        }
        let tokenizer = try Tokenizer.build(corpus: "a")
        let nowhere = directory.url.appendingPathComponent("no/such/dir/tokenizer.json")
        #expect(throws: TokenizerError.self) { try tokenizer.save(to: nowhere) }
        let url = directory.url.appendingPathComponent("tokenizer.json")
        try Tokenizer.build(corpus: "xyz").save(to: url)
        try tokenizer.save(to: url)
        #expect(try Tokenizer.load(from: url) == tokenizer)
    }
}
