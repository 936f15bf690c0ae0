/// Which tokens may come next so that the decoded text stays valid UTF-8, for a generator that
/// picks tokens one at a time from a vocabulary with byte tokens (unit `.byte`, or fallback
/// `.bytes`): inside a multi-byte sequence only the bytes that may continue it, elsewhere any
/// unit token and the bytes that may start a sequence.
///
/// ```swift
/// var guardrail = ValidUTF8Guard(tokenizer: tokenizer)
/// let allowed = guardrail.allowedIDs(room: tokensLeft)   // mask the rest of the logits
/// guardrail.accept(id)                                   // after choosing
/// ```
public struct ValidUTF8Guard: Sendable {
    /// For each id, its byte when it is a byte token, else -1.
    private let byteOfID: [Int16]
    /// Bytes the open sequence still needs, and the range the next one must be in.
    private var needed = 0
    private var low: UInt8 = 0x80, high: UInt8 = 0xBF

    public init(tokenizer: Tokenizer) {
        byteOfID = tokenizer.vocabulary.map { entry in
            if case .byte(let byte) = entry.kind { return Int16(byte) }
            return -1
        }
    }

    /// Whether the vocabulary has byte tokens at all (without them every token is whole text).
    public var hasByteTokens: Bool { byteOfID.contains { $0 >= 0 } }

    /// Whether no multi-byte sequence is open.
    public var isBetweenCharacters: Bool { needed == 0 }

    /// Whether `id` may come next, with `room` tokens left for the text (this one included): a
    /// sequence is started only when there is room to finish it.
    public func allows(_ id: Int32, room: Int) -> Bool {
        guard id >= 0, Int(id) < byteOfID.count else { return false }
        let byte = byteOfID[Int(id)]
        guard byte >= 0 else { return needed == 0 }
        let b = UInt8(byte)
        if needed > 0 { return b >= low && b <= high }
        let length = Self.sequenceLength(lead: b)
        return length > 0 && length <= room
    }

    /// Every id that may come next.
    public func allowedIDs(room: Int) -> [Bool] {
        (0..<byteOfID.count).map { allows(Int32($0), room: room) }
    }

    /// Records the id chosen.
    public mutating func accept(_ id: Int32) {
        guard id >= 0, Int(id) < byteOfID.count, byteOfID[Int(id)] >= 0 else {
            needed = 0
            return
        }
        let b = UInt8(byteOfID[Int(id)])
        if needed > 0 {
            needed -= 1
            (low, high) = (0x80, 0xBF)
            return
        }
        needed = max(0, Self.sequenceLength(lead: b) - 1)
        // The second byte's range after the leads with restrictions (Unicode Table 3-7).
        switch b {
        case 0xE0: (low, high) = (0xA0, 0xBF)
        case 0xED: (low, high) = (0x80, 0x9F)
        case 0xF0: (low, high) = (0x90, 0xBF)
        case 0xF4: (low, high) = (0x80, 0x8F)
        default: (low, high) = (0x80, 0xBF)
        }
    }

    /// Bytes in the sequence a lead byte starts (1 for ASCII), or 0 for a byte no sequence starts with.
    static func sequenceLength(lead: UInt8) -> Int {
        switch lead {
        case 0x00...0x7F: 1
        case 0xC2...0xDF: 2
        case 0xE0...0xEF: 3
        case 0xF0...0xF4: 4
        default: 0
        }
    }
}
