extension Normalization {
    /// The normalized text: newlines, then form, case folding and mark stripping through utf8proc.
    ///
    /// ```swift
    /// Normalization(form: .nfd).apply(to: "é")          // "e\u{301}"
    /// Normalization(caseFold: true).apply(to: "Straße")  // "strasse"
    /// ```
    public func apply(to text: String) -> String {
        var text = text
        let bytes = text.withUTF8 { (try? normalizedUTF8($0, invalidUTF8: .replace, source: nil)) ?? [] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The normalized UTF-8 of `bytes`.
    /// - Parameter invalidUTF8: `.error` to reject invalid UTF-8, `.replace` to substitute U+FFFD.
    /// - Throws: `TokenizerError.invalidUTF8` with the byte offset.
    public func apply(toUTF8 bytes: some Collection<UInt8>, invalidUTF8: InvalidUTF8Policy = .error) throws -> [UInt8] {
        if let result = try bytes.withContiguousStorageIfAvailable({
            try normalizedUTF8($0, invalidUTF8: invalidUTF8, source: nil)
        }) {
            return result
        }
        return try Array(bytes).withUnsafeBufferPointer {
            try normalizedUTF8($0, invalidUTF8: invalidUTF8, source: nil)
        }
    }

    func normalizedUTF8(
        _ bytes: UnsafeBufferPointer<UInt8>, invalidUTF8: InvalidUTF8Policy,
        source: String?
    ) throws -> [UInt8] {
        let scalars = try normalizedScalars(bytes, invalidUTF8: invalidUTF8, source: source)
        var result: [UInt8] = []
        result.reserveCapacity(scalars.count)
        for scalar in scalars { UTF8Decoding.append(scalar, to: &result) }
        return result
    }

    func normalizedScalars(
        _ bytes: UnsafeBufferPointer<UInt8>, invalidUTF8: InvalidUTF8Policy,
        source: String?
    ) throws -> [UInt32] {
        let tables = NormalizationTables.tables(for: self)
        var segmenter = Segmenter(tables: tables, unit: .scalar, invalidUTF8: invalidUTF8, source: source)
        let out = IDBuffer(capacity: bytes.count + 16)
        var sink = ScalarSink()
        let mask = NormalizationTables.Kind.fastScalar | NormalizationTables.Kind.identity
        try tables.kinds.withLookup { kinds in
            let fast = IdentityLookup(kinds: kinds, mask: mask)
            var ascii = (0..<128).map { fast(UInt32($0)) }
            if normalizeNewlines { ascii[0x0D] = -1 }
            try ascii.withUnsafeBufferPointer { ascii in
                try segmenter.process(
                    bytes, baseOffset: 0, ascii: ascii.baseAddress!, fast: fast, out: out, sink: &sink)
            }
        }
        return out.elements.map { UInt32(bitPattern: $0) }
    }
}

/// Collects normalized scalars as payloads.
///
/// It counts what it emits, which nothing needs but which gives each sink storage of its own:
/// ThreadSanitizer reports every `inout` access to an empty struct as touching one shared
/// address, a false "access race" between threads that each have their own sink.
struct ScalarSink: UnitSink {
    private(set) var emitted = 0

    mutating func emit(unit scalars: UnsafeBufferPointer<UInt32>, into out: IDBuffer) {
        for scalar in scalars { out.append(Int32(bitPattern: scalar)) }
        emitted += scalars.count
    }
}
