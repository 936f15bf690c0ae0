import Foundation

/// What a corpus is made of, under a tokenizer configuration: sizes, units and their frequencies.
///
/// ```swift
/// let stats = try CorpusStatistics(corpusFile: url, config: TokenizerConfig())
/// print(stats.units, stats.distinctUnits, stats.topUnits(10))
/// ```
public struct CorpusStatistics: Sendable {
    /// A distinct unit and how often it occurs.
    public struct UnitCount: Sendable, Hashable {
        /// The unit's UTF-8 bytes (one byte for unit `.byte`).
        public let utf8: [UInt8]
        /// Occurrences in the corpus.
        public let count: Int

        /// The unit as text (`<0xNN>` for a byte that is not ASCII).
        public var text: String {
            if utf8.count == 1 && utf8[0] >= 0x80 { return VocabularyEntry.byteName(utf8[0]) }
            return String(decoding: utf8, as: UTF8.self)
        }
    }

    /// The configuration the units were counted under.
    public let config: TokenizerConfig
    /// Bytes of the corpus as read.
    public let bytes: Int
    /// Bytes after normalization.
    public let normalizedBytes: Int
    /// Unicode scalars after normalization.
    public let scalars: Int
    /// Units (graphemes, scalars or bytes) after normalization.
    public let units: Int
    /// Every distinct unit, most frequent first (ties broken by bytes).
    public let unitCounts: [UnitCount]

    /// Number of distinct units.
    public var distinctUnits: Int { unitCounts.count }

    /// The `k` most frequent units.
    public func topUnits(_ k: Int) -> [UnitCount] {
        Array(unitCounts.prefix(max(k, 0)))
    }

    /// Share (0…1) of all units covered by the `k` most frequent distinct units.
    public func coverage(ofTop k: Int) -> Double {
        guard units > 0 else { return 0 }
        return Double(unitCounts.prefix(max(k, 0)).reduce(0) { $0 + $1.count }) / Double(units)
    }

    /// Share (0…1) of all units that have a token of their own in `tokenizer` (the rest goes
    /// through fallback).
    public func vocabularyCoverage(of tokenizer: Tokenizer) -> Double {
        guard units > 0 else { return 0 }
        var covered = 0
        for unit in unitCounts {
            let known =
                config.unit == .byte
                ? tokenizer.id(forByte: unit.utf8[0]) != nil
                : tokenizer.id(for: String(decoding: unit.utf8, as: UTF8.self)) != nil
            if known { covered += unit.count }
        }
        return Double(covered) / Double(units)
    }

    /// Statistics of a corpus file, streaming.
    /// - Throws: `TokenizerError.unreadableFile`, `.invalidUTF8`, `.invalidConfiguration`.
    public init(corpusFile url: URL, config: TokenizerConfig = TokenizerConfig()) throws {
        try config.validate()
        self.init(counts: try UnitCounter.count(file: url, config: config), config: config)
    }

    /// Statistics of a corpus in memory.
    public init(corpus: String, config: TokenizerConfig = TokenizerConfig()) throws {
        try config.validate()
        var corpus = corpus
        let counts = try corpus.withUTF8 { try UnitCounter.count(utf8: $0, config: config) }
        self.init(counts: counts, config: config)
    }

    let counts: UnitCounts

    init(counts: UnitCounts, config: TokenizerConfig) {
        self.counts = counts
        self.config = config
        let unit = config.unit
        bytes = counts.inputBytes
        var normalizedBytes = 0
        var scalars = 0
        var units = 0
        for (key, count) in counts.units {
            normalizedBytes += key.count * count
            units += count
            if unit != .byte {
                scalars += key.reduce(0) { $0 + ($1 & 0xC0 != 0x80 ? 1 : 0) } * count
            } else if key[0] & 0xC0 != 0x80 {
                scalars += count
            }
        }
        self.normalizedBytes = normalizedBytes
        self.scalars = scalars
        self.units = units
        unitCounts = counts.units.map { UnitCount(utf8: $0.key, count: $0.value) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}
