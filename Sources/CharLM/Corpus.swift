import CharTokenizer
import Foundation

/// A contiguous run of token ids inside an encoded corpus.
public struct TokenSpan: Sendable {
    public let corpus: EncodedCorpus
    public let range: Range<Int>

    public init(_ corpus: EncodedCorpus, range: Range<Int>? = nil) {
        self.corpus = corpus
        self.range = range ?? 0..<corpus.count
    }

    public var count: Int { range.count }

    /// Ids at positions `r` relative to the span's start.
    public func ids(_ r: Range<Int>) -> [Int32] {
        corpus.ids((range.lowerBound + r.lowerBound)..<(range.lowerBound + r.upperBound))
    }
}

/// A training corpus, tokenized, with its train/validation split.
public struct Corpus: Sendable {
    public let train: TokenSpan
    public let validation: TokenSpan
    /// Size of the corpus file in bytes.
    public let bytes: Int

    /// Checks that `url` holds text worth training on, before any expensive work.
    /// - Throws: `CharLMError.badCorpus` for a missing, empty, unreadable or binary file.
    public static func checkReadable(_ url: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw CharLMError.badCorpus(path: url.path, reason: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw CharLMError.badCorpus(path: url.path, reason: "is a directory, not a text file")
        }
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw CharLMError.badCorpus(path: url.path, reason: "cannot be read (permissions?)")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 65536)) ?? Data()
        guard !head.isEmpty else { throw CharLMError.badCorpus(path: url.path, reason: "is empty") }
        if let zero = head.firstIndex(of: 0) {
            throw CharLMError.badCorpus(
                path: url.path,
                reason: "looks like a binary file (NUL byte at offset \(zero)); charlm trains on UTF-8 text")
        }
    }

    /// Encodes `url` with `tokenizer` (streaming: the text is never held as a String) and
    /// splits it: the last `valFraction` for validation, or all of `validationFile`.
    public static func load(_ url: URL, tokenizer: Tokenizer, valFraction: Double, validationFile: URL?) throws
        -> Corpus
    {
        try checkReadable(url)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        let ids = try encode(url, tokenizer: tokenizer)
        if let validationFile {
            try checkReadable(validationFile)
            let validation = try encode(validationFile, tokenizer: tokenizer)
            return Corpus(train: TokenSpan(ids), validation: TokenSpan(validation), bytes: bytes)
        }
        let validationCount = Int((Double(ids.count) * valFraction).rounded())
        let split = ids.count - validationCount
        return Corpus(
            train: TokenSpan(ids, range: 0..<split), validation: TokenSpan(ids, range: split..<ids.count), bytes: bytes)
    }

    private static func encode(_ url: URL, tokenizer: Tokenizer) throws -> EncodedCorpus {
        do {
            return try tokenizer.encodeFile(url)
        } catch let error as TokenizerError {
            throw CharLMError.badCorpus(path: url.path, reason: error.localizedDescription)
        }
    }
}

/// Truncated-BPTT batches: the span is cut into `batchSize` contiguous streams, and chunk `c`
/// is the next `seqLength` ids of every stream (targets shifted by one).
public struct StreamBatcher: Sendable {
    public let data: TokenSpan
    public let batchSize: Int
    public let seqLength: Int
    /// Ids per stream.
    public let streamLength: Int

    /// - Throws: `CharLMError.badCorpus` when the span is shorter than one step.
    public init(data: TokenSpan, batchSize: Int, seqLength: Int, name: String) throws {
        self.data = data
        self.batchSize = batchSize
        self.seqLength = seqLength
        streamLength = max(0, data.count - 1) / batchSize
        guard streamLength >= seqLength else {
            throw CharLMError.badCorpus(
                path: name,
                reason:
                    "its training split has \(data.count) units, fewer than one step needs (batch \(batchSize) x "
                        + "seq-length \(seqLength) + 1 = \(batchSize * seqLength + 1)); use a longer text or smaller "
                            + "--batch / --seq-length"
            )
        }
    }

    /// Chunks per stream in one pass over the data.
    public var chunksPerEpoch: Int { streamLength / seqLength }

    /// Inputs and targets of chunk `chunk`, (batchSize, seqLength) batch-major.
    public func batch(chunk: Int) -> (inputs: [Int32], targets: [Int32]) {
        precondition(chunk >= 0 && chunk < chunksPerEpoch, "chunk \(chunk) outside 0..<\(chunksPerEpoch)")
        var inputs: [Int32] = []
        var targets: [Int32] = []
        inputs.reserveCapacity(batchSize * seqLength)
        targets.reserveCapacity(batchSize * seqLength)
        for b in 0..<batchSize {
            let start = b * streamLength + chunk * seqLength
            let ids = data.ids(start..<(start + seqLength + 1))
            inputs += ids.dropLast()
            targets += ids.dropFirst()
        }
        return (inputs, targets)
    }
}
