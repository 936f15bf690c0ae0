/// Strict UTF-8 decoding with "maximal subpart" error recovery (Unicode §3.9, U+FFFD
/// substitution of maximal subparts), the same policy as Swift's `String(decoding:as:)`.
enum UTF8Decoding {
    enum Status: UInt8 {
        case scalar
        /// Bytes that can never start or continue a valid sequence; `length` is the maximal subpart.
        case invalid
        /// A valid prefix cut short by the end of the buffer; `length` is the prefix length.
        case truncated
    }

    /// Decodes the sequence starting at `bytes[index]`; `index < end`.
    @inline(__always)
    static func decode(_ bytes: UnsafePointer<UInt8>, at index: Int, end: Int)
        -> (scalar: UInt32, length: Int, status: Status)
    {
        let b0 = bytes[index]
        if b0 < 0x80 { return (UInt32(b0), 1, .scalar) }
        let available = end - index
        if b0 >= 0xC2 && b0 <= 0xDF {
            guard available >= 2 else { return (0, 1, .truncated) }
            let b1 = bytes[index + 1]
            guard b1 & 0xC0 == 0x80 else { return (0, 1, .invalid) }
            return (UInt32(b0 & 0x1F) << 6 | UInt32(b1 & 0x3F), 2, .scalar)
        }
        if b0 >= 0xE0 && b0 <= 0xEF {
            guard available >= 2 else { return (0, 1, .truncated) }
            let b1 = bytes[index + 1]
            let low: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80
            let high: UInt8 = b0 == 0xED ? 0x9F : 0xBF
            guard b1 >= low && b1 <= high else { return (0, 1, .invalid) }
            guard available >= 3 else { return (0, 2, .truncated) }
            let b2 = bytes[index + 2]
            guard b2 & 0xC0 == 0x80 else { return (0, 2, .invalid) }
            return (UInt32(b0 & 0x0F) << 12 | UInt32(b1 & 0x3F) << 6 | UInt32(b2 & 0x3F), 3, .scalar)
        }
        if b0 >= 0xF0 && b0 <= 0xF4 {
            guard available >= 2 else { return (0, 1, .truncated) }
            let b1 = bytes[index + 1]
            let low: UInt8 = b0 == 0xF0 ? 0x90 : 0x80
            let high: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
            guard b1 >= low && b1 <= high else { return (0, 1, .invalid) }
            guard available >= 3 else { return (0, 2, .truncated) }
            let b2 = bytes[index + 2]
            guard b2 & 0xC0 == 0x80 else { return (0, 2, .invalid) }
            guard available >= 4 else { return (0, 3, .truncated) }
            let b3 = bytes[index + 3]
            guard b3 & 0xC0 == 0x80 else { return (0, 3, .invalid) }
            let value =
                UInt32(b0 & 0x07) << 18 | UInt32(b1 & 0x3F) << 12 | UInt32(b2 & 0x3F) << 6
                | UInt32(b3 & 0x3F)
            return (value, 4, .scalar)
        }
        return (0, 1, .invalid)
    }

    /// Appends the UTF-8 encoding of `scalar` (a valid scalar value).
    @inline(__always)
    static func append(_ scalar: UInt32, to bytes: inout [UInt8]) {
        if scalar < 0x80 {
            bytes.append(UInt8(scalar))
        } else if scalar < 0x800 {
            bytes.append(UInt8(0xC0 | (scalar >> 6)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        } else if scalar < 0x10000 {
            bytes.append(UInt8(0xE0 | (scalar >> 12)))
            bytes.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        } else {
            bytes.append(UInt8(0xF0 | (scalar >> 18)))
            bytes.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            bytes.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    /// The UTF-8 bytes of a sequence of scalars.
    static func encode(_ scalars: some Sequence<UInt32>) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in scalars { append(scalar, to: &bytes) }
        return bytes
    }

    /// The scalars of valid UTF-8 (as produced by this module); nil if `bytes` is not valid.
    static func scalars(of bytes: [UInt8]) -> [UInt32]? {
        var result: [UInt32] = []
        let valid = bytes.withUnsafeBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return true }
            var index = 0
            while index < buffer.count {
                let step = decode(base, at: index, end: buffer.count)
                guard step.status == .scalar else { return false }
                result.append(step.scalar)
                index += step.length
            }
            return true
        }
        return valid ? result : nil
    }
}
