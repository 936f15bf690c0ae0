import CUTF8Proc

/// Thin, typed access to the utf8proc character database. The only file besides the
/// normalization and segmentation code that calls utf8proc directly.
enum UnicodeData {
    /// Grapheme-break classes (utf8proc `boundclass`) that never join a neighbour of the same
    /// set: between any two of them there is always a grapheme break, and utf8proc's break
    /// state after one of them is its own class (so it can be reset there).
    static let simpleBoundClasses: Set<Int> = [
        Int(UTF8PROC_BOUNDCLASS_OTHER.rawValue), Int(UTF8PROC_BOUNDCLASS_LF.rawValue),
        Int(UTF8PROC_BOUNDCLASS_CONTROL.rawValue), Int(UTF8PROC_BOUNDCLASS_LV.rawValue),
        Int(UTF8PROC_BOUNDCLASS_LVT.rawValue), Int(UTF8PROC_BOUNDCLASS_EXTENDED_PICTOGRAPHIC.rawValue),
    ]

    static var unicodeVersion: String { String(cString: utf8proc_unicode_version()) }
    static var utf8procVersion: String { String(cString: utf8proc_version()) }

    static func property(_ scalar: UInt32) -> utf8proc_property_t {
        utf8proc_get_property(Int32(bitPattern: scalar)).pointee
    }

    static func combiningClass(_ scalar: UInt32) -> Int {
        Int(property(scalar).combining_class)
    }

    static func boundClass(_ scalar: UInt32) -> Int {
        Int(property(scalar).boundclass)
    }

    static func isSimpleGraphemeClass(_ scalar: UInt32) -> Bool {
        simpleBoundClasses.contains(boundClass(scalar))
    }

    static func isMark(_ scalar: UInt32) -> Bool {
        let category = property(scalar).category
        return category == Int16(UTF8PROC_CATEGORY_MN.rawValue) || category == Int16(UTF8PROC_CATEGORY_MC.rawValue)
            || category == Int16(UTF8PROC_CATEGORY_ME.rawValue)
    }

    /// Letters, marks-free numbers, punctuation, symbols and the space: safe to show quoted.
    static func isVisible(_ scalar: UInt32) -> Bool {
        if scalar == 0x20 { return true }
        switch utf8proc_category(Int32(bitPattern: scalar)) {
        case UTF8PROC_CATEGORY_LU, UTF8PROC_CATEGORY_LL, UTF8PROC_CATEGORY_LT, UTF8PROC_CATEGORY_LM,
            UTF8PROC_CATEGORY_LO, UTF8PROC_CATEGORY_ND, UTF8PROC_CATEGORY_NL, UTF8PROC_CATEGORY_NO,
            UTF8PROC_CATEGORY_PC, UTF8PROC_CATEGORY_PD, UTF8PROC_CATEGORY_PS, UTF8PROC_CATEGORY_PE,
            UTF8PROC_CATEGORY_PI, UTF8PROC_CATEGORY_PF, UTF8PROC_CATEGORY_PO, UTF8PROC_CATEGORY_SM,
            UTF8PROC_CATEGORY_SC, UTF8PROC_CATEGORY_SK, UTF8PROC_CATEGORY_SO:
            return true
        default:
            return false
        }
    }

    /// The per-character mapping utf8proc applies before reordering and composition
    /// (case folding, mark stripping, decomposition), fully recursive.
    static func decompose(_ scalar: UInt32, options: utf8proc_option_t, into buffer: inout [Int32]) {
        buffer.removeAll(keepingCapacity: true)
        var capacity = 8
        while true {
            var written = 0
            var boundClass: Int32 = 0
            let result = withUnsafeTemporaryAllocation(of: Int32.self, capacity: capacity) { temp -> Int in
                let count = utf8proc_decompose_char(
                    Int32(bitPattern: scalar), temp.baseAddress, capacity, options,
                    &boundClass)
                if count >= 0 && count <= capacity {
                    buffer.append(contentsOf: temp[0..<count])
                    written = count
                }
                return count
            }
            if result < 0 {
                // Only possible for values outside 0...0x10FFFF, which callers never pass.
                buffer.append(Int32(bitPattern: scalar))
                return
            }
            if result <= capacity && written == result {
                return
            }
            capacity = result
        }
    }
}
