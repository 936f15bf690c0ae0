/// A character tokenizer: normalization, segmentation into units, and a vocabulary of units,
/// with lossless fallback for units the vocabulary lacks.
///
/// ```swift
/// let tokenizer = try Tokenizer.build(corpus: "hello wörld\n")
/// let ids = try tokenizer.encode("hello")          // [Int32]
/// tokenizer.decode(ids)                           // "hello"
/// try tokenizer.save(to: URL(fileURLWithPath: "tokenizer.json"))
/// ```
///
/// For every valid UTF-8 input `x` whose units all have tokens (always the case with fallback
/// `.bytes`): `decode(encode(x)) == normalize(x)`, byte for byte.
public struct Tokenizer: Sendable {
    /// How text becomes units.
    public let config: TokenizerConfig
    /// The tokens; a token's id is its index.
    public let vocabulary: [VocabularyEntry]
    let lookup: LookupTables

    /// Creates a tokenizer from an explicit vocabulary.
    /// - Parameters:
    ///   - config: normalization, unit and fallback.
    ///   - vocabulary: the tokens in id order. With fallback `.unknown`, id 0 must be `<unk>`;
    ///     with `.bytes`, ids 0…255 must be the byte tokens `<0x00>`…`<0xFF>`. Units must be
    ///     distinct (by bytes) and, for unit `.scalar`, one scalar each; unit `.byte` takes byte
    ///     tokens only.
    /// - Throws: `TokenizerError.invalidConfiguration` naming what is wrong.
    public init(config: TokenizerConfig, vocabulary: [VocabularyEntry]) throws {
        try config.validate()
        try Self.validate(vocabulary, config: config)
        self.config = config
        self.vocabulary = vocabulary
        self.lookup = LookupTables(config: config, entries: vocabulary)
    }

    /// Creates a tokenizer whose units are `units` in the given order, after the reserved tokens
    /// of `config.fallback`. For unit `.byte`, each unit must be a single ASCII character.
    /// - Throws: `TokenizerError.invalidConfiguration` for duplicate or invalid units.
    public init(units: [String], config: TokenizerConfig = TokenizerConfig()) throws {
        var entries = Self.reservedEntries(for: config)
        if config.unit == .byte {
            for unit in units {
                let bytes = Array(unit.utf8)
                guard bytes.count == 1 else {
                    throw TokenizerError.invalidConfiguration("byte units must be single bytes, got \"\(unit)\"")
                }
                if config.fallback != .bytes { entries.append(VocabularyEntry(byte: bytes[0])) }
            }
        } else {
            entries += units.map { VocabularyEntry(unit: Array($0.utf8)) }
        }
        try self.init(config: config, vocabulary: entries)
    }

    /// The reserved tokens that start every vocabulary with this configuration.
    static func reservedEntries(for config: TokenizerConfig) -> [VocabularyEntry] {
        switch config.fallback {
        case .unknown: return [VocabularyEntry(unknownCount: 0)]
        case .bytes: return (0...255).map { VocabularyEntry(byte: UInt8($0)) }
        case .scalars: return []
        }
    }

    /// Number of tokens (ids are `0..<vocabularySize`).
    public var vocabularySize: Int { vocabulary.count }

    /// The token with id `id`, nil if out of range.
    public func entry(for id: Int32) -> VocabularyEntry? {
        id >= 0 && Int(id) < vocabulary.count ? vocabulary[Int(id)] : nil
    }

    /// The text of token `id` (`<0xNN>` for byte tokens, `<unk>`), nil if out of range.
    public func unit(for id: Int32) -> String? {
        entry(for: id)?.text
    }

    /// How often token `id` occurs in the encoded corpus the vocabulary was built from.
    public func count(for id: Int32) -> Int? {
        entry(for: id)?.count
    }

    /// The id of the unit whose UTF-8 is exactly that of `unit` (no normalization applied).
    public func id(for unit: String) -> Int32? {
        let bytes = Array(unit.utf8)
        if config.unit == .byte {
            return bytes.count == 1 && lookup.byteIDs[Int(bytes[0])] >= 0 ? lookup.byteIDs[Int(bytes[0])] : nil
        }
        if let scalars = UTF8Decoding.scalars(of: bytes), scalars.count == 1 {
            let id = lookup.scalarIDs[scalars[0]]
            return id >= 0 ? id : nil
        }
        return lookup.clusterIDs[bytes]
    }

    /// The id of the byte token `<0xNN>`, if the vocabulary has it.
    public func id(forByte byte: UInt8) -> Int32? {
        let id = lookup.byteIDs[Int(byte)]
        return id >= 0 ? id : nil
    }

    /// The id of `<unk>`, if the vocabulary has it.
    public var unknownID: Int32? {
        lookup.unknownID >= 0 ? lookup.unknownID : nil
    }

    /// Normalizes `text` as this tokenizer does before segmenting it.
    public func normalize(_ text: String) -> String {
        config.normalization.apply(to: text)
    }

    /// The Unicode version of the character data (utf8proc's), e.g. "15.0.0".
    public static var unicodeVersion: String { UnicodeData.unicodeVersion }

    /// The version of the utf8proc library in use, e.g. "2.8.0".
    public static var utf8procVersion: String { UnicodeData.utf8procVersion }

    // MARK: - Decoding

    /// The text of `ids`: the concatenation of their bytes, with invalid UTF-8 (from byte tokens
    /// out of sequence) shown as U+FFFD. `<unk>` and ids out of range also decode as U+FFFD; use
    /// `decodeChecked(_:)` to reject out-of-range ids.
    public func decode(_ ids: some Sequence<Int32>) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if id >= 0 && Int(id) < vocabulary.count {
                bytes.append(
                    contentsOf: lookup.decodeBytes[lookup.decodeOffsets[Int(id)]..<lookup.decodeOffsets[Int(id) + 1]])
            } else {
                bytes.append(contentsOf: [0xEF, 0xBF, 0xBD])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Like `decode(_:)`, but rejects ids outside `0..<vocabularySize`.
    /// - Throws: `TokenizerError.invalidTokenID`.
    public func decodeChecked(_ ids: some Sequence<Int32>) throws -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0 && Int(id) < vocabulary.count else {
                throw TokenizerError.invalidTokenID(Int64(id), vocabularySize: vocabulary.count)
            }
            bytes.append(
                contentsOf: lookup.decodeBytes[lookup.decodeOffsets[Int(id)]..<lookup.decodeOffsets[Int(id) + 1]])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The raw bytes of token `id` (`<unk>` gives U+FFFD's), nil if out of range.
    func bytes(of id: Int32) -> ArraySlice<UInt8>? {
        guard id >= 0 && Int(id) < vocabulary.count else { return nil }
        return lookup.decodeBytes[lookup.decodeOffsets[Int(id)]..<lookup.decodeOffsets[Int(id) + 1]]
    }

    // MARK: - Validation

    private static func validate(_ entries: [VocabularyEntry], config: TokenizerConfig) throws {
        func fail(_ reason: String) -> TokenizerError {
            .invalidConfiguration("vocabulary: \(reason)")
        }
        guard !entries.isEmpty else { throw fail("it is empty") }
        guard entries.count <= Int(Int32.max) else { throw fail("it has more than 2^31-1 tokens") }
        var reserved = 0
        switch config.fallback {
        case .unknown:
            guard entries[0].kind == .unknown else { throw fail("fallback 'unknown' needs <unk> at id 0") }
            reserved = 1
        case .bytes:
            guard entries.count >= 256 else { throw fail("fallback 'bytes' needs the 256 byte tokens at ids 0...255") }
            for byte in 0...255 where entries[byte].kind != .byte(UInt8(byte)) {
                throw fail("fallback 'bytes' needs \(VocabularyEntry.byteName(UInt8(byte))) at id \(byte)")
            }
            reserved = 256
        case .scalars:
            break
        }
        var seenUnits = Set<[UInt8]>()
        var seenBytes = Set<UInt8>()
        for (id, entry) in entries.enumerated() where id >= reserved {
            switch entry.kind {
            case .unknown:
                throw fail("<unk> at id \(id): only fallback 'unknown' has it, at id 0")
            case .byte(let byte):
                guard config.unit == .byte else {
                    throw fail("byte token \(VocabularyEntry.byteName(byte)) at id \(id) outside the reserved ids")
                }
                guard seenBytes.insert(byte).inserted else {
                    throw fail("byte token \(VocabularyEntry.byteName(byte)) appears twice")
                }
            case .unit:
                guard config.unit != .byte else {
                    throw fail("unit '\(entry.text)' at id \(id): unit 'byte' takes byte tokens only")
                }
                guard let scalars = UTF8Decoding.scalars(of: entry.utf8), !scalars.isEmpty else {
                    throw fail("the unit at id \(id) is empty or not valid UTF-8")
                }
                if config.unit == .scalar && scalars.count != 1 {
                    throw fail("unit '\(entry.text)' at id \(id) is \(scalars.count) scalars; unit 'scalar' needs one")
                }
                guard seenUnits.insert(entry.utf8).inserted else {
                    throw fail("unit '\(entry.text)' (bytes \(entry.utf8)) appears twice")
                }
            }
        }
        if let id = entries.firstIndex(where: { $0.count < 0 }) {
            throw fail("negative count at id \(id)")
        }
        if config.unit == .byte && config.fallback == .bytes && entries.count != 256 {
            throw fail("unit 'byte' with fallback 'bytes' has exactly the 256 byte tokens")
        }
    }
}

extension Tokenizer: Equatable {
    public static func == (lhs: Tokenizer, rhs: Tokenizer) -> Bool {
        lhs.config == rhs.config && lhs.vocabulary == rhs.vocabulary
    }
}
