/// Everything encoding and decoding look up, derived once from a vocabulary.
final class LookupTables: Sendable {
    let normalizationTables: NormalizationTables
    /// Raw scalar → token id for scalars on the fast path whose normalization is a unit (or,
    /// for byte units, an ASCII byte) in the vocabulary; -1 otherwise.
    let fastIDs: PagedTable<Int32>
    /// `fastIDs` for ASCII, with CR at -1 when newlines are normalized.
    let asciiIDs: [Int32]
    /// Scalar → id of the single-scalar unit, -1 if none.
    let scalarIDs: PagedTable<Int32>
    /// UTF-8 of a multi-scalar unit → id.
    let clusterIDs: [[UInt8]: Int32]
    /// Byte → id of its byte token, -1 if none.
    let byteIDs: [Int32]
    /// Id of `<unk>`, -1 if none.
    let unknownID: Int32
    /// Bytes each id decodes to: `decodeBytes[decodeOffsets[id]..<decodeOffsets[id + 1]]`.
    let decodeBytes: [UInt8]
    let decodeOffsets: [Int]

    init(config: TokenizerConfig, entries: [VocabularyEntry]) {
        let tables = NormalizationTables.tables(for: config.normalization)
        normalizationTables = tables
        var scalarIDs = PagedTable<Int32>(defaultValue: -1)
        var clusterIDs: [[UInt8]: Int32] = [:]
        var byteIDs = [Int32](repeating: -1, count: 256)
        var unknownID: Int32 = -1
        var decodeBytes: [UInt8] = []
        var decodeOffsets: [Int] = [0]
        for (index, entry) in entries.enumerated() {
            let id = Int32(index)
            switch entry.kind {
            case .unknown:
                unknownID = id
                decodeBytes.append(contentsOf: [0xEF, 0xBF, 0xBD])
            case .byte(let byte):
                byteIDs[Int(byte)] = id
                decodeBytes.append(byte)
            case .unit:
                if let scalars = UTF8Decoding.scalars(of: entry.utf8), scalars.count == 1 {
                    scalarIDs[scalars[0]] = id
                } else {
                    clusterIDs[entry.utf8] = id
                }
                decodeBytes.append(contentsOf: entry.utf8)
            }
            decodeOffsets.append(decodeBytes.count)
        }

        // Fast ids: a scalar maps to the id of its normalization when that is a unit.
        let mask =
            config.unit == .grapheme
            ? NormalizationTables.Kind.fastGrapheme : NormalizationTables.Kind.fastScalar
        var fastIDs = PagedTable<Int32>(defaultValue: -1)
        func fastID(for normalized: UInt32) -> Int32 {
            if config.unit == .byte {
                return normalized < 0x80 ? byteIDs[Int(normalized)] : -1
            }
            return scalarIDs[normalized]
        }
        let identityMask = mask | NormalizationTables.Kind.identity
        let candidates: [UInt32] =
            config.unit == .byte
            ? Array(0..<0x80) : Self.scalars(of: entries)
        for scalar in candidates where tables.kinds[scalar] & identityMask == identityMask {
            fastIDs[scalar] = fastID(for: scalar)
        }
        for (scalar, normalized) in tables.mapped where tables.kinds[scalar] & mask == mask {
            let id = fastID(for: normalized)
            if id >= 0 { fastIDs[scalar] = id }
        }
        var asciiIDs = (0..<128).map { fastIDs[UInt32($0)] }
        if config.normalization.normalizeNewlines {
            asciiIDs[0x0D] = -1
        }

        self.fastIDs = fastIDs
        self.asciiIDs = asciiIDs
        self.scalarIDs = scalarIDs
        self.clusterIDs = clusterIDs
        self.byteIDs = byteIDs
        self.unknownID = unknownID
        self.decodeBytes = decodeBytes
        self.decodeOffsets = decodeOffsets
    }

    private static func scalars(of entries: [VocabularyEntry]) -> [UInt32] {
        entries.compactMap { entry in
            guard case .unit = entry.kind, let scalars = UTF8Decoding.scalars(of: entry.utf8),
                scalars.count == 1
            else { return nil }
            return scalars[0]
        }
    }
}
