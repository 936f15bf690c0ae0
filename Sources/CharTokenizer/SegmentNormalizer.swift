import CUTF8Proc

extension Normalization {
    /// The utf8proc options of the per-character mapping (decomposition, case folding, marks).
    var decompositionOptions: utf8proc_option_t {
        var raw = UTF8PROC_STABLE.rawValue
        switch form {
        case .none: raw = 0
        case .nfc: raw |= UTF8PROC_COMPOSE.rawValue
        case .nfd: raw |= UTF8PROC_DECOMPOSE.rawValue
        case .nfkc: raw |= UTF8PROC_COMPOSE.rawValue | UTF8PROC_COMPAT.rawValue
        case .nfkd: raw |= UTF8PROC_DECOMPOSE.rawValue | UTF8PROC_COMPAT.rawValue
        }
        if caseFold { raw |= UTF8PROC_CASEFOLD.rawValue }
        if stripMarks { raw |= UTF8PROC_STRIPMARK.rawValue }
        return utf8proc_option_t(rawValue: raw)
    }

    /// Whether the form reorders combining marks (every form but `.none`).
    var reorders: Bool { form != .none }

    /// Whether the form composes (NFC, NFKC).
    var composes: Bool { form == .nfc || form == .nfkc }

    /// Whether normalization can change anything at all (besides newlines).
    var isIdentity: Bool { form == .none && !caseFold && !stripMarks }
}

/// Normalizes one segment of scalars exactly as `utf8proc_map` would normalize it as part of a
/// longer string, provided the segment starts at a normalization boundary (see
/// `NormalizationTables`): per-character mapping with `utf8proc_decompose_char`, canonical
/// ordering (a stable sort of each run of non-starters by combining class, which is what
/// utf8proc's bubble sort computes, but in O(n log n) so that adversarial input cannot hang),
/// then composition with `utf8proc_normalize_utf32`.
struct SegmentNormalizer {
    let normalization: Normalization
    private let options: utf8proc_option_t
    private var buffer: [Int32] = []
    private var charBuffer: [Int32] = []

    init(_ normalization: Normalization) {
        self.normalization = normalization
        self.options = normalization.decompositionOptions
    }

    /// Appends the normalization of `segment` to `output`.
    mutating func normalize(_ segment: UnsafeBufferPointer<UInt32>, into output: inout [UInt32]) {
        buffer.removeAll(keepingCapacity: true)
        for scalar in segment {
            UnicodeData.decompose(scalar, options: options, into: &charBuffer)
            buffer.append(contentsOf: charBuffer)
        }
        if normalization.reorders {
            Self.canonicalOrder(&buffer)
        }
        var length = buffer.count
        if normalization.composes && length > 1 {
            let composeOptions = utf8proc_option_t(rawValue: UTF8PROC_COMPOSE.rawValue | UTF8PROC_STABLE.rawValue)
            length = buffer.withUnsafeMutableBufferPointer { pointer in
                utf8proc_normalize_utf32(pointer.baseAddress, pointer.count, composeOptions)
            }
            if length < 0 { length = buffer.count }
        }
        for index in 0..<length {
            output.append(UInt32(bitPattern: buffer[index]))
        }
    }

    /// Stable-sorts every maximal run of non-starters by canonical combining class.
    static func canonicalOrder(_ scalars: inout [Int32]) {
        var index = 0
        let count = scalars.count
        while index < count {
            if UnicodeData.combiningClass(UInt32(bitPattern: scalars[index])) == 0 {
                index += 1
                continue
            }
            var end = index + 1
            while end < count && UnicodeData.combiningClass(UInt32(bitPattern: scalars[end])) != 0 {
                end += 1
            }
            if end - index > 1 {
                sortRun(&scalars, index..<end)
            }
            index = end
        }
    }

    private static func sortRun(_ scalars: inout [Int32], _ range: Range<Int>) {
        let keyed = range.map { (ccc: UnicodeData.combiningClass(UInt32(bitPattern: scalars[$0])), position: $0) }
        if keyed.count <= 32 {
            var run = keyed
            for i in 1..<run.count {
                let item = run[i]
                var j = i
                while j > 0 && run[j - 1].ccc > item.ccc {
                    run[j] = run[j - 1]
                    j -= 1
                }
                run[j] = item
            }
            let values = run.map { scalars[$0.position] }
            scalars.replaceSubrange(range, with: values)
        } else {
            let sorted = keyed.sorted { ($0.ccc, $0.position) < ($1.ccc, $1.position) }
            let values = sorted.map { scalars[$0.position] }
            scalars.replaceSubrange(range, with: values)
        }
    }
}
