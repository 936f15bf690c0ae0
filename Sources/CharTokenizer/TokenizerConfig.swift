/// A Unicode normalization form, applied through utf8proc.
public enum NormalizationForm: String, Codable, Sendable, CaseIterable {
    /// No canonical or compatibility mapping (case folding and mark stripping still apply).
    case none
    /// Canonical decomposition followed by canonical composition (the default).
    case nfc
    /// Canonical decomposition.
    case nfd
    /// Compatibility decomposition followed by canonical composition.
    case nfkc
    /// Compatibility decomposition.
    case nfkd
}

/// How text is normalized before it is cut into units.
///
/// The steps run in this order: newline normalization (CRLF and lone CR become LF), then the
/// Unicode normalization form together with case folding and mark stripping (one utf8proc pass).
///
/// ```swift
/// let lowercase = Normalization(form: .nfkc, caseFold: true)
/// lowercase.apply(to: "Ｃafé\r\n")   // "café\n": fullwidth Ｃ → C → c, CRLF → LF
/// ```
public struct Normalization: Codable, Sendable, Hashable {
    /// The Unicode normalization form (default NFC).
    public var form: NormalizationForm
    /// Apply Unicode case folding ("Straße" → "strasse").
    public var caseFold: Bool
    /// Remove combining marks (general categories Mn, Mc, Me). With a composing or decomposing
    /// form, letters are decomposed first, so "é" becomes "e"; with `.none`, only marks that are
    /// separate code points are removed.
    public var stripMarks: Bool
    /// Turn CRLF and lone CR into LF (default true).
    public var normalizeNewlines: Bool

    /// - Parameters:
    ///   - form: the Unicode normalization form (default NFC).
    ///   - caseFold: apply Unicode case folding.
    ///   - stripMarks: remove combining marks.
    ///   - normalizeNewlines: turn CRLF and lone CR into LF.
    public init(
        form: NormalizationForm = .nfc, caseFold: Bool = false, stripMarks: Bool = false,
        normalizeNewlines: Bool = true
    ) {
        self.form = form
        self.caseFold = caseFold
        self.stripMarks = stripMarks
        self.normalizeNewlines = normalizeNewlines
    }

    enum CodingKeys: String, CodingKey {
        case form
        case caseFold = "case_fold"
        case stripMarks = "strip_marks"
        case normalizeNewlines = "normalize_newlines"
    }
}

/// The unit a token stands for.
public enum TokenUnit: String, Codable, Sendable, CaseIterable {
    /// An extended grapheme cluster (UAX #29, through utf8proc): what a reader sees as one character.
    case grapheme
    /// A Unicode scalar (code point).
    case scalar
    /// A byte of the normalized UTF-8 text.
    case byte
}

/// What happens to a unit the vocabulary lacks.
public enum Fallback: String, Codable, Sendable, CaseIterable {
    /// Grapheme → its scalars → the UTF-8 bytes of each missing scalar. The 256 byte tokens
    /// `<0x00>`…`<0xFF>` are reserved at ids 0…255, so every input encodes losslessly.
    case bytes
    /// Grapheme → its scalars. A scalar missing from the vocabulary is an error
    /// (`TokenizerError.unknownCharacters`) that names it. Char-rnn behaviour.
    case scalars
    /// No fallback: a missing unit becomes the `<unk>` token (id 0), which decodes as U+FFFD.
    case unknown
}

/// What happens to bytes that are not valid UTF-8.
public enum InvalidUTF8Policy: String, Codable, Sendable, CaseIterable {
    /// Stop with `TokenizerError.invalidUTF8`, naming the byte offset.
    case error
    /// Replace each maximal invalid subsequence with U+FFFD (as Swift's `String(decoding:as:)`).
    case replace
}

/// Everything that decides how text becomes tokens; stored in `tokenizer.json`.
public struct TokenizerConfig: Codable, Sendable, Hashable {
    /// Normalization applied before segmentation.
    public var normalization: Normalization
    /// The unit of a token.
    public var unit: TokenUnit
    /// What happens to a unit the vocabulary lacks.
    public var fallback: Fallback
    /// Units seen fewer times than this in the corpus are left out of the vocabulary.
    public var minCount: Int
    /// At most this many corpus units (the most frequent; ties broken by UTF-8 bytes) are kept.
    /// Reserved tokens (`<unk>`, byte tokens) and, for graphemes with fallback `.scalars` or
    /// `.bytes`, the scalars every corpus grapheme needs, come on top. `nil`: no limit.
    public var maxSize: Int?
    /// What happens to invalid UTF-8 in a corpus or in text to encode.
    public var invalidUTF8: InvalidUTF8Policy

    /// - Parameters:
    ///   - normalization: normalization applied before segmentation (default NFC, newlines to LF).
    ///   - unit: the unit of a token (default grapheme).
    ///   - fallback: what happens to missing units (default `.scalars`).
    ///   - minCount: the minimum corpus count of a unit (default 1).
    ///   - maxSize: the maximum number of corpus units kept (default: no limit).
    ///   - invalidUTF8: error (default) or replace with U+FFFD.
    public init(
        normalization: Normalization = Normalization(), unit: TokenUnit = .grapheme,
        fallback: Fallback = .scalars, minCount: Int = 1, maxSize: Int? = nil,
        invalidUTF8: InvalidUTF8Policy = .error
    ) {
        self.normalization = normalization
        self.unit = unit
        self.fallback = fallback
        self.minCount = minCount
        self.maxSize = maxSize
        self.invalidUTF8 = invalidUTF8
    }

    /// Checks the limits.
    /// - Throws: `TokenizerError.invalidConfiguration` when `minCount` < 1 or `maxSize` < 1.
    public func validate() throws {
        if minCount < 1 {
            throw TokenizerError.invalidConfiguration("minCount must be at least 1 (got \(minCount))")
        }
        if let maxSize, maxSize < 1 {
            throw TokenizerError.invalidConfiguration("maxSize must be at least 1 (got \(maxSize))")
        }
    }

    enum CodingKeys: String, CodingKey {
        case normalization, unit, fallback
        case minCount = "min_count"
        case maxSize = "max_size"
        case invalidUTF8 = "invalid_utf8"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        normalization = try container.decode(Normalization.self, forKey: .normalization)
        unit = try container.decode(TokenUnit.self, forKey: .unit)
        fallback = try container.decode(Fallback.self, forKey: .fallback)
        minCount = try container.decode(Int.self, forKey: .minCount)
        maxSize = try container.decodeIfPresent(Int.self, forKey: .maxSize)
        invalidUTF8 = try container.decode(InvalidUTF8Policy.self, forKey: .invalidUTF8)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(normalization, forKey: .normalization)
        try container.encode(unit, forKey: .unit)
        try container.encode(fallback, forKey: .fallback)
        try container.encode(minCount, forKey: .minCount)
        try container.encode(maxSize, forKey: .maxSize)
        try container.encode(invalidUTF8, forKey: .invalidUTF8)
    }
}
