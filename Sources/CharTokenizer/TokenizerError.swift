import Foundation

/// Everything that can go wrong in `CharTokenizer`, with messages a user can act on.
///
/// The library never traps on bad input: invalid UTF-8, an empty corpus, characters the
/// vocabulary lacks, out-of-range ids and broken tokenizer files all surface as one of these cases.
public enum TokenizerError: Error, LocalizedError, Equatable, Sendable {
    /// The input is not valid UTF-8; `offset` is the byte offset of the first bad byte.
    case invalidUTF8(offset: Int, source: String?)
    /// A vocabulary cannot be built: the corpus holds no characters (after normalization).
    case emptyCorpus(source: String?)
    /// The text holds characters the vocabulary has no token for and fallback is `.scalars`.
    case unknownCharacters([Unicode.Scalar])
    /// A token id outside `0..<vocabularySize`.
    case invalidTokenID(Int64, vocabularySize: Int)
    /// A configuration that cannot work, with the reason.
    case invalidConfiguration(String)
    /// A file could not be read.
    case unreadableFile(path: String, reason: String)
    /// A file could not be written.
    case unwritableFile(path: String, reason: String)
    /// A file that is JSON but not a charlm tokenizer (another format, or another tool's file).
    case notATokenizerFile(path: String, reason: String)
    /// A charlm tokenizer file that is truncated, corrupted or inconsistent.
    case corruptTokenizerFile(path: String, reason: String)
    /// A tokenizer file written by a newer charlm.
    case unsupportedVersion(path: String, found: Int, supported: Int)

    public var errorDescription: String? {
        switch self {
        case let .invalidUTF8(offset, source):
            return "invalid UTF-8 at byte offset \(offset)\(Self.in(source)); "
                + "fix the file or replace invalid bytes with U+FFFD (invalidUTF8: .replace, --replace-invalid)"
        case let .emptyCorpus(source):
            return "the corpus\(Self.quoted(source)) is empty (no characters after normalization); "
                + "a vocabulary needs at least one character"
        case let .unknownCharacters(scalars):
            let shown = scalars.prefix(10).map(Self.describe).joined(separator: ", ")
            let more = scalars.count > 10 ? " and \(scalars.count - 10) more" : ""
            let noun = scalars.count == 1 ? "character" : "characters"
            return "the vocabulary has no token for the \(noun) \(shown)\(more); rebuild the tokenizer "
                + "on a corpus that contains \(scalars.count == 1 ? "it" : "them"), or use fallback 'bytes' or "
                + "'unknown'"
        case let .invalidTokenID(id, size):
            return "token id \(id) is out of range: the vocabulary has \(size) tokens (ids 0..<\(size))"
        case let .invalidConfiguration(reason):
            return "invalid tokenizer configuration: \(reason)"
        case let .unreadableFile(path, reason):
            return "cannot read '\(path)': \(reason)"
        case let .unwritableFile(path, reason):
            return "cannot write '\(path)': \(reason)"
        case let .notATokenizerFile(path, reason):
            return "'\(path)' is not a charlm tokenizer file: \(reason)"
        case let .corruptTokenizerFile(path, reason):
            return "'\(path)' is a damaged charlm tokenizer file: \(reason); rebuild it with `charlm tokenizer build`"
        case let .unsupportedVersion(path, found, supported):
            return "'\(path)' is tokenizer format version \(found), but this charlm reads versions up to "
                + "\(supported); upgrade charlm"
        }
    }

    /// "'é' (U+00E9)" for a visible character, "U+0301" for marks, controls and other invisible ones.
    public static func describe(_ scalar: Unicode.Scalar) -> String {
        let code = "U+" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4)
        return UnicodeData.isVisible(scalar.value) ? "'\(Character(scalar))' (\(code))" : code
    }

    private static func `in`(_ source: String?) -> String {
        source.map { " in '\($0)'" } ?? ""
    }

    private static func quoted(_ source: String?) -> String {
        source.map { " '\($0)'" } ?? ""
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
