import CharTokenizer
import Foundation

/// Token ids of an encoded corpus read as one sequence: a run of it, or several runs one after
/// another (the blocks of a split).
public struct TokenSpan: Sendable {
    public let corpus: EncodedCorpus
    /// The runs of `corpus` the span is made of, in order.
    public let ranges: [Range<Int>]
    /// Where each run starts within the span.
    private let starts: [Int]
    /// Number of ids.
    public let count: Int

    /// The whole corpus, or one run of it.
    public init(_ corpus: EncodedCorpus, range: Range<Int>? = nil) {
        self.init(corpus, ranges: [range ?? 0..<corpus.count])
    }

    /// Runs of `corpus` (empty ones are left out), read one after another.
    public init(_ corpus: EncodedCorpus, ranges: [Range<Int>]) {
        self.corpus = corpus
        self.ranges = ranges.filter { !$0.isEmpty }
        var starts: [Int] = []
        var total = 0
        for range in self.ranges {
            starts.append(total)
            total += range.count
        }
        self.starts = starts
        count = total
    }

    /// Ids at positions `r` of the span.
    public func ids(_ r: Range<Int>) -> [Int32] {
        let r = r.clamped(to: 0..<count)
        guard !r.isEmpty else { return [] }
        if ranges.count == 1 {
            return corpus.ids((ranges[0].lowerBound + r.lowerBound)..<(ranges[0].lowerBound + r.upperBound))
        }
        var out: [Int32] = []
        out.reserveCapacity(r.count)
        var position = r.lowerBound
        var run = runIndex(containing: position)
        while position < r.upperBound {
            let offset = position - starts[run]
            let take = min(ranges[run].count - offset, r.upperBound - position)
            out += corpus.ids((ranges[run].lowerBound + offset)..<(ranges[run].lowerBound + offset + take))
            position += take
            run += 1
        }
        return out
    }

    /// Runs of this span (positions within it), as a span of their own.
    public func subspan(_ runs: [Range<Int>]) -> TokenSpan {
        var pieces: [Range<Int>] = []
        for r in runs {
            let r = r.clamped(to: 0..<count)
            var position = r.lowerBound
            guard position < r.upperBound else { continue }
            var run = runIndex(containing: position)
            while position < r.upperBound {
                let offset = position - starts[run]
                let take = min(ranges[run].count - offset, r.upperBound - position)
                pieces.append((ranges[run].lowerBound + offset)..<(ranges[run].lowerBound + offset + take))
                position += take
                run += 1
            }
        }
        return TokenSpan(corpus, ranges: pieces)
    }

    /// At most `limit` ids of the span, as evenly spaced pieces of `piece` ids: the whole span
    /// when it is no longer.
    public func sample(atMost limit: Int, piece: Int = 4096) -> TokenSpan {
        guard count > limit, limit > 0 else { return self }
        let pieces = max(1, limit / piece)
        let length = limit / pieces
        let stride = count / pieces
        return subspan((0..<pieces).map { ($0 * stride)..<($0 * stride + length) })
    }

    private func runIndex(containing position: Int) -> Int {
        var low = 0, high = starts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if starts[middle] <= position { low = middle } else { high = middle - 1 }
        }
        return low
    }
}

/// A training corpus, tokenized, with its train/validation/test split.
public struct Corpus: Sendable {
    public let train: TokenSpan
    /// Picks the best checkpoint and stops training early.
    public let validation: TokenSpan
    /// Plays no part in training: the loss reported for the best checkpoint (may be empty).
    public let test: TokenSpan
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
    /// splits it: `split` decides which parts are held out for validation (a `valFraction` of
    /// it) and for the test (a `testFraction`). With a `validationFile`, that file is the
    /// validation text and only the test part is held out of `url`.
    public static func load(
        _ url: URL, tokenizer: Tokenizer, valFraction: Double, testFraction: Double = 0,
        split: ValidationSplit = .tail, validationFile: URL?
    ) throws -> Corpus {
        try checkReadable(url)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        let ids = try encode(url, tokenizer: tokenizer)
        if let validationFile {
            try checkReadable(validationFile)
            let validation = try encode(validationFile, tokenizer: tokenizer)
            let parts = split.ranges(count: ids.count, validation: 0, test: testFraction)
            return Corpus(
                train: TokenSpan(ids, ranges: parts.train), validation: TokenSpan(validation),
                test: TokenSpan(ids, ranges: parts.test), bytes: bytes)
        }
        let parts = split.ranges(count: ids.count, validation: valFraction, test: testFraction)
        return Corpus(
            train: TokenSpan(ids, ranges: parts.train), validation: TokenSpan(ids, ranges: parts.validation),
            test: TokenSpan(ids, ranges: parts.test), bytes: bytes)
    }

    /// The training, validation and test parts of `ids`, the encoded corpus of a run trained
    /// with `training`, as the trainer split them (no validation part when the run validated on
    /// a file of its own).
    public static func heldOut(_ ids: EncodedCorpus, training: TrainingConfig) -> (
        train: TokenSpan, validation: TokenSpan?, test: TokenSpan
    ) {
        let validationFraction = training.validationFile == nil ? training.valFraction : 0
        let parts = training.validationSplit.ranges(
            count: ids.count, validation: validationFraction, test: training.testFraction)
        return (
            TokenSpan(ids, ranges: parts.train),
            training.validationFile == nil ? TokenSpan(ids, ranges: parts.validation) : nil,
            TokenSpan(ids, ranges: parts.test)
        )
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

    /// A labelling run's chunk `chunk`: the targets are the text itself, (batchSize, seqLength)
    /// batch-major, and the inputs their reduced forms (`inputOf[id]`), position for position.
    public func labellingBatch(chunk: Int, inputOf: [Int32]) -> (inputs: [Int32], targets: [Int32]) {
        precondition(chunk >= 0 && chunk < chunksPerEpoch, "chunk \(chunk) outside 0..<\(chunksPerEpoch)")
        var targets: [Int32] = []
        targets.reserveCapacity(batchSize * seqLength)
        for b in 0..<batchSize {
            let start = b * streamLength + chunk * seqLength
            targets += data.ids(start..<(start + seqLength))
        }
        return (targets.map { inputOf[Int($0)] }, targets)
    }
}

/// Which part of a corpus is held out for validation.
public enum ValidationSplit: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Blocks of `size` units (smaller for a text shorter than 100 of them) spread evenly
    /// through the text: of every run of blocks, the fraction asked for (every tenth block for
    /// 10%), so that the held-out text is like the whole, whatever order the corpus is in.
    case blocks(size: Int)
    /// The end of the text (char-rnn's split).
    case tail

    /// charlm's default: blocks of 4096 units.
    public static let standard = ValidationSplit.blocks(size: 4096)

    /// The training and validation ranges of a corpus of `count` units.
    func ranges(count: Int, fraction: Double) -> (train: [Range<Int>], validation: [Range<Int>]) {
        let split = ranges(count: count, validation: fraction, test: 0)
        return (split.train, split.validation)
    }

    /// The training, validation and test ranges of a corpus of `count` units: `validation` and
    /// `test` of it held out. With no test part the first two are what the two-way split gives.
    func ranges(count: Int, validation fraction: Double, test testFraction: Double) -> (
        train: [Range<Int>], validation: [Range<Int>], test: [Range<Int>]
    ) {
        let heldOutFraction = fraction + testFraction
        switch self {
        case .tail:
            // Training text, then validation, then test at the very end.
            let testStart = count - Int((Double(count) * testFraction).rounded())
            let split = count - Int((Double(count) * heldOutFraction).rounded())
            let parts = ([0..<split], [split..<testStart], [testStart..<count])
            return (parts.0.filter { !$0.isEmpty }, parts.1.filter { !$0.isEmpty }, parts.2.filter { !$0.isEmpty })
        case .blocks(let size):
            // A short text has smaller blocks: at least 100 of them, so that it holds some out.
            let size = max(1, min(size, count / 100))
            var train: [Range<Int>] = [], validation: [Range<Int>] = [], test: [Range<Int>] = []
            let blocks = (count + size - 1) / size
            // Of the held-out blocks, this share goes to the test split, spread evenly too.
            let testShare = heldOutFraction > 0 ? testFraction / heldOutFraction : 0
            var heldOut = 0
            for block in 0..<blocks {
                let range = (block * size)..<min(count, (block + 1) * size)
                // Block b is held out when the running total of the fraction passes a whole
                // number in it: evenly spaced, and exactly round(blocks x fraction) of them.
                guard
                    Int((Double(block + 1) * heldOutFraction).rounded())
                        > Int((Double(block) * heldOutFraction).rounded())
                else {
                    train.append(range)
                    continue
                }
                let isTest =
                    Int((Double(heldOut + 1) * testShare).rounded()) > Int((Double(heldOut) * testShare).rounded())
                if isTest { test.append(range) } else { validation.append(range) }
                heldOut += 1
            }
            return (Self.merged(train), Self.merged(validation), Self.merged(test))
        }
    }

    /// Adjacent ranges joined.
    private static func merged(_ ranges: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for range in ranges {
            if let last = out.last, last.upperBound == range.lowerBound {
                out[out.count - 1] = last.lowerBound..<range.upperBound
            } else {
                out.append(range)
            }
        }
        return out
    }

    /// Parses `blocks`, `blocks:SIZE` or `tail`.
    public init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: ":").map(String.init)
        switch parts.first {
        case "tail" where parts.count == 1: self = .tail
        case "blocks" where parts.count == 1: self = .standard
        case "blocks" where parts.count == 2:
            guard let size = Int(parts[1]), size >= 1 else {
                throw CharLMError.invalidOptions("validation split '\(text)': the block size must be a positive number")
            }
            self = .blocks(size: size)
        default:
            throw CharLMError.invalidOptions("validation split '\(text)': expected blocks, blocks:SIZE or tail")
        }
    }

    public var description: String {
        switch self {
        case .tail: "tail"
        case .blocks(let size): "blocks:\(size)"
        }
    }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
