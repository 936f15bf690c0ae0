import Foundation
import Testing
@testable import CharTokenizer

/// Seeded property tests over random and adversarial text, for every normalization option
/// combination × unit × fallback: the fast pipeline equals the utf8proc reference, equals the
/// pure slow path, survives arbitrary chunking, and `decode(encode(x)) == normalize(x)`.
@Suite("Property tests")
struct PropertyTests {
    static func seed(_ normalization: Normalization, _ salt: UInt64 = 0) -> UInt64 {
        var seed: UInt64 = 0x5EED
        for byte
            in "\(normalization.form)\(normalization.caseFold)\(normalization.stripMarks)\(normalization.normalizeNewlines)"
            .utf8
        {
            seed = seed &* 31 &+ UInt64(byte)
        }
        return seed ^ salt
    }

    @Test("normalization: fast path equals utf8proc over the whole text", arguments: allNormalizations)
    func normalizationMatchesReference(normalization: Normalization) throws {
        var rng = SplitMix64(seed: Self.seed(normalization))
        for _ in 0..<40 {
            let text = TextGenerator.string(maxPieces: 40, using: &rng)
            let bytes = Array(text.utf8)
            let reference = try ReferencePipeline.normalizedScalars(
                bytes, config: TokenizerConfig(normalization: normalization))
            let fast = try normalization.apply(toUTF8: bytes)
            if fast != UTF8Decoding.encode(reference) {
                recordFailure(
                    "[\(codePoints(bytes))] → [\(codePoints(fast))], reference "
                        + "[\(codePoints(UTF8Decoding.encode(reference)))]"
                )
            }
            #expect(Array(normalization.apply(to: text).utf8) == fast)
        }
        for _ in 0..<40 {
            let bytes = TextGenerator.bytes(maxPieces: 30, using: &rng)
            let config = TokenizerConfig(normalization: normalization, invalidUTF8: .replace)
            let reference = UTF8Decoding.encode(try ReferencePipeline.normalizedScalars(bytes, config: config))
            #expect(try normalization.apply(toUTF8: bytes, invalidUTF8: .replace) == reference)
            let replaced = Array(String(decoding: bytes, as: UTF8.self).utf8)
            #expect(
                reference == (try normalization.apply(toUTF8: replaced)), "U+FFFD substitution differs from Swift's")
            var referenceError: TokenizerError?
            do { _ = try ReferencePipeline.decode(bytes, invalidUTF8: .error) } catch let error as TokenizerError {
                referenceError = error
            }
            if let referenceError {
                #expect(throws: referenceError) { try normalization.apply(toUTF8: bytes, invalidUTF8: .error) }
            } else {
                #expect(throws: Never.self) { try normalization.apply(toUTF8: bytes, invalidUTF8: .error) }
            }
        }
    }

    static let normalizationsAndUnits: [(Normalization, TokenUnit)] = allNormalizations.flatMap { normalization in
        TokenUnit.allCases.map { (normalization, $0) }
    }

    @Test(
        "segmentation: units equal the reference, and the fast path equals the slow path",
        arguments: normalizationsAndUnits)
    func unitsMatchReference(normalization: Normalization, unit: TokenUnit) throws {
        // A fixed salt per unit (hashValue changes from process to process), so a failure reproduces.
        let seed = Self.seed(normalization, UInt64(TokenUnit.allCases.firstIndex(of: unit)! + 1))
        print("units × \(normalization) × \(unit): seed 0x\(String(seed, radix: 16))")
        var rng = SplitMix64(seed: seed)
        let config = TokenizerConfig(normalization: normalization, unit: unit, fallback: .unknown)
        for _ in 0..<6 {
            let bytes = Array(TextGenerator.string(maxPieces: 60, using: &rng).utf8)
            let reference = try ReferencePipeline.units(bytes, config: config)
            guard !reference.isEmpty else {
                #expect(throws: TokenizerError.emptyCorpus(source: nil)) {
                    try Tokenizer.build(utf8: bytes, config: config)
                }
                continue
            }
            let tokenizer = try Tokenizer.build(utf8: bytes, config: config)
            let ids = try tokenizer.encode(utf8: bytes)
            #expect(!ids.contains(0), "a unit of the corpus itself became <unk>")
            if tokenizer.tokenBytes(ids) != reference {
                recordFailure(
                    "seed 0x\(String(seed, radix: 16)): [\(codePoints(bytes))]: "
                        + "\(tokenizer.tokenBytes(ids).map(codePoints)) != \(reference.map(codePoints))"
                )
            }
            #expect(
                try Self.slowPathIDs(bytes, tokenizer) == ids,
                "seed 0x\(String(seed, radix: 16)): fast and slow paths differ on [\(codePoints(bytes))]")
            let statistics = try CorpusStatistics(corpus: String(decoding: bytes, as: UTF8.self), config: config)
            #expect(statistics.units == reference.count)
            #expect(statistics.normalizedBytes == reference.reduce(0) { $0 + $1.count })
        }
    }

    /// Encodes with the fast path switched off: every scalar goes through utf8proc.
    static func slowPathIDs(_ bytes: [UInt8], _ tokenizer: Tokenizer) throws -> [Int32] {
        struct NoFastPath: FastLookup {
            func callAsFunction(_ scalar: UInt32) -> Int32 { -1 }
        }
        var segmenter = Segmenter(
            tables: tokenizer.lookup.normalizationTables, unit: tokenizer.config.unit,
            invalidUTF8: tokenizer.config.invalidUTF8, source: nil)
        var sink = EncodingSink(
            lookup: tokenizer.lookup, unit: tokenizer.config.unit, fallback: tokenizer.config.fallback)
        let out = IDBuffer()
        let ascii = [Int32](repeating: -1, count: 128)
        try bytes.withUnsafeBufferPointer { buffer in
            try ascii.withUnsafeBufferPointer { ascii in
                try segmenter.process(
                    buffer, baseOffset: 0, ascii: ascii.baseAddress!, fast: NoFastPath(), out: out, sink: &sink)
            }
        }
        return out.array
    }

    @Test("decode(encode(x)) == normalize(x) for every unit × fallback", arguments: allNormalizations)
    func roundTrip(normalization: Normalization) throws {
        var rng = SplitMix64(seed: Self.seed(normalization, 0xF00D))
        for unit in TokenUnit.allCases {
            for fallback in Fallback.allCases {
                for _ in 0..<3 {
                    let text = TextGenerator.string(maxPieces: 40, using: &rng)
                    let other = TextGenerator.string(maxPieces: 20, using: &rng) + "seed text"
                    let normalized = Array(normalization.apply(to: text).utf8)
                    // Small vocabularies force fallback; .scalars with non-grapheme units cannot drop units.
                    let limit: Int? = fallback == .scalars && unit != .grapheme ? nil : 1 + Int(rng.next() % 6)
                    let config = TokenizerConfig(
                        normalization: normalization, unit: unit, fallback: fallback, maxSize: limit)
                    switch fallback {
                    case .bytes:
                        let tokenizer = try Tokenizer.build(corpus: other, config: config)
                        let ids = try tokenizer.encode(text)
                        #expect(
                            Array(tokenizer.decode(ids).utf8) == normalized,
                            "\(config) [\(codePoints(Array(text.utf8)))]")
                        #expect(try Self.slowPathIDs(Array(text.utf8), tokenizer) == ids)
                    case .scalars:
                        let tokenizer = try Tokenizer.build(corpus: text + other, config: config)
                        let ids = try tokenizer.encode(text)
                        #expect(
                            Array(tokenizer.decode(ids).utf8) == normalized,
                            "\(config) [\(codePoints(Array(text.utf8)))]")
                        #expect(try Self.slowPathIDs(Array(text.utf8), tokenizer) == ids)
                    case .unknown:
                        let tokenizer = try Tokenizer.build(corpus: other, config: config)
                        let ids = try tokenizer.encode(text)
                        let units = try ReferencePipeline.units(Array(text.utf8), config: config)
                        let expected = units.map { unit -> [UInt8] in
                            tokenizer.id(forUnitBytes: unit, unitKind: config.unit) == nil ? [0xEF, 0xBF, 0xBD] : unit
                        }
                        let expectedText = String(decoding: Array(expected.joined()), as: UTF8.self)
                        #expect(Array(tokenizer.decode(ids).utf8) == Array(expectedText.utf8), "\(config)")
                        #expect(ids.count == units.count)
                    }
                }
            }
        }
    }

    @Test("a scalar missing with fallback .scalars is an error naming exactly the missing characters")
    func unknownScalarsAreNamed() throws {
        var rng = SplitMix64(seed: 77)
        for unit in [TokenUnit.grapheme, .scalar] {
            for _ in 0..<40 {
                let corpus = TextGenerator.string(maxPieces: 20, using: &rng) + "x"
                let text = TextGenerator.string(maxPieces: 20, using: &rng)
                let config = TokenizerConfig(unit: unit, fallback: .scalars)
                let tokenizer = try Tokenizer.build(corpus: corpus, config: config)
                let known = Set(tokenizer.normalize(corpus).unicodeScalars.map(\.value))
                var missing: [Unicode.Scalar] = []
                for scalar in tokenizer.normalize(text).unicodeScalars where !known.contains(scalar.value) {
                    if !missing.contains(scalar) { missing.append(scalar) }
                }
                if missing.isEmpty {
                    #expect(
                        Array(tokenizer.decode(try tokenizer.encode(text)).utf8)
                            == Array(tokenizer.normalize(text).utf8))
                } else {
                    #expect(throws: TokenizerError.unknownCharacters(missing)) { try tokenizer.encode(text) }
                }
            }
        }
    }

    @Test("streaming files in tiny chunks gives exactly the in-memory result", arguments: [1, 2, 3, 5, 16, 257])
    func chunkedEncodingMatches(chunkSize: Int) throws {
        var rng = SplitMix64(seed: UInt64(chunkSize) &* 0x9E37)
        let directory = try TemporaryDirectory()
        for round in 0..<10 {
            let normalization = allNormalizations[Int(rng.next() % UInt64(allNormalizations.count))]
            let unit = TokenUnit.allCases[round % 3]
            let config = TokenizerConfig(
                normalization: normalization, unit: unit, fallback: .bytes, maxSize: 8,
                invalidUTF8: .replace)
            var bytes: [UInt8] = []
            for _ in 0..<4 {
                bytes += TextGenerator.bytes(maxPieces: 30, using: &rng)
                bytes += Array("line\n".utf8)
            }
            let file = try directory.file("chunks-\(round).txt", bytes: bytes)
            let inMemory = try Tokenizer.build(utf8: bytes, config: config)
            let counts = try UnitCounter.count(file: file, config: config, chunkSize: chunkSize)
            let streamed = try Tokenizer.build(counts: counts, config: config, source: nil)
            #expect(streamed == inMemory, "vocabulary built in chunks of \(chunkSize) differs")
            let expected = try inMemory.encode(utf8: bytes)
            let encoded = try inMemory.encodeFile(file, chunkSize: chunkSize)
            #expect(encoded.ids == expected, "encoding in chunks of \(chunkSize) differs for \(config)")
            let reference = UTF8Decoding.encode(try ReferencePipeline.normalizedScalars(bytes, config: config))
            #expect(Array(inMemory.decode(encoded.ids).utf8) == reference)
        }
    }
}

extension Tokenizer {
    /// The id of a unit given as normalized bytes (a single byte for byte units).
    func id(forUnitBytes bytes: [UInt8], unitKind: TokenUnit) -> Int32? {
        if unitKind == .byte { return id(forByte: bytes[0]) }
        return id(for: String(decoding: bytes, as: UTF8.self))
    }
}
