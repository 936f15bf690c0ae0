import Foundation

extension Tokenizer {
    // MARK: - Building a vocabulary

    /// Builds a tokenizer whose vocabulary holds the units of `corpus`.
    ///
    /// The vocabulary is the reserved tokens (`<unk>` for fallback `.unknown`, the 256 byte
    /// tokens for `.bytes`), then the kept units sorted by their UTF-8 bytes. Units seen fewer
    /// than `minCount` times are dropped; of the rest, `maxSize` keeps the most frequent (ties
    /// broken by bytes).
    ///
    /// The limits hold for every unit, characters of one scalar included. What they leave out is
    /// encoded by the fallback: with `.unknown` as `<unk>`; with `.bytes` through its scalars,
    /// then their bytes, losslessly; with `.scalars`, which cannot spell a left-out character,
    /// the tokenizer takes fallback `.bytes` instead (its config says so), so that the corpus
    /// still encodes losslessly. When nothing is left out, a grapheme vocabulary with fallback
    /// `.scalars` or `.bytes` also keeps every scalar of the corpus, so that new combinations of
    /// known characters (a letter and a combining mark, say) encode through their scalars.
    /// Counts are how often each token occurs when the corpus is encoded.
    /// - Throws: `TokenizerError.emptyCorpus`, `.invalidConfiguration`.
    public static func build(corpus: String, config: TokenizerConfig = TokenizerConfig()) throws -> Tokenizer {
        try config.validate()
        var corpus = corpus
        let counts = try corpus.withUTF8 { try UnitCounter.count(utf8: $0, config: config) }
        return try build(counts: counts, config: config, source: nil)
    }

    /// Builds a tokenizer from UTF-8 bytes (see `build(corpus:config:)`).
    /// - Throws: also `TokenizerError.invalidUTF8` unless `config.invalidUTF8` is `.replace`.
    public static func build(utf8 corpus: some Collection<UInt8>, config: TokenizerConfig = TokenizerConfig()) throws
        -> Tokenizer
    {
        try config.validate()
        let counts =
            try corpus.withContiguousStorageIfAvailable { try UnitCounter.count(utf8: $0, config: config) }
            ?? Array(corpus).withUnsafeBufferPointer { try UnitCounter.count(utf8: $0, config: config) }
        return try build(counts: counts, config: config, source: nil)
    }

    /// Builds a tokenizer from a corpus file, streaming (see `build(corpus:config:)`): the file
    /// is read in chunks and never held as a `String`.
    /// - Throws: also `TokenizerError.unreadableFile` and `.invalidUTF8` with the byte offset.
    public static func build(corpusFile url: URL, config: TokenizerConfig = TokenizerConfig()) throws -> Tokenizer {
        try config.validate()
        let counts = try UnitCounter.count(file: url, config: config)
        return try build(counts: counts, config: config, source: url.path)
    }

    /// Builds a tokenizer from statistics already computed (one pass over the corpus for both).
    /// - Parameter config: `minCount`, `maxSize` and `fallback` may differ from the statistics'
    ///   configuration; normalization, unit and the invalid-UTF-8 policy must be the same.
    /// - Throws: `TokenizerError.emptyCorpus`, `.invalidConfiguration`.
    public static func build(from statistics: CorpusStatistics, config: TokenizerConfig) throws -> Tokenizer {
        try config.validate()
        guard config.normalization == statistics.config.normalization, config.unit == statistics.config.unit,
            config.invalidUTF8 == statistics.config.invalidUTF8
        else {
            throw TokenizerError.invalidConfiguration(
                "the statistics were counted with another normalization, unit or invalid-UTF-8 policy")
        }
        return try build(counts: statistics.counts, config: config, source: nil)
    }

    /// Builds a vocabulary for a new corpus that keeps every unit of `base`, for fine-tuning a
    /// model on new text: the base's units, whatever the new text's counts, then the new text's
    /// most frequent other units, within the base's limits. The options (normalization, unit,
    /// fallback, limits) are the base's.
    /// - Throws: as `build(corpusFile:config:)`.
    public static func build(corpusFile url: URL, extending base: Tokenizer) throws -> Tokenizer {
        let counts = try UnitCounter.count(file: url, config: base.config)
        let units = base.vocabulary.compactMap { entry -> [UInt8]? in
            switch entry.kind {
            case .unit: entry.utf8
            case .byte(let byte): base.config.unit == .byte && base.config.fallback != .bytes ? [byte] : nil
            case .unknown: nil
            }
        }
        return try build(counts: counts, config: base.config, source: url.path, keeping: Set(units))
    }

    static func build(
        counts: UnitCounts, config requested: TokenizerConfig, source: String?,
        keeping keep: Set<[UInt8]> = []
    ) throws -> Tokenizer {
        guard !counts.units.isEmpty else { throw TokenizerError.emptyCorpus(source: source) }
        var all = counts.units
        for unit in keep where all[unit] == nil { all[unit] = 0 }
        let candidates = all.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var eligible = candidates.filter { keep.contains($0.key) || $0.value >= requested.minCount }
        if let maxSize = requested.maxSize, eligible.count > max(maxSize, keep.count) {
            eligible.sort {
                let (a, b) = (keep.contains($0.key), keep.contains($1.key))
                if a != b { return a }
                return $0.value != $1.value ? $0.value > $1.value : $0.key.lexicographicallyPrecedes($1.key)
            }
            eligible.removeLast(eligible.count - max(maxSize, keep.count))
        }
        var config = requested
        var kept = Set(eligible.map(\.key))
        let limited = kept.count < candidates.count
        if limited && config.fallback == .scalars {
            config.fallback = .bytes
        }
        if !limited && config.unit == .grapheme && config.fallback != .unknown {
            for (unit, _) in candidates {
                for scalar in UTF8Decoding.scalars(of: unit) ?? [] {
                    kept.insert(UTF8Decoding.encode(CollectionOfOne(scalar)))
                }
            }
        }

        var entries = reservedEntries(for: config)
        let keptSorted = kept.sorted { $0.lexicographicallyPrecedes($1) }
        if config.unit == .byte {
            if config.fallback != .bytes {
                entries += keptSorted.map { VocabularyEntry(byte: $0[0]) }
            }
        } else {
            entries += keptSorted.map { VocabularyEntry(unit: $0) }
        }
        let uncounted = try Tokenizer(config: config, vocabulary: entries)

        // Count tokens as they occur in the encoded corpus.
        var tokenCounts = [Int](repeating: 0, count: entries.count)
        var sink = EncodingSink(lookup: uncounted.lookup, unit: config.unit, fallback: config.fallback)
        let out = IDBuffer(capacity: 64)
        for (unit, count) in candidates {
            out.removeAll()
            if config.unit == .byte {
                let id = uncounted.lookup.byteIDs[Int(unit[0])]
                out.append(id >= 0 ? id : uncounted.lookup.unknownID)
            } else {
                let scalars = UTF8Decoding.scalars(of: unit) ?? []
                if config.unit == .grapheme {
                    scalars.withUnsafeBufferPointer { sink.emit(unit: $0, into: out) }
                } else {
                    for scalar in scalars {
                        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 1) { one in
                            one[0] = scalar
                            sink.emit(unit: UnsafeBufferPointer(one), into: out)
                        }
                    }
                }
            }
            for id in out.elements where id >= 0 { tokenCounts[Int(id)] += count }
        }
        let counted = zip(entries, tokenCounts).map { $0.withCount($1) }
        return try Tokenizer(config: config, vocabulary: counted)
    }
}
