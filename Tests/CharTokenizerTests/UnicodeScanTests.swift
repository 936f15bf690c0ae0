import CUTF8Proc
import Testing
@testable import CharTokenizer

/// The start-up scan skips `UnicodeScan.inertRanges`; that is exact only while utf8proc's data
/// has nothing there that a normalization or the grapheme rules would treat specially.
@Suite struct UnicodeScanTests {
    @Test func skippedRangesHoldOnlyInertScalars() {
        var notInert: [UInt32] = []
        for range in UnicodeScan.inertRanges {
            for value in range where !UnicodeScan.isInert(value) { notInert.append(value) }
        }
        #expect(notInert.isEmpty, "not inert: \(notInert.prefix(5).map { String($0, radix: 16) })")
    }

    @Test func noDecompositionEndsInASkippedRange() {
        var decomposition: [Int32] = []
        let canonical = utf8proc_option_t(rawValue: UTF8PROC_DECOMPOSE.rawValue)
        var offenders: [UInt32] = []
        for value in UInt32(0)..<0x110000 where !(0xD800..<0xE000).contains(value) {
            UnicodeData.decompose(value, options: canonical, into: &decomposition)
            guard decomposition.count >= 2, let last = decomposition.last else { continue }
            if UnicodeScan.inertRanges.contains(where: { $0.contains(UInt32(bitPattern: last)) }) {
                offenders.append(value)
            }
        }
        #expect(offenders.isEmpty)
    }
}
