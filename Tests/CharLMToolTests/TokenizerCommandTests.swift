import ArgumentParser
import CharTokenizer
import Foundation
import Testing
@testable import CharLMTool

/// `charlm tokenizer …` parsed and run in-process against temporary files.
@Suite("charlm tokenizer")
struct TokenizerCommandTests {
    final class Workspace {
        let url: URL

        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("charlm-tok-cli-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }

        deinit {
            try? FileManager.default.removeItem(at: url)
        }

        func path(_ name: String) -> String {
            url.appendingPathComponent(name).path
        }

        func write(_ name: String, _ text: String) throws -> String {
            try Data(text.utf8).write(to: url.appendingPathComponent(name))
            return path(name)
        }

        func read(_ name: String) throws -> String {
            String(decoding: try Data(contentsOf: url.appendingPathComponent(name)), as: UTF8.self)
        }
    }

    static let corpus = "First Citizen:\r\nBefore we proceed any further, hear me speak.\nCafé, naïve, e\u{301}, 👍🏽!\n"

    /// Parses `arguments` as the command line and runs the command.
    static func run(_ arguments: [String]) throws {
        var command = try CharLMCommand.parseAsRoot(arguments)
        try command.run()
    }

    @Test("build writes a tokenizer equal to the library's")
    func build() throws {
        let workspace = try Workspace()
        let corpus = try workspace.write("corpus.txt", Self.corpus)
        try Self.run(["tokenizer", "build", corpus, "-o", workspace.path("tok.json")])
        let built = try Tokenizer.load(from: URL(fileURLWithPath: workspace.path("tok.json")))
        #expect(
            built == (try Tokenizer.build(corpus: Self.corpus, config: TokenizerConfig(maxSize: 1024))),
            "charlm's default vocabulary limit, 1024 characters")
    }

    @Test("build options map onto TokenizerConfig")
    func buildOptions() throws {
        let parsed = try CharLMCommand.parseAsRoot([
            "tokenizer", "build", "c.txt", "--normalization", "nfkd", "--unit", "scalar", "--fallback", "bytes",
            "--case-fold", "--strip-marks", "--keep-newlines", "--min-count", "2", "--max-size", "50",
            "--replace-invalid",
        ])
        let build = try #require(parsed as? TokenizerBuild)
        #expect(
            build.options.tokenizerConfig
                == TokenizerConfig(
                    normalization: Normalization(
                        form: .nfkd, caseFold: true, stripMarks: true, normalizeNewlines: false),
                    unit: .scalar, fallback: .bytes, minCount: 2, maxSize: 50, invalidUTF8: .replace))
        let defaults = try #require(try CharLMCommand.parseAsRoot(["tokenizer", "build", "c.txt"]) as? TokenizerBuild)
        #expect(defaults.options.tokenizerConfig == TokenizerConfig(maxSize: 1024))
        #expect(defaults.output == "tokenizer.json")
    }

    @Test(
        "usage errors exit with 64",
        arguments: [
            ["tokenizer", "build", "c.txt", "--min-count", "0"],
            ["tokenizer", "build", "c.txt", "--max-size", "-1"],
            ["tokenizer", "build", "c.txt", "--unit", "word"],
            ["tokenizer", "build"],
            ["tokenizer", "stats", "c.txt", "--top", "-1"],
            ["tokenizer", "encode", "t.json", "in.txt", "--text", "hi"],
            ["tokenizer", "decode", "t.json", "--ids", "1 2", "--format", "binary"],
            ["bench", "tokenizer", "--size-mb", "0"],
        ])
    func usageErrors(arguments: [String]) {
        do {
            _ = try CharLMCommand.parseAsRoot(arguments)
            Issue.record("\(arguments) parsed")
        } catch {
            #expect(
                CharLMCommand.exitCode(for: error).rawValue == 64, "\(arguments): \(CharLMCommand.message(for: error))")
        }
    }

    @Test("encode and decode round-trip in every format", arguments: IDFormat.allCases)
    func encodeDecode(format: IDFormat) throws {
        let workspace = try Workspace()
        let corpus = try workspace.write("corpus.txt", Self.corpus)
        let tokenizerPath = workspace.path("tok.json")
        try Self.run(["tokenizer", "build", corpus, "-o", tokenizerPath, "--fallback", "bytes"])
        let text = try workspace.write("text.txt", "Before Café e\u{301} 日本\r\n")
        let ids = workspace.path("ids.\(format.rawValue)")
        try Self.run(["tokenizer", "encode", tokenizerPath, text, "--format", format.rawValue, "-o", ids])
        let tokenizer = try Tokenizer.load(from: URL(fileURLWithPath: tokenizerPath))
        let expected = try tokenizer.encode("Before Café e\u{301} 日本\r\n")
        let written = try Data(contentsOf: URL(fileURLWithPath: ids))
        switch format {
        case .text:
            #expect(String(decoding: written, as: UTF8.self) == expected.map(String.init).joined(separator: " ") + "\n")
        case .json:
            #expect(try JSONDecoder().decode([Int32].self, from: written) == expected)
        case .binary:
            #expect(written.count == expected.count * 2)
        }
        try Self.run([
            "tokenizer", "decode", tokenizerPath, ids, "--format", format.rawValue, "-o", workspace.path("back.txt"),
        ])
        #expect(
            Array(try workspace.read("back.txt").utf8) == Array(tokenizer.normalize("Before Café e\u{301} 日本\r\n").utf8)
        )
    }

    @Test("encode --text and decode --ids")
    func literals() throws {
        let workspace = try Workspace()
        let corpus = try workspace.write("corpus.txt", "abc\n")
        try Self.run(["tokenizer", "build", corpus, "-o", workspace.path("tok.json")])
        try Self.run([
            "tokenizer", "encode", workspace.path("tok.json"), "--text", "cab", "-o", workspace.path("ids.txt"),
        ])
        #expect(try workspace.read("ids.txt") == "3 1 2\n")
        try Self.run([
            "tokenizer", "decode", workspace.path("tok.json"), "--ids", "[3, 1,2]\n", "-o", workspace.path("out.txt"),
        ])
        #expect(try workspace.read("out.txt") == "cab")
    }

    @Test("runtime errors are one clear line and exit with 1")
    func runtimeErrors() throws {
        let workspace = try Workspace()
        let corpus = try workspace.write("corpus.txt", "abc\n")
        let tokenizer = workspace.path("tok.json")
        try Self.run(["tokenizer", "build", corpus, "-o", tokenizer])
        let foreign = try workspace.write("foreign.json", #"{"model": {"type": "BPE"}, "added_tokens": []}"#)
        let unknown = try workspace.write("unknown.txt", "abcé")
        try Data([0x61, 0x62, 0xFF]).write(to: URL(fileURLWithPath: workspace.path("invalid.txt")))
        let empty = try workspace.write("empty.txt", "")
        let cases: [([String], String)] = [
            (["tokenizer", "encode", foreign, unknown], "Hugging Face"),
            (["tokenizer", "encode", tokenizer, unknown], "'é' (U+00E9)"),
            (["tokenizer", "encode", tokenizer, workspace.path("invalid.txt")], "byte offset 2"),
            (["tokenizer", "encode", tokenizer, workspace.path("missing.txt")], "no such file"),
            (["tokenizer", "build", empty, "-o", workspace.path("t2.json")], "is empty"),
            (["tokenizer", "build", workspace.path("invalid.txt"), "-o", workspace.path("t3.json")], "byte offset 2"),
            (["tokenizer", "decode", tokenizer, "--ids", "1 x 2"], "found 'x' at byte offset 2"),
            (["tokenizer", "decode", tokenizer, "--ids", "1 99"], "token id 99 is out of range"),
            (["tokenizer", "build", corpus, "-o", workspace.path("no/dir/t.json")], "cannot write"),
            (["tokenizer", "encode", tokenizer, corpus, "-o", "/dev/full"], "No space left on device"),
            (["tokenizer", "build", corpus, "-o", "/dev/full"], "No space left on device"),
        ]
        for (arguments, expected) in cases {
            let result = try CommandLineTests.charlm(arguments, in: workspace.url)
            #expect(result.status == 1, "\(arguments): exit \(result.status)")
            #expect(
                result.stderr.hasPrefix("charlm: error: ") && result.stderr.contains(expected),
                "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: workspace.path("t2.json")))
        // A device given as the output is written in place, never replaced by a file.
        let toNull = try CommandLineTests.charlm(
            ["tokenizer", "encode", tokenizer, corpus, "-o", "/dev/null"], in: workspace.url)
        #expect(toNull.status == 0, "\(toNull.stderr)")
        for device in ["/dev/null", "/dev/full"] {
            var status = stat()
            #expect(stat(device, &status) == 0 && (status.st_mode & S_IFMT) == S_IFCHR, "\(device) is still a device")
        }
    }

    @Test("stats reports sizes, units, vocabulary and coverage")
    func stats() throws {
        let workspace = try Workspace()
        let corpus = try workspace.write("corpus.txt", "aab\r\nb👍🏽")
        try Self.run(["tokenizer", "stats", corpus, "--json", "--top", "2", "-o", workspace.path("stats.json")])
        let report = try JSONDecoder().decode(
            TokenizerStats.Report.self, from: Data(try workspace.read("stats.json").utf8))
        #expect(report.bytes == 14)
        #expect(report.units == 6)
        #expect(report.scalars == 7)
        #expect(report.distinctUnits == 4)
        #expect(report.vocabularySize == 6)
        #expect(report.vocabularyCoverage == 1)
        #expect(report.top.map(\.unit) == ["a", "b"])
        #expect(report.top.map(\.count) == [2, 2])
        #expect(report.topCoverage["1"] == 2.0 / 6.0)

        try Self.run([
            "tokenizer", "stats", corpus, "--max-size", "1", "--fallback", "unknown", "-o", workspace.path("stats.txt"),
        ])
        let text = try workspace.read("stats.txt")
        #expect(text.contains("units              6 graphemes, 4 distinct"))
        #expect(text.contains("vocabulary         2 tokens, covering 33.33% of units without fallback"))
        #expect(text.contains("\"\\n\""))

        let empty = try workspace.write("empty.txt", "")
        try Self.run(["tokenizer", "stats", empty, "--json", "-o", workspace.path("empty.json")])
        let emptyReport = try JSONDecoder().decode(
            TokenizerStats.Report.self, from: Data(try workspace.read("empty.json").utf8))
        #expect(emptyReport.units == 0 && emptyReport.vocabularySize == 0)
    }

    @Test("the benchmark runs end to end without the Python baseline")
    func bench() throws {
        let workspace = try Workspace()
        let corpus = try workspace.write("small.txt", String(repeating: "Hello, wörld! e\u{301}\n", count: 100))
        var command = try CharLMCommand.parseAsRoot([
            "bench", "tokenizer", "--corpus", corpus, "--size-mb", "1", "--runs", "1",
            "--no-baseline", "--skip-multilingual", "--json",
            "--work-dir", workspace.path("work"),
        ])
        try command.run()
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspace.path("work")).isEmpty)
    }
}
