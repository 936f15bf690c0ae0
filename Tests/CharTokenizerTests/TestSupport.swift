import Foundation
import Testing
@testable import CharTokenizer

/// SplitMix64: a tiny, fast, seedable generator, so every property test is reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random text built from pieces chosen to break tokenizers: combining-mark stacks in every
/// order, ZWJ emoji, flags, Hangul jamo and syllables, RTL scripts with marks, Indic clusters,
/// compatibility characters, case-folding specials, line-ending variants, NUL, U+FFFD,
/// noncharacters, unassigned and astral code points, and the utf8proc U+11A7 case.
enum TextGenerator {
    static let pieces: [String] = [
        // ASCII and line endings
        "a", "b", "Z", "e", "E", " ", "  ", "\t", "\n", "\r", "\r\n", "\n\r", "\r\r\n", "\0", "\u{7F}", "0", "9",
        "Hello, world! ", "The quick brown fox. ", "x\r", "\r\u{301}",
        // Latin with diacritics, precomposed and decomposed, stacks in both orders
        "é", "e\u{301}", "ü", "u\u{308}", "ǖ", "u\u{308}\u{304}", "Å", "A\u{30A}", "\u{212B}", "ñ", "n\u{303}",
        "a\u{323}\u{302}", "a\u{302}\u{323}", "ệ", "\u{1E0A}\u{323}", "D\u{307}\u{323}", "D\u{323}\u{307}",
        "\u{1E9B}\u{323}", "q\u{307}\u{323}", "\u{301}", "\u{301}\u{301}\u{301}", "\u{345}", "a\u{345}\u{301}",
        "\u{315}\u{300}\u{5AE}\u{300}b", "a\u{5AE}\u{300}\u{315}\u{301}", "\u{0F73}", "\u{0F71}\u{0F72}\u{0F74}",
        "\u{0F75}\u{0F71}", "e\u{0327}\u{0306}", "\u{0958}", "\u{2126}", "\u{0344}", "\u{034F}", "a\u{034F}\u{301}",
        // case folding and compatibility
        "Straße", "ß", "ẞ", "ΣΑΣ", "ς", "İ", "ı", "ǅ", "ﬁ", "ﬀ", "Ａ", "ｶ", "ﾞ", "①", "㎞", "½", "\u{FDFA}", "™", "ǰ",
        "\u{1E9E}", "Ω", "K", "\u{00B5}", "ſ", "\u{0149}", "\u{1F88}", "ᾳ\u{301}",
        // Greek, Cyrillic
        "ά", "α\u{301}", "ΐ", "\u{0385}", "Ё", "Е\u{308}", "й", "и\u{306}",
        // Hangul: syllables, conjoining jamo, the U+11A7 case
        "한", "국", "\u{1100}\u{1161}", "\u{1100}\u{1161}\u{11A8}", "\u{AC00}\u{11A8}", "\u{AC00}\u{11A7}",
        "\u{1100}\u{1161}\u{11A7}", "\u{11A7}", "\u{1100}", "\u{1161}", "\u{11A8}", "\u{AC01}\u{11A8}",
        "\u{1100}\u{1100}\u{1161}", "\u{3131}", "\u{FFA1}", "\u{1160}", "\u{115F}\u{1160}",
        // emoji: ZWJ sequences, modifiers, flags, keycaps, tags
        "😀", "👨‍👩‍👧‍👦", "👩🏽‍💻", "👍🏽", "🏳️‍🌈", "🇫🇷", "🇯🇵", "🇺", "🇺🇸🇬", "1️⃣", "#\u{20E3}", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "\u{200D}",
        "\u{200D}😀", "😀\u{200D}", "❤️", "\u{FE0F}", "©\u{FE0F}", "🧑‍🤝‍🧑",
        // RTL and Indic
        "مرحبا", "بِسْمِ", "\u{064E}\u{0651}", "\u{0651}\u{064E}", "\u{0600}1", "\u{0600}", "שָׁלוֹם", "\u{05B0}\u{05BC}",
        "\u{200F}", "\u{202E}abc\u{202C}", "नमस्ते", "क्षि", "\u{093C}", "\u{0903}", "ক্ষ", "தமிழ்", "เก้า", "ำ",
        "\u{0E33}", "\u{0B47}\u{0B3E}", "\u{0B4B}", "\u{0DD9}\u{0DCF}\u{0DCA}", "\u{1100}\u{0301}\u{1161}",
        // CJK, astral, specials
        "日本語", "中文", "\u{20000}", "\u{1D11E}", "\u{1D15E}", "\u{FFFD}", "\u{FFFE}", "\u{FFFF}", "\u{1FFFE}",
        "\u{10FFFF}", "\u{E000}", "\u{F0000}", "\u{0378}", "\u{E0001}", "\u{FEFF}", "\u{200B}", "\u{200C}",
        "\u{2028}", "\u{2029}", "\u{0085}", "\u{00AD}", "\u{1D160}",
    ]

    /// A random code point anywhere in Unicode (no surrogates).
    static func randomScalar(using rng: inout SplitMix64) -> Unicode.Scalar {
        while true {
            let ranges: [ClosedRange<UInt32>] = [
                0...0x7F, 0x80...0x7FF, 0x800...0xFFFF, 0x300...0x36F,
                0x1100...0x11FF, 0xAC00...0xD7A3, 0x1F000...0x1FAFF,
                0x10000...0x10FFFF, 0x0900...0x0DFF,
            ]
            let range = ranges[Int(rng.next() % UInt64(ranges.count))]
            let value = UInt32.random(in: range, using: &rng)
            if let scalar = Unicode.Scalar(value) { return scalar }
        }
    }

    /// A random string of up to `maxPieces` pieces.
    static func string(maxPieces: Int, using rng: inout SplitMix64) -> String {
        let count = Int(rng.next() % UInt64(maxPieces + 1))
        var text = ""
        for _ in 0..<count {
            if rng.next() % 4 == 0 {
                text.unicodeScalars.append(randomScalar(using: &rng))
            } else {
                text += pieces[Int(rng.next() % UInt64(pieces.count))]
            }
        }
        return text
    }

    /// Random bytes that are mostly UTF-8 with invalid sequences mixed in.
    static func bytes(maxPieces: Int, using rng: inout SplitMix64) -> [UInt8] {
        var bytes: [UInt8] = []
        let invalid: [[UInt8]] = [
            [0xFF], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0x80], [0xBF, 0xBF], [0xC3], [0xF5], [0xE1, 0x41],
        ]
        for _ in 0..<Int(rng.next() % UInt64(maxPieces + 1)) {
            if rng.next() % 5 == 0 {
                bytes += invalid[Int(rng.next() % UInt64(invalid.count))]
            } else {
                bytes += Array(pieces[Int(rng.next() % UInt64(pieces.count))].utf8)
            }
        }
        return bytes
    }
}

/// Every normalization option combination.
let allNormalizations: [Normalization] = NormalizationForm.allCases.flatMap { form in
    [false, true].flatMap { caseFold in
        [false, true].flatMap { stripMarks in
            [false, true].map { newlines in
                Normalization(form: form, caseFold: caseFold, stripMarks: stripMarks, normalizeNewlines: newlines)
            }
        }
    }
}

/// A temporary directory removed when the value is deinitialized.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("charlm-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    func file(_ name: String, bytes: [UInt8]) throws -> URL {
        let file = url.appendingPathComponent(name)
        try Data(bytes).write(to: file)
        return file
    }

    func file(_ name: String, text: String) throws -> URL {
        try file(name, bytes: Array(text.utf8))
    }
}

/// Hex code points of a string, for readable failure messages.
func codePoints(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self).unicodeScalars
        .map { String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")
}

extension Tokenizer {
    /// The bytes of each id's token.
    func tokenBytes(_ ids: [Int32]) -> [[UInt8]] {
        ids.map { id in Array(bytes(of: id) ?? []) }
    }
}

/// Records a test failure with a message built at run time.
func recordFailure(_ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
    Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
}
