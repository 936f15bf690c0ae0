import CharIO
import Foundation

extension Tokenizer {
    /// The `"format"` value of a tokenizer file.
    public static let fileFormat = "charlm-tokenizer"
    /// The newest `"version"` this library reads and the one it writes.
    public static let fileVersion = 1

    /// Writes `tokenizer.json` atomically: a temporary file in the same directory, fsync, rename.
    /// - Throws: `TokenizerError.unwritableFile`.
    public func save(to url: URL) throws {
        do {
            try DurableFile.write(jsonData(), to: url)
        } catch let error as DurableFileError {
            throw TokenizerError.unwritableFile(path: error.path, reason: error.reason)
        }
    }

    /// Reads a tokenizer file.
    /// - Throws: `TokenizerError.unreadableFile`, `.notATokenizerFile`, `.corruptTokenizerFile`,
    ///   `.unsupportedVersion`.
    public static func load(from url: URL) throws -> Tokenizer {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            let reason =
                FileManager.default.fileExists(atPath: url.path)
                ? (error as NSError).localizedDescription : "no such file"
            throw TokenizerError.unreadableFile(path: url.path, reason: reason)
        }
        return try load(jsonData: data, source: url.path)
    }

    /// Reads a tokenizer from the bytes of a tokenizer file.
    /// - Parameter source: how to name the data in error messages.
    public static func load(jsonData data: Data, source: String = "<data>") throws -> Tokenizer {
        try TokenizerFileReader(data: data, source: source).read()
    }

    /// The bytes of `tokenizer.json`: UTF-8 JSON, one vocabulary entry per line.
    public func jsonData() -> Data {
        var json = "{\n"
        json += "  \"format\": \(JSONText.string(Self.fileFormat)),\n"
        json += "  \"version\": \(Self.fileVersion),\n"
        json += "  \"unicode_version\": \(JSONText.string(Self.unicodeVersion)),\n"
        json += "  \"config\": {\n"
        let normalization = config.normalization
        json += "    \"normalization\": {\"form\": \(JSONText.string(normalization.form.rawValue)), "
        json += "\"case_fold\": \(normalization.caseFold), \"strip_marks\": \(normalization.stripMarks), "
        json += "\"normalize_newlines\": \(normalization.normalizeNewlines)},\n"
        json += "    \"unit\": \(JSONText.string(config.unit.rawValue)),\n"
        json += "    \"fallback\": \(JSONText.string(config.fallback.rawValue)),\n"
        json += "    \"min_count\": \(config.minCount),\n"
        json += "    \"max_size\": \(config.maxSize.map(String.init) ?? "null"),\n"
        json += "    \"invalid_utf8\": \(JSONText.string(config.invalidUTF8.rawValue))\n"
        json += "  },\n"
        json += "  \"vocabulary_size\": \(vocabularySize),\n"
        json += "  \"vocabulary\": [\n"
        for (id, entry) in vocabulary.enumerated() {
            json += "    {\"id\": \(id), "
            switch entry.kind {
            case .unknown: json += "\"special\": \(JSONText.string(VocabularyEntry.unknownName))"
            case .byte(let byte): json += "\"byte\": \(byte)"
            case .unit: json += "\"unit\": \(JSONText.string(entry.text))"
            }
            json += ", \"count\": \(entry.count)}"
            json += id + 1 < vocabulary.count ? ",\n" : "\n"
        }
        json += "  ]\n}\n"
        return Data(json.utf8)
    }
}

/// JSON string literals with every control character escaped, so that NUL, lone CR, tabs and
/// the line separators survive any editor; everything else is written as UTF-8.
enum JSONText {
    static func string(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _
            where scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029:
                result += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// Parses and validates a tokenizer file, mapping every problem to a `TokenizerError`.
struct TokenizerFileReader {
    let data: Data
    let source: String

    private struct Header: Decodable {
        let format: String
        let version: Int
    }

    private struct FileV1: Decodable {
        let config: TokenizerConfig
        let vocabularySize: Int
        let vocabulary: [Entry]

        enum CodingKeys: String, CodingKey {
            case config
            case vocabularySize = "vocabulary_size"
            case vocabulary
        }
    }

    private struct Entry: Decodable {
        let id: Int
        let unit: String?
        let byte: Int?
        let special: String?
        let count: Int
    }

    func read() throws -> Tokenizer {
        guard !data.isEmpty else { throw corrupt("the file is empty") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            if data.range(of: Data("\"\(Tokenizer.fileFormat)\"".utf8)) != nil {
                throw corrupt("it is not valid JSON (truncated?)")
            }
            throw TokenizerError.notATokenizerFile(path: source, reason: "it is not JSON")
        }
        guard let dictionary = object as? [String: Any] else {
            throw TokenizerError.notATokenizerFile(path: source, reason: "it is not a JSON object")
        }
        guard let format = dictionary["format"] else {
            if dictionary["model"] != nil && (dictionary["added_tokens"] != nil || dictionary["normalizer"] != nil) {
                throw TokenizerError.notATokenizerFile(
                    path: source,
                    reason: "it looks like a Hugging Face tokenizers file; build one with `charlm tokenizer build`")
            }
            throw TokenizerError.notATokenizerFile(
                path: source, reason: "it has no \"format\": \"\(Tokenizer.fileFormat)\" field")
        }
        guard let formatName = format as? String, formatName == Tokenizer.fileFormat else {
            throw TokenizerError.notATokenizerFile(
                path: source, reason: "its format is \(format), not \"\(Tokenizer.fileFormat)\"")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: data)
        } catch {
            throw corrupt("the \"version\" field is missing or not an integer")
        }
        if header.version > Tokenizer.fileVersion {
            throw TokenizerError.unsupportedVersion(
                path: source, found: header.version, supported: Tokenizer.fileVersion)
        }
        guard header.version >= 1 else { throw corrupt("version \(header.version) does not exist") }

        let file: FileV1
        do {
            file = try JSONDecoder().decode(FileV1.self, from: data)
        } catch let error as DecodingError {
            throw corrupt(Self.describe(error))
        }
        guard file.vocabularySize == file.vocabulary.count else {
            throw corrupt(
                "vocabulary_size is \(file.vocabularySize) but the vocabulary lists \(file.vocabulary.count) tokens")
        }
        var entries: [VocabularyEntry] = []
        entries.reserveCapacity(file.vocabulary.count)
        for (index, entry) in file.vocabulary.enumerated() {
            guard entry.id == index else { throw corrupt("vocabulary entry \(index) has id \(entry.id)") }
            let kinds = [entry.unit != nil, entry.byte != nil, entry.special != nil].filter { $0 }.count
            guard kinds == 1 else {
                throw corrupt("vocabulary entry \(index) must have exactly one of \"unit\", \"byte\", \"special\"")
            }
            if let unit = entry.unit {
                entries.append(VocabularyEntry(unit: Array(unit.utf8), count: entry.count))
            } else if let byte = entry.byte {
                guard (0...255).contains(byte) else { throw corrupt("vocabulary entry \(index) has byte \(byte)") }
                entries.append(VocabularyEntry(byte: UInt8(byte), count: entry.count))
            } else if entry.special == VocabularyEntry.unknownName {
                entries.append(VocabularyEntry(unknownCount: entry.count))
            } else {
                throw corrupt("vocabulary entry \(index) is an unknown special token \(entry.special ?? "")")
            }
        }
        do {
            return try Tokenizer(config: file.config, vocabulary: entries)
        } catch let error as TokenizerError {
            if case .invalidConfiguration(let reason) = error { throw corrupt(reason) }
            throw error
        }
    }

    private func corrupt(_ reason: String) -> TokenizerError {
        .corruptTokenizerFile(path: source, reason: reason)
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let components = context.codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }
            let joined = components.joined()
            return joined.isEmpty ? "the top level" : String(joined.drop { $0 == "." })
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "the field \"\(key.stringValue)\" is missing" + (context.codingPath.isEmpty ? "" : " in \(parent)")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context)) has the wrong type"
        case .dataCorrupted(let context):
            return "\(path(context)) has an invalid value"
        @unknown default:
            return "it does not match the format"
        }
    }
}
