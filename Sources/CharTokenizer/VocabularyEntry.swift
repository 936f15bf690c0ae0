/// One token of a vocabulary: a unit of text, a raw byte, or the unknown token.
///
/// Units are identified by their UTF-8 bytes, never by `String` equality: Swift compares strings
/// by canonical equivalence, so "é" (U+00E9) and "e\u{301}" would otherwise collide.
public struct VocabularyEntry: Sendable, Hashable {
    /// What a token stands for.
    public enum Kind: Sendable, Hashable {
        /// `<unk>`: any unit the vocabulary lacks (fallback `.unknown`); decodes as U+FFFD.
        case unknown
        /// `<0xNN>`: one raw byte of UTF-8 (fallback `.bytes`, or unit `.byte`).
        case byte(UInt8)
        /// A unit of normalized text: a grapheme cluster or a scalar.
        case unit
    }

    /// What the token stands for.
    public let kind: Kind
    /// The bytes the token decodes to: the unit's UTF-8, the single byte, or none for `<unk>`.
    public let utf8: [UInt8]
    /// How often the token occurs when the corpus the vocabulary was built from is encoded.
    public let count: Int

    /// A unit token.
    public init(unit utf8: [UInt8], count: Int = 0) {
        self.kind = .unit
        self.utf8 = utf8
        self.count = count
    }

    /// A byte token `<0xNN>`.
    public init(byte: UInt8, count: Int = 0) {
        self.kind = .byte(byte)
        self.utf8 = [byte]
        self.count = count
    }

    /// The unknown token `<unk>`.
    public init(unknownCount count: Int) {
        self.kind = .unknown
        self.utf8 = []
        self.count = count
    }

    /// The text of a unit; `<0xNN>` for a byte token and `<unk>` for the unknown token.
    public var text: String {
        switch kind {
        case .unit: return String(decoding: utf8, as: UTF8.self)
        case .byte(let byte): return Self.byteName(byte)
        case .unknown: return Self.unknownName
        }
    }

    /// Whether this is a reserved token (`<unk>` or a byte token) rather than a unit.
    public var isSpecial: Bool {
        if case .unit = kind { return false }
        return true
    }

    func withCount(_ count: Int) -> VocabularyEntry {
        switch kind {
        case .unit: return VocabularyEntry(unit: utf8, count: count)
        case .byte(let byte): return VocabularyEntry(byte: byte, count: count)
        case .unknown: return VocabularyEntry(unknownCount: count)
        }
    }

    static let unknownName = "<unk>"

    static func byteName(_ byte: UInt8) -> String {
        "<0x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2) + ">"
    }
}
