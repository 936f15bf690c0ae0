import CharTokenizer
import Foundation

/// The tokenizer benchmark behind `charlm bench tokenizer`: encoding a file to an id array
/// (normalization, segmentation, lookup) against the Python users write for it
/// (`scripts/bench_tokenizer.py`: `unicodedata.normalize("NFC", text)`, then a dict lookup per
/// character), side by side on the same files.
public struct TokenizerBenchmark: Sendable {
    /// Texts to benchmark, each repeated up to `bytes`.
    public var texts: [(name: String, source: URL)]
    public var bytes: Int
    /// Timed runs per measurement; the median is reported.
    public var runs: Int
    /// Threads for charlm's multi-threaded measurement (a single-thread one is always made too).
    public var threads: Int
    /// The Python baseline, if it is to run.
    public var reference: ReferenceScripts?
    /// Where the repeated files are written.
    public var workDirectory: URL

    public init(
        texts: [(name: String, source: URL)], bytes: Int, runs: Int, threads: Int, reference: ReferenceScripts?,
        workDirectory: URL
    ) {
        self.texts = texts
        self.bytes = bytes
        self.runs = runs
        self.threads = threads
        self.reference = reference
        self.workDirectory = workDirectory
    }

    /// One benchmarked text.
    public struct Result: Codable, Sendable {
        public let name: String
        public let source: String
        public let bytes: Int
        public let ids: Int
        public let vocabularySize: Int
        public let bytesPerID: Int
        public let threads: Int
        public let charlmMBPerSecond: Double
        public let charlmOneThreadMBPerSecond: Double
        public let peakResidentMB: Double
        public let python: PythonResult?

        /// charlm on `threads` threads, and on one, against Python (one thread).
        public var ratio: Double? { python.map { charlmMBPerSecond / $0.mbPerS } }
        public var oneThreadRatio: Double? { python.map { charlmOneThreadMBPerSecond / $0.mbPerS } }
    }

    /// What `bench_tokenizer.py --json` prints.
    public struct PythonResult: Codable, Sendable {
        public let ids: Int
        public let vocabulary: Int
        public let seconds: Double
        public let mbPerS: Double
        public let normalizeSeconds: Double
        public let lookupSeconds: Double
        public let python: String

        enum CodingKeys: String, CodingKey {
            case ids, vocabulary, seconds, python
            case mbPerS = "mb_per_s"
            case normalizeSeconds = "normalize_seconds"
            case lookupSeconds = "lookup_seconds"
        }
    }

    /// Runs every measurement; `progress` hears what is being measured.
    public func run(progress: (String) -> Void = { _ in }) throws -> [Result] {
        var results: [Result] = []
        for text in texts {
            let repeated = workDirectory.appendingPathComponent("\(text.name)-\(bytes / 1_000_000)MB.txt")
            let size = try Self.writeRepeated(text.source, to: repeated, size: bytes)
            defer { try? FileManager.default.removeItem(at: repeated) }
            progress("\(text.name): \(size) bytes, charlm")
            let tokenizer = try Tokenizer.build(corpusFile: text.source)
            let encoded = try tokenizer.encodeFile(repeated, threads: threads)
            let many = try Self.median(runs) { _ = try tokenizer.encodeFile(repeated, threads: threads) }
            let one = try Self.median(runs) { _ = try tokenizer.encodeFile(repeated, threads: 1) }
            var python: PythonResult?
            if let reference {
                progress("\(text.name): Python baseline")
                let output = try reference.run("bench_tokenizer.py", [repeated.path, "--runs", String(runs), "--json"])
                python = try JSONDecoder().decode(PythonResult.self, from: output)
            }
            results.append(
                Result(
                    name: text.name, source: text.source.path, bytes: size, ids: encoded.count,
                    vocabularySize: tokenizer.vocabularySize, bytesPerID: encoded.width.rawValue, threads: threads,
                    charlmMBPerSecond: Double(size) / 1e6 / many, charlmOneThreadMBPerSecond: Double(size) / 1e6 / one,
                    peakResidentMB: Double(Benchmark.peakResidentBytes()) / 1e6, python: python))
        }
        return results
    }

    /// The median of `runs` timings of `body`, in seconds.
    static func median(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
        var seconds: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return seconds.sorted()[seconds.count / 2]
    }

    /// Writes `source` repeated until the file holds at least `size` bytes (whole copies of
    /// it); returns its size.
    static func writeRepeated(_ source: URL, to destination: URL, size: Int) throws -> Int {
        let data = try Data(contentsOf: source)
        guard !data.isEmpty else { throw CharLMError.badCorpus(path: source.path, reason: "is empty") }
        var block = Data()
        while block.count < 8 << 20 { block.append(data) }
        var file = Data()
        while file.count < size {
            file.append(
                file.count + block.count <= size
                    ? block : block.prefix((size - file.count + data.count - 1) / data.count * data.count))
        }
        try writeDurably(file, to: destination)
        return file.count
    }
}

/// The Python reference scripts (scripts/*.py) that benchmarks run beside charlm.
public struct ReferenceScripts: Sendable {
    /// The interpreter, found on PATH.
    public var python: String
    /// The directory holding the scripts.
    public var directory: String

    public init(python: String = "python3", directory: String = "scripts") {
        self.python = python
        self.directory = directory
    }

    /// Runs `script` and returns its standard output.
    /// - Throws: `CharLMError.invalidOptions` when it cannot start or fails, with its last line of errors.
    public func run(_ script: String, _ arguments: [String]) throws -> Data {
        let path = directory + "/" + script
        guard FileManager.default.fileExists(atPath: path) else {
            throw CharLMError.invalidOptions("\(path) not found (run from the repository root or pass --scripts)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, path] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            throw CharLMError.invalidOptions("cannot start \(python): \(error.localizedDescription)")
        }
        // Read both pipes at once, so that neither can fill up and block the script.
        final class Collected: @unchecked Sendable { var data = Data() }
        let errors = Collected(), reading = DispatchGroup()
        DispatchQueue.global().async(group: reading) { errors.data = err.fileHandleForReading.readDataToEndOfFile() }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        reading.wait()
        guard process.terminationStatus == 0 else {
            let last =
                String(decoding: errors.data, as: UTF8.self).split(separator: "\n").last.map(String.init)
                ?? "exit \(process.terminationStatus)"
            throw CharLMError.invalidOptions("\(script) failed: \(last)")
        }
        return output
    }

    /// Runs `script` and returns the JSON objects it prints, one per line.
    public func results(_ script: String, _ arguments: [String]) throws -> [[String: Any]] {
        String(decoding: try run(script, arguments), as: UTF8.self).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }
}
