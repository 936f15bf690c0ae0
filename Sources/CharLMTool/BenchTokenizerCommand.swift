import ArgumentParser
import CharLM
import CharTokenizer
import Foundation

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

    @Option(help: "Threads for charlm's encoding (a one-thread measurement is made as well).")
    var threads = min(ProcessInfo.processInfo.activeProcessorCount, 8)

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
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
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
            of --runs runs, in MB/s of file bytes, on --threads threads and on one. The baseline \
            (scripts/bench_tokenizer.py, one thread) reads the same file, applies \
            unicodedata.normalize("NFC", text) and looks every character up in a dict.
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

    static func run(_ options: BenchTokenizerOptions) throws {
        try Console.run {
            let fileManager = FileManager.default
            let workDirectory =
                options.workDir.map { URL(fileURLWithPath: $0) }
                ?? fileManager.temporaryDirectory.appendingPathComponent("charlm-bench-\(UUID().uuidString)")
            try fileManager.createDirectory(at: workDirectory, withIntermediateDirectories: true)
            defer { if options.workDir == nil { try? fileManager.removeItem(at: workDirectory) } }
            let scripts = ReferenceScripts(python: options.python, directory: options.scripts)
            var texts: [(name: String, source: URL)] = []
            let corpus = URL(fileURLWithPath: options.corpus ?? defaultCorpus ?? "")
            texts.append((corpus.deletingPathExtension().lastPathComponent, corpus))
            if !options.skipMultilingual {
                if let multilingual = options.multilingual {
                    texts.append(("multilingual", URL(fileURLWithPath: multilingual)))
                } else {
                    let made = workDirectory.appendingPathComponent("multilingual.txt")
                    _ = try scripts.run("make_multilingual.py", [made.path])
                    texts.append(("multilingual", made))
                }
            }
            let benchmark = TokenizerBenchmark(
                texts: texts, bytes: options.sizeMb * 1_000_000, runs: options.runs,
                threads: options.threads, reference: options.noBaseline ? nil : scripts,
                workDirectory: workDirectory)
            let results = try benchmark.run { if !options.json { Console.note("\($0)…") } }
            Console.out((options.json ? try jsonText(results) : table(results)) + "\n")
        }
    }

    static func table(_ results: [TokenizerBenchmark.Result]) -> String {
        var lines = [
            "machine: \(Benchmark.machine)",
            "charlm: utf8proc \(Tokenizer.utf8procVersion), Unicode \(Tokenizer.unicodeVersion)",
        ]
        for result in results {
            lines.append("")
            lines.append(
                "\(result.name) (\(result.source)) repeated to \(String(format: "%.1f", Double(result.bytes) / 1e6)) MB"
            )
            lines.append(
                String(
                    format: "  charlm, %d threads %8.1f MB/s  (%d ids, vocabulary %d, %d byte(s)/id, peak RSS %.0f MB)",
                    result.threads, result.charlmMBPerSecond, result.ids, result.vocabularySize, result.bytesPerID,
                    result.peakResidentMB))
            lines.append(String(format: "  charlm, 1 thread   %8.1f MB/s", result.charlmOneThreadMBPerSecond))
            if let python = result.python, let ratio = result.ratio, let one = result.oneThreadRatio {
                lines.append(
                    String(
                        format:
                            "  Python, 1 thread   %8.1f MB/s  (%.3f s: NFC %.3f s, lookup %.3f s; %d ids, vocabulary "
                            + "%d; Python %@)",
                        python.mbPerS, python.seconds, python.normalizeSeconds, python.lookupSeconds, python.ids,
                        python.vocabulary, python.python))
                lines.append(
                    String(
                        format: "  ratio              %8.1f× (%d threads), %.1f× (1 thread against 1 thread)", ratio,
                        result.threads, one))
            }
        }
        return lines.joined(separator: "\n")
    }

    static func jsonText(_ results: [TokenizerBenchmark.Result]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(results), as: UTF8.self)
    }
}
