import CUTF8Proc
@testable import CharTokenizer
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The plain, slow definition of what the tokenizer computes, used to prove the fast paths
/// right: decode UTF-8, normalize newlines, run `utf8proc_map` over the whole text, then cut
/// graphemes with `utf8proc_grapheme_break_stateful`. No tables, no chunking, no shortcuts.
enum ReferencePipeline {
    /// Scalars of `bytes`; invalid UTF-8 throws or becomes U+FFFD per maximal subpart.
    static func decode(_ bytes: [UInt8], invalidUTF8: InvalidUTF8Policy) throws -> [UInt32] {
        var scalars: [UInt32] = []
        try bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var index = 0
            while index < buffer.count {
                let step = UTF8Decoding.decode(base, at: index, end: buffer.count)
                if step.status == .scalar {
                    scalars.append(step.scalar)
                } else if invalidUTF8 == .replace {
                    scalars.append(0xFFFD)
                } else {
                    throw TokenizerError.invalidUTF8(offset: index, source: nil)
                }
                index += step.length
            }
        }
        return scalars
    }

    /// CRLF and lone CR → LF.
    static func normalizeNewlines(_ scalars: [UInt32]) -> [UInt32] {
        var result: [UInt32] = []
        var index = 0
        while index < scalars.count {
            if scalars[index] == 0x0D {
                result.append(0x0A)
                if index + 1 < scalars.count && scalars[index + 1] == 0x0A { index += 1 }
            } else {
                result.append(scalars[index])
            }
            index += 1
        }
        return result
    }

    /// Unicode normalization of the whole text with utf8proc. The only deviation from a single
    /// `utf8proc_map` call is the U+11A7 fix (see `UnicodeScan.hangulFillerVowel`): the text is
    /// mapped in pieces that start at each U+11A7. With form `.none` and mark stripping, which
    /// `utf8proc_map` refuses, the per-character mapping is applied directly.
    static func normalize(_ scalars: [UInt32], _ normalization: Normalization) -> [UInt32] {
        if normalization.isIdentity { return scalars }
        if normalization.form == .none && normalization.stripMarks {
            var result: [UInt32] = []
            var buffer: [Int32] = []
            for scalar in scalars {
                UnicodeData.decompose(scalar, options: normalization.decompositionOptions, into: &buffer)
                result += buffer.map { UInt32(bitPattern: $0) }
            }
            return result
        }
        var result: [UInt32] = []
        var piece: [UInt32] = []
        for scalar in scalars {
            if scalar == UnicodeScan.hangulFillerVowel && !piece.isEmpty {
                result += map(piece, normalization.decompositionOptions)
                piece.removeAll()
            }
            piece.append(scalar)
        }
        result += map(piece, normalization.decompositionOptions)
        return result
    }

    /// `utf8proc_map` on the UTF-8 of `scalars`.
    static func map(_ scalars: [UInt32], _ options: utf8proc_option_t) -> [UInt32] {
        let bytes = UTF8Decoding.encode(scalars)
        var output: UnsafeMutablePointer<UInt8>?
        let length = bytes.withUnsafeBufferPointer { buffer in
            utf8proc_map(buffer.baseAddress, buffer.count, &output, options)
        }
        defer { free(output) }
        guard length >= 0, let output else { return [] }
        return UTF8Decoding.scalars(of: Array(UnsafeBufferPointer(start: output, count: length))) ?? []
    }

    /// Extended grapheme clusters by utf8proc's stateful break rules.
    static func graphemes(_ scalars: [UInt32]) -> [[UInt32]] {
        var clusters: [[UInt32]] = []
        var state: Int32 = 0
        for (index, scalar) in scalars.enumerated() {
            if index > 0
                && !utf8proc_grapheme_break_stateful(
                    Int32(bitPattern: scalars[index - 1]),
                    Int32(bitPattern: scalar), &state)
            {
                clusters[clusters.count - 1].append(scalar)
            } else {
                clusters.append([scalar])
            }
        }
        return clusters
    }

    /// The normalized text of `bytes` under `config`.
    static func normalizedScalars(_ bytes: [UInt8], config: TokenizerConfig) throws -> [UInt32] {
        var scalars = try decode(bytes, invalidUTF8: config.invalidUTF8)
        if config.normalization.normalizeNewlines { scalars = normalizeNewlines(scalars) }
        return normalize(scalars, config.normalization)
    }

    /// The units of `bytes` under `config`, each as UTF-8 (one byte each for unit `.byte`).
    static func units(_ bytes: [UInt8], config: TokenizerConfig) throws -> [[UInt8]] {
        let scalars = try normalizedScalars(bytes, config: config)
        switch config.unit {
        case .grapheme: return graphemes(scalars).map { UTF8Decoding.encode($0) }
        case .scalar: return scalars.map { UTF8Decoding.encode(CollectionOfOne($0)) }
        case .byte: return UTF8Decoding.encode(scalars).map { [$0] }
        }
    }
}
