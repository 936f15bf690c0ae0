import CUTF8Proc
import Foundation

/// Per-scalar facts for one `Normalization`, derived from utf8proc, that let the encoder skip
/// utf8proc for most text and cut streams at safe places.
///
/// For a scalar `c`, let `D(c)` be utf8proc's per-character mapping (decomposition, case folding,
/// mark stripping) and `N(c)` the normalization of `c` on its own.
/// - `boundaryBefore`: `D(c)` starts with a starter (combining class 0) that cannot compose with
///   a preceding character. Canonical ordering never moves anything across such a starter and
///   composition never reaches back over it, so normalizing the text before `c` and the text from
///   `c` on separately gives exactly what normalizing the whole gives.
/// - `single`: `N(c)` is one scalar (`identity`: `c` itself).
/// - `simple`: `N(c)` is one scalar whose grapheme-break class is Other, Control, LF, LV, LVT or
///   Extended_Pictographic: there is a grapheme break between any two such scalars.
///
/// So a scalar with all of `boundaryBefore`, `single` and `simple`, followed by another one, is
/// a complete grapheme `N(c)`; that is the encoder's fast path.
final class NormalizationTables: Sendable {
    enum Kind {
        static let boundaryBefore: UInt8 = 1
        static let single: UInt8 = 2
        static let identity: UInt8 = 4
        static let simple: UInt8 = 8
        /// A scalar no normalization touches (most of Unicode).
        static let inert: UInt8 = 15
        /// Fast path for grapheme units, and the test for a safe place to cut a stream.
        static let fastGrapheme: UInt8 = boundaryBefore | single | simple
        /// Fast path for scalar and byte units.
        static let fastScalar: UInt8 = boundaryBefore | single
    }

    let normalization: Normalization
    /// `Kind` bits of every scalar.
    let kinds: PagedTable<UInt8>
    /// `N(c)` for the scalars that are `single` but not `identity`.
    let mapped: [UInt32: UInt32]

    private init(_ normalization: Normalization) {
        var kinds = PagedTable<UInt8>(defaultValue: Kind.inert)
        var mapped: [UInt32: UInt32] = [:]
        let scan = UnicodeScan.shared
        var normalizer = SegmentNormalizer(normalization)
        var decomposition: [Int32] = []
        var normalized: [UInt32] = []
        let options = normalization.decompositionOptions
        for scalar in scan.interesting {
            UnicodeData.decompose(scalar, options: options, into: &decomposition)
            var kind: UInt8 = 0
            if normalization.form == .none {
                kind |= Kind.boundaryBefore
            } else if let first = decomposition.first.map({ UInt32(bitPattern: $0) }),
                UnicodeData.combiningClass(first) == 0,
                !(normalization.composes && scan.composesWithPrevious(first))
            {
                kind |= Kind.boundaryBefore
            }
            normalized.removeAll(keepingCapacity: true)
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 1) { one in
                one[0] = scalar
                normalizer.normalize(UnsafeBufferPointer(one), into: &normalized)
            }
            if normalized.count == 1 {
                kind |= Kind.single
                if normalized[0] == scalar {
                    kind |= Kind.identity
                } else {
                    mapped[scalar] = normalized[0]
                }
                if UnicodeData.isSimpleGraphemeClass(normalized[0]) {
                    kind |= Kind.simple
                }
            }
            kinds[scalar] = kind
        }
        self.normalization = normalization
        self.kinds = kinds
        self.mapped = mapped
    }

    /// `N(c)` when it is a single scalar.
    func singleNormalization(of scalar: UInt32) -> UInt32? {
        let kind = kinds[scalar]
        if kind & Kind.single == 0 { return nil }
        return kind & Kind.identity != 0 ? scalar : mapped[scalar]
    }

    /// The tables for `normalization`, computed once per process.
    static func tables(for normalization: Normalization) -> NormalizationTables {
        cache.tables(for: normalization)
    }

    private static let cache = Cache()

    private final class Cache: @unchecked Sendable {
        private let lock = NSLock()
        private var tables: [Normalization: NormalizationTables] = [:]

        func tables(for normalization: Normalization) -> NormalizationTables {
            lock.lock()
            defer { lock.unlock() }
            if let existing = tables[normalization] { return existing }
            let created = NormalizationTables(normalization)
            tables[normalization] = created
            return created
        }
    }
}

/// One pass over all of Unicode, shared by every `NormalizationTables`: the scalars some
/// normalization or the grapheme rules treat specially, and the starters that can compose with
/// a preceding character.
struct UnicodeScan: Sendable {
    /// Scalars that are not inert: they decompose, case-fold, are marks, have a non-zero
    /// combining class, can compose with a preceding character, or join graphemes.
    let interesting: [UInt32]
    /// Every scalar that is the second character of a canonical composition pair, plus the
    /// Hangul vowel and trailing jamo (composed algorithmically). Over-approximating is safe:
    /// it only sends more text down the exact (slow) path.
    private let seconds: Set<UInt32>

    static let shared = UnicodeScan()

    /// Hangul syllables U+AC00…U+D7A3 decompose algorithmically.
    static let hangulSyllables: ClosedRange<UInt32> = 0xAC00...0xD7A3

    /// U+11A7 HANGUL JUNGSEONG O-YAE: utf8proc 2.8 composes an LV syllable followed by it into
    /// the LV syllable alone (the trailing-jamo range check includes T-base 0x11A7), silently
    /// dropping it. Unicode says it never composes, so it is always treated as a boundary,
    /// which keeps it out of any composition utf8proc sees.
    static let hangulFillerVowel: UInt32 = 0x11A7

    /// Ranges holding no assigned character but private-use ones in Unicode 15 (planes 4–13
    /// and the supplementary private-use planes): every scalar there is inert, so the start-up
    /// scan skips them. `ConformanceTests` checks this against utf8proc's data.
    static let inertRanges: [ClosedRange<UInt32>] = [0x3_2400...0xD_FFFF, 0xF_0000...0x10_FFFF]

    /// Whether utf8proc treats `value` as inert (the per-scalar test of the scan).
    static func isInert(_ value: UInt32) -> Bool {
        let property = UnicodeData.property(value)
        let decomposes = property.decomp_seqindex != UInt16.max || hangulSyllables.contains(value)
        return property.combining_class == 0 && !decomposes
            && property.casefold_seqindex == UInt16.max && !UnicodeData.isMark(value)
            && UnicodeData.simpleBoundClasses.contains(Int(property.boundclass))
    }

    func composesWithPrevious(_ scalar: UInt32) -> Bool {
        scalar != Self.hangulFillerVowel && seconds.contains(scalar)
    }

    private init() {
        var interesting: [UInt32] = []
        var seconds: Set<UInt32> = []
        var decomposition: [Int32] = []
        let canonical = utf8proc_option_t(rawValue: UTF8PROC_DECOMPOSE.rawValue)
        for value in UInt32(0)..<0x110000 {
            if value >= 0xD800 && value < 0xE000 { continue }
            if Self.inertRanges.contains(where: { $0.contains(value) }) { continue }
            let property = UnicodeData.property(value)
            let isSyllable = Self.hangulSyllables.contains(value)
            let decomposes = property.decomp_seqindex != UInt16.max || isSyllable
            if decomposes && (property.decomp_type == 0 || isSyllable) {
                UnicodeData.decompose(value, options: canonical, into: &decomposition)
                if decomposition.count >= 2, let last = decomposition.last {
                    seconds.insert(UInt32(bitPattern: last))
                }
            }
            if !Self.isInert(value) { interesting.append(value) }
        }
        for vowelOrTrailing in UInt32(0x1160)...0x11FF {
            seconds.insert(vowelOrTrailing)
        }
        let interestingSet = Set(interesting)
        for second in seconds where !interestingSet.contains(second) {
            interesting.append(second)
        }
        interesting.sort()
        self.interesting = interesting
        self.seconds = seconds
    }
}
