/// Decodes ids one at a time, returning the text that each id completes: for generation, where
/// ids arrive one by one and byte tokens may split a character across several ids.
///
/// ```swift
/// var decoder = StreamingDecoder(tokenizer: tokenizer)
/// for id in generatedIDs { print(try decoder.push(id), terminator: "") }
/// print(decoder.finish())
/// ```
///
/// Concatenating every `push` result and `finish()` gives exactly `tokenizer.decode(ids)`.
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    /// A valid but incomplete UTF-8 prefix from byte tokens (at most 3 bytes).
    private var pending: [UInt8] = []

    /// A decoder for ids of `tokenizer`.
    public init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// Adds one id and returns the text it completes (possibly empty while a character
    /// spelled in byte tokens is incomplete). Bytes that cannot form a character become U+FFFD.
    /// - Throws: `TokenizerError.invalidTokenID` for an id outside the vocabulary.
    public mutating func push(_ id: Int32) throws -> String {
        guard let bytes = tokenizer.bytes(of: id) else {
            throw TokenizerError.invalidTokenID(Int64(id), vocabularySize: tokenizer.vocabularySize)
        }
        pending.append(contentsOf: bytes)
        return drain(final: false)
    }

    /// Adds several ids; returns the text they complete.
    public mutating func push(_ ids: some Sequence<Int32>) throws -> String {
        var text = ""
        for id in ids { text += try push(id) }
        return text
    }

    /// Ends the stream: an incomplete character left over becomes U+FFFD.
    public mutating func finish() -> String {
        drain(final: true)
    }

    private mutating func drain(final: Bool) -> String {
        var scalars = String.UnicodeScalarView()
        var consumed = 0
        pending.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            while consumed < buffer.count {
                let step = UTF8Decoding.decode(base, at: consumed, end: buffer.count)
                switch step.status {
                case .scalar:
                    scalars.append(Unicode.Scalar(step.scalar) ?? "\u{FFFD}")
                case .invalid:
                    scalars.append("\u{FFFD}")
                case .truncated:
                    if !final { return }
                    scalars.append("\u{FFFD}")
                }
                consumed += step.length
            }
        }
        pending.removeFirst(consumed)
        return String(scalars)
    }
}
