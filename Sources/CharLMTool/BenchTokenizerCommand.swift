import ArgumentParser
import CharTokenizer
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options of the tokenizer benchmark.
struct BenchTokenizerOptions: ParsableArguments {
    @Option(help: "Text to benchmark (default: tinyshakespeare under ../shared/corpora or corpora).")
    var corpus: String?

    @Option(help: "Size of each benchmark file in MB (10^6 bytes); the text is repeated up to it.")
    var sizeMb = 100

    @Option(help: "Multilingual text to benchmark as well (default: made by make_multilingual.py).")
    var multilingual: String?

    @Flag(help: "Benchmark only the --corpus text.")
    var skipMultilingual = false

    @Option(help: "Timed runs per measurement; the median is reported.")
    var runs = 3

    @Flag(help: "Do not run the Python baseline.")
    var noBaseline = false

    @Option(help: "Python interpreter for the baseline and the corpus script.")
    var python = "python3"

    @Option(help: "Directory holding bench_tokenizer.py and make_multilingual.py.")
    var scripts = "scripts"

    @Option(help: "Directory for the generated files (default: a temporary one, removed afterwards).")
    var workDir: String?

    @Flag(help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        if sizeMb < 1 { throw ValidationError("--size-mb must be at least 1.") }
        if runs < 1 { throw ValidationError("--runs must be at least 1.") }
        if let corpus, !FileManager.default.fileExists(atPath: corpus) {
            throw ValidationError("--corpus \(corpus): no such file.")
        }
        if corpus == nil && BenchTokenizer.defaultCorpus == nil {
            throw ValidationError("No tinyshakespeare.txt under ../shared/corpora or corpora; pass --corpus FILE.")
        }
    }
}

/// `charlm bench tokenizer`: encoding throughput (normalize + segment + look up, file to id
/// array) of charlm against the Python baseline users write, side by side on the same files.
struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Measure tokenizer encoding throughput against the Python baseline.",
        discussion: """
            Repeats the corpus (tinyshakespeare by default) and a multilingual text to --size-mb, builds a \
            tokenizer (NFC, graphemes) from each, and times encoding the file to an id array: the median \
            of --runs runs, in MB/s of file bytes. The baseline (scripts/bench_tokenizer.py) reads the same \
            file, applies unicodedata.normalize("NFC", text) and looks every character up in a dict.
            """
    )

    @OptionGroup var options: BenchTokenizerOptions

    func run() throws {
        try Self.run(options)
    }

    static let defaultCorpusCandidates = ["../shared/corpora/tinyshakespeare.txt", "corpora/tinyshakespeare.txt"]

    static var defaultCorpus: String? {
        defaultCorpusCandidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// One benchmarked text.
    struct Result: Codable {
        let name: String
        let source: String
        let bytes: Int
        let ids: Int
        let vocabularySize: Int
        let bytesPerID: Int
        let charlmSeconds: Double
        let charlmMBPerSecond: Double
        let peakRSSMB: Double
        let python: PythonResult?

        var ratio: Double? { python.map { charlmMBPerSecond / $0.mbPerS } }
    }

    /// What `bench_tokenizer.py --json` prints.
    struct PythonResult: Codable {
        let ids: Int
        let vocabulary: Int
        let seconds: Double
        let mbPerS: Double
        let normalizeSeconds: Double
        let lookupSeconds: Double
        let python: String

        enum CodingKeys: String, CodingKey {
            case ids, vocabulary, seconds, python
            case mbPerS = "mb_per_s"
            case normalizeSeconds = "normalize_seconds"
            case lookupSeconds = "lookup_seconds"
        }
    }

    static func run(_ options: BenchTokenizerOptions) throws {
        let fileManager = FileManager.default
        let workDirectory: URL
        let temporary = options.workDir == nil
        if let workDir = options.workDir {
            workDirectory = URL(fileURLWithPath: workDir)
        } else {
            workDirectory = fileManager.temporaryDirectory.appendingPathComponent("charlm-bench-\(UUID().uuidString)")
        }
        try fileManager.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        defer {
            if temporary { try? fileManager.removeItem(at: workDirectory) }
        }

        var texts: [(name: String, source: URL)] = []
        let corpus = options.corpus ?? defaultCorpus ?? ""
        texts.append((URL(fileURLWithPath: corpus).deletingPathExtension().lastPathComponent, URL(fileURLWithPath: corpus)))
        if !options.skipMultilingual {
            if let multilingual = options.multilingual {
                texts.append(("multilingual", URL(fileURLWithPath: multilingual)))
            } else {
                let made = workDirectory.appendingPathComponent("multilingual.txt")
                try runProcess(options.python, [options.scripts + "/make_multilingual.py", made.path])
                texts.append(("multilingual", made))
            }
        }

        var results: [Result] = []
        for text in texts {
            let repeated = workDirectory.appendingPathComponent("\(text.name)-\(options.sizeMb)MB.txt")
            let bytes = try writeRepeated(text.source, to: repeated, size: options.sizeMb * 1_000_000)
            if !options.json {
                FileHandle.standardError.write(Data("\(text.name): \(bytes) bytes, charlm…\n".utf8))
            }
            let tokenizer = try Tokenizer.build(corpusFile: text.source)
            _ = try tokenizer.encodeFile(repeated)
            var seconds: [Double] = []
            var count = 0
            var width = 1
            for _ in 0..<options.runs {
                let start = ContinuousClock.now
                let encoded = try tokenizer.encodeFile(repeated)
                let elapsed = ContinuousClock.now - start
                seconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
                count = encoded.count
                width = encoded.width.rawValue
            }
            let median = seconds.sorted()[seconds.count / 2]
            var python: PythonResult?
            if !options.noBaseline {
                if !options.json { FileHandle.standardError.write(Data("\(text.name): Python baseline…\n".utf8)) }
                let output = try runProcess(options.python, [options.scripts + "/bench_tokenizer.py", repeated.path,
                                                             "--runs", String(options.runs), "--json"])
                python = try JSONDecoder().decode(PythonResult.self, from: output)
            }
            results.append(Result(name: text.name, source: text.source.path, bytes: bytes, ids: count,
                                  vocabularySize: tokenizer.vocabularySize, bytesPerID: width, charlmSeconds: median,
                                  charlmMBPerSecond: Double(bytes) / 1e6 / median, peakRSSMB: peakResidentMB(),
                                  python: python))
            try? fileManager.removeItem(at: repeated)
        }
        print(options.json ? try jsonText(results) : table(results))
    }

    static func table(_ results: [Result]) -> String {
        var lines = ["machine: \(machine())", "charlm: utf8proc \(Tokenizer.utf8procVersion), Unicode \(Tokenizer.unicodeVersion)"]
        for result in results {
            lines.append("")
            lines.append("\(result.name) (\(result.source)) repeated to \(String(format: "%.1f", Double(result.bytes) / 1e6)) MB")
            lines.append(String(format: "  charlm   %8.1f MB/s  (%.3f s, %d ids, vocabulary %d, %d byte(s)/id, peak RSS %.0f MB)",
                                result.charlmMBPerSecond, result.charlmSeconds, result.ids, result.vocabularySize,
                                result.bytesPerID, result.peakRSSMB))
            if let python = result.python, let ratio = result.ratio {
                lines.append(String(format: "  python   %8.1f MB/s  (%.3f s: NFC %.3f s, lookup %.3f s; %d ids, vocabulary %d; Python %@)",
                                    python.mbPerS, python.seconds, python.normalizeSeconds, python.lookupSeconds, python.ids,
                                    python.vocabulary, python.python))
                lines.append(String(format: "  ratio    %8.1f×", ratio))
            }
        }
        return lines.joined(separator: "\n")
    }

    static func jsonText(_ results: [Result]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(results), as: UTF8.self)
    }

    /// Writes `source` repeated until the file holds at least `size` bytes; returns its size.
    static func writeRepeated(_ source: URL, to destination: URL, size: Int) throws -> Int {
        let data = try Data(contentsOf: source)
        guard !data.isEmpty else { throw TokenizerCommandError("\(source.path) is empty") }
        var output = try CommandOutput(path: destination.path, inputs: [source.path])
        var block = Data()
        while block.count < 8 << 20 { block.append(data) }
        var written = 0
        while written < size {
            let piece = written + block.count <= size ? block : block.prefix((size - written + data.count - 1) / data.count * data.count)
            try output.write(piece)
            written += piece.count
        }
        try output.finish()
        return written
    }

    @discardableResult
    static func runProcess(_ executable: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TokenizerCommandError("\(executable) \(arguments.joined(separator: " ")) failed with status \(process.terminationStatus)")
        }
        return output
    }

    static func peakResidentMB() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return Double(usage.ru_maxrss) / 1_048_576
        #endif
    }

    static func machine() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores, "
            + "\(ProcessInfo.processInfo.operatingSystemVersionString)"
    }
}
