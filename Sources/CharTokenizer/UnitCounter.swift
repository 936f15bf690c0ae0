import Foundation

/// Counts of the distinct units of a corpus, keyed by their UTF-8 bytes.
struct UnitCounts: Sendable {
    /// Unit bytes → occurrences. For unit `.byte`, keys are single bytes.
    var units: [[UInt8]: Int] = [:]
    /// Bytes read (before normalization).
    var inputBytes = 0
}

/// Counts units over a stream of chunks that end at safe cuts.
final class UnitCounter {
    private let config: TokenizerConfig
    private let tables: NormalizationTables
    private var segmenter: Segmenter
    private var sink = CountingSink()
    private let mask: UInt8
    private var asciiPayloads: [Int32]
    private var smallCounts = [Int](repeating: 0, count: UnitCounter.smallLimit)
    private var largeCounts: [UInt32: Int] = [:]
    private var inputBytes = 0
    private let out = IDBuffer(capacity: 1 << 16)

    /// Scalars below this are counted in an array, the rest in a dictionary.
    private static let smallLimit = 0x3000

    init(config: TokenizerConfig, source: String?) {
        self.config = config
        tables = NormalizationTables.tables(for: config.normalization)
        segmenter = Segmenter(tables: tables, unit: config.unit, invalidUTF8: config.invalidUTF8, source: source)
        let fastMask =
            config.unit == .grapheme
            ? NormalizationTables.Kind.fastGrapheme : NormalizationTables.Kind.fastScalar
        let mask = fastMask | NormalizationTables.Kind.identity
        let kinds = tables.kinds
        self.mask = mask
        asciiPayloads = (0..<128).map { kinds[UInt32($0)] & mask == mask ? Int32($0) : -1 }
        if config.normalization.normalizeNewlines { asciiPayloads[0x0D] = -1 }
    }

    /// Counts the units of one chunk.
    func count(chunk: UnsafeBufferPointer<UInt8>, offset: Int) throws {
        inputBytes += chunk.count
        out.removeAll()
        let mask = self.mask
        try tables.kinds.withLookup { kinds in
            try asciiPayloads.withUnsafeBufferPointer { ascii in
                try segmenter.process(
                    chunk, baseOffset: offset, ascii: ascii.baseAddress!,
                    fast: IdentityLookup(kinds: kinds, mask: mask), out: out, sink: &sink)
            }
        }
        // Payloads are single-scalar units (or, for unit .byte, scalars whose bytes are units).
        var large: [UInt32] = []
        let payloads = out.elements
        smallCounts.withUnsafeMutableBufferPointer { counts in
            for payload in payloads {
                let scalar = UInt32(bitPattern: payload)
                if scalar < Self.smallLimit {
                    counts[Int(scalar)] &+= 1
                } else {
                    large.append(scalar)
                }
            }
        }
        for scalar in large {
            largeCounts[scalar, default: 0] += 1
        }
    }

    /// The counts so far.
    func result() -> UnitCounts {
        var counts = UnitCounts(inputBytes: inputBytes)
        var scalarCounts: [(UInt32, Int)] = []
        for (scalar, count) in smallCounts.enumerated() where count > 0 {
            scalarCounts.append((UInt32(scalar), count))
        }
        scalarCounts += largeCounts.map { ($0.key, $0.value) }
        if config.unit == .byte {
            var byteCounts = [Int](repeating: 0, count: 256)
            var bytes: [UInt8] = []
            for (scalar, count) in scalarCounts {
                bytes.removeAll(keepingCapacity: true)
                UTF8Decoding.append(scalar, to: &bytes)
                for byte in bytes { byteCounts[Int(byte)] += count }
            }
            for (byte, count) in byteCounts.enumerated() where count > 0 {
                counts.units[[UInt8(byte)]] = count
            }
        } else {
            for (scalar, count) in scalarCounts {
                counts.units[UTF8Decoding.encode(CollectionOfOne(scalar)), default: 0] += count
            }
            for (unit, count) in sink.clusters {
                counts.units[unit, default: 0] += count
            }
        }
        return counts
    }

    /// Counts the units of a whole file, streaming.
    static func count(file url: URL, config: TokenizerConfig, chunkSize: Int = ChunkReader.defaultChunkSize) throws
        -> UnitCounts
    {
        let counter = UnitCounter(config: config, source: url.path)
        let kinds = NormalizationTables.tables(for: config.normalization).kinds
        try ChunkReader.withFile(url, kinds: kinds, chunkSize: chunkSize) { reader in
            try reader.forEachChunk { chunk, offset, _ in
                try counter.count(chunk: chunk, offset: offset)
            }
        }
        return counter.result()
    }

    /// Counts the units of UTF-8 in memory.
    static func count(utf8 bytes: UnsafeBufferPointer<UInt8>, config: TokenizerConfig) throws -> UnitCounts {
        let counter = UnitCounter(config: config, source: nil)
        try counter.count(chunk: bytes, offset: 0)
        return counter.result()
    }
}

/// Single-scalar units become payloads (counted in bulk); longer clusters are counted here.
struct CountingSink: UnitSink {
    var clusters: [[UInt8]: Int] = [:]

    mutating func emit(unit scalars: UnsafeBufferPointer<UInt32>, into out: IDBuffer) {
        if scalars.count == 1 {
            out.append(Int32(bitPattern: scalars[0]))
        } else {
            clusters[UTF8Decoding.encode(scalars), default: 0] += 1
        }
    }
}
