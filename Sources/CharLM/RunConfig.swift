import CharNN
import CharTokenizer
import Foundation

/// Everything a run is made from, as config.json stores it: the model, the tokenizer's
/// options, the training options, and where the text came from. One value, serialized into
/// every run (nanoGPT's single config): `RunConfig()` holds charlm's defaults, the command line
/// changes the fields a user gives (`RunOptions`), and a resumed run starts from its file.
///
/// ```swift
/// var config = RunConfig()
/// config.model.hiddenSize = 512
/// config.training.maxSteps = 2000
/// let trainer = try Trainer.start(corpus: url, runDirectory: runURL, config: config)
/// ```
public struct RunConfig: Codable, Sendable, Equatable {
    public static let currentFormat = "charlm"
    public static let currentVersion = 1

    public var format: String = RunConfig.currentFormat
    public var version: Int = RunConfig.currentVersion
    /// The network. Its vocabulary size is set from the tokenizer when the run is created.
    ///
    /// The defaults were chosen by measurement: on tinyshakespeare, in 10 minutes on a 2-core
    /// CPU, 2x384 with dropout 0.25 reached the lowest validation loss of 2x256 (dropout 0,
    /// 0.2), 2x384 (0.25, 0.3) and 2x512 (0.3); see the README's benchmarks.
    public var model = NetworkConfig(cell: .lstm, vocabularySize: 0, hiddenSize: 384, layers: 2, dropout: 0.25)
    /// How text becomes tokens. Not written to config.json: tokenizer.json holds the tokenizer
    /// with its options, and a loaded run's value comes from there.
    ///
    /// By default the vocabulary keeps the 1024 most frequent characters; the rest are spelled
    /// in byte tokens (see `Tokenizer.build`). The output layer costs 6·hidden·vocabulary
    /// operations per character, trained: at 1024 + 256 tokens and the default 384 hidden units
    /// that is about a quarter of the two recurrent layers, where the 6,382 characters of a
    /// multilingual text (Debian's fortunes in nine languages) would cost 1.4 times them, and
    /// the 1024 most frequent cover 99.4% of that text. A corpus with fewer distinct characters
    /// (tinyshakespeare has 65) keeps them all, with no byte tokens.
    public var tokenizer = TokenizerConfig(maxSize: RunConfig.defaultVocabularyUnits)

    /// The number of distinct characters a new run's vocabulary keeps at most, by default.
    public static let defaultVocabularyUnits = 1024
    public var training = TrainingConfig()
    /// Path of the corpus the run was created from.
    public var corpus: String?
    /// Units the corpus encoded to, so that a resume notices a changed corpus.
    public var corpusUnits: Int?
    /// The weights a fine-tuned run started from (`--init-from`).
    public var initializedFrom: String?

    enum CodingKeys: CodingKey {
        case format, version, model, training, corpus, corpusUnits, initializedFrom
    }

    public init() {}

    public init(model: NetworkConfig, training: TrainingConfig, corpus: String?) {
        self.model = model
        self.training = training
        self.corpus = corpus
    }

    /// What a loss is per: "byte" for a byte model, else "char" (a grapheme or a scalar).
    public var lossUnit: String { tokenizer.unit == .byte ? "byte" : "char" }

    // MARK: - Resuming

    /// The fields a resumed run may change: when it stops, how it reports, how many threads it
    /// uses, and its learning rate. Every other field is fixed for the life of a run, since
    /// changing it would make the resumed run a different one.
    /// (Key paths are immutable values, safe to share; Swift does not mark them Sendable.)
    nonisolated(unsafe) public static let mayChangeOnResume: Set<PartialKeyPath<RunConfig>> = [
        \.training.maxSteps, \.training.epochs, \.training.timeLimit, \.training.earlyStoppingPatience,
        \.training.evalEvery, \.training.sampleEvery, \.training.sampleTemperature, \.training.sampleLength,
        \.training.samplePrompt, \.training.keepCheckpoints, \.training.logEvery, \.training.threads,
        \.training.nanPolicy, \.training.optimizer.learningRate,
    ]

    // MARK: - config.json

    /// Reads and validates config.json.
    public static func load(from url: URL) throws -> RunConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CharLMError.missingFile(
                path: url.path, hint: "a charlm run directory holds config.json, tokenizer.json and model.safetensors")
        }
        return try load(data: data, source: url.path)
    }

    /// Parses and validates the bytes of a config.json. Fields the file lacks (it was written
    /// by an earlier charlm) take their defaults.
    /// - Parameter source: how to name the data in error messages.
    public static func load(data: Data, source: String) throws -> RunConfig {
        struct Header: Decodable { let format: String?; let version: Int? }
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw CharLMError.invalidFile(path: source, reason: "not a JSON object (truncated or damaged?)")
        }
        guard header.format == currentFormat else {
            throw CharLMError.invalidFile(
                path: source, reason: "not a charlm config (format is \(header.format.map { "'\($0)'" } ?? "missing"))")
        }
        guard let version = header.version, version <= currentVersion else {
            throw CharLMError.invalidFile(
                path: source,
                reason:
                    "format version \(header.version ?? -1) is newer than this charlm supports (\(currentVersion)); "
                    + "upgrade charlm"
            )
        }
        do {
            var config = try JSONFile.decode(RunConfig.self, from: data, defaults: absentFieldDefaults)
            config.tokenizer = TokenizerConfig()
            try config.validate()
            return config
        } catch let error as DecodingError {
            throw CharLMError.invalidFile(path: source, reason: "unreadable config: \(error.shortDescription)")
        } catch {
            throw CharLMError.invalidFile(path: source, reason: "\(error)")
        }
    }

    /// What a field missing from a config.json means: the value it had before the field
    /// existed. An optional field is written only when set, so a missing one means "none",
    /// whatever today's default is.
    static var absentFieldDefaults: RunConfig {
        var config = RunConfig()
        config.training.epochs = nil
        config.training.validationSplit = .tail
        config.training.validationSampleSize = nil
        config.training.testFraction = 0
        config.training.averagingDecay = nil
        return config
    }

    /// Checks every field.
    public func validate() throws {
        do { try model.validate() } catch let error as NetworkError { throw CharLMError.invalidOptions("\(error)") }
        do { try tokenizer.validate() } catch let error as TokenizerError {
            throw CharLMError.invalidOptions(error.localizedDescription)
        }
        try training.validate()
        if model.bidirectional && training.task == nil {
            throw CharLMError.invalidOptions(
                "a bidirectional model reads each chunk from both ends, so it cannot generate text left to right; "
                    + "train it on a labelling task (--task restore-marks or --task restore-case)")
        }
        if let corpusUnits, corpusUnits < 0 { throw CharLMError.invalidOptions("corpus units must not be negative") }
    }

    func jsonData() throws -> Data {
        try JSONFile.encode(self)
    }
}

/// Options a user gave for a run, each setting one field of its `RunConfig`: applied to the
/// defaults for a new run, or to a run's own config when it is resumed, where a change to a
/// field outside `RunConfig.mayChangeOnResume` is a conflict. The caller names each option
/// (the command line uses its flags), so that conflicts read in the user's own terms.
///
/// ```swift
/// var options = RunOptions()
/// options.set(\.model.hiddenSize, to: 512, as: "--hidden")
/// let config = options.applied(to: RunConfig())
/// ```
public struct RunOptions {
    struct Entry {
        let field: PartialKeyPath<RunConfig>
        let name: String
        let apply: (inout RunConfig) -> Void
        let differs: (RunConfig, RunConfig) -> Bool
        let shown: (RunConfig) -> String
    }

    private(set) var entries: [Entry] = []

    public init() {}

    /// Sets `field` to `value`, when a value is given.
    public mutating func set<Value: Equatable>(
        _ field: WritableKeyPath<RunConfig, Value>, to value: Value?, as name: String
    ) {
        guard let value else { return }
        update(field, as: name) { $0[keyPath: field] = value }
    }

    /// Changes `field` with `apply` (for an option that sets a field from others, such as an
    /// optimizer whose defaults depend on its kind).
    public mutating func update<Value: Equatable>(
        _ field: WritableKeyPath<RunConfig, Value>, as name: String,
        _ apply: @escaping (inout RunConfig) -> Void
    ) {
        entries.append(
            Entry(
                field: field, name: name, apply: apply,
                differs: { $0[keyPath: field] != $1[keyPath: field] },
                shown: { Self.show($0[keyPath: field]) }))
    }

    /// Whether no option was given.
    public var isEmpty: Bool { entries.isEmpty }

    /// `config` with every option applied, in the order given.
    public func applied(to config: RunConfig) -> RunConfig {
        var result = config
        for entry in entries { entry.apply(&result) }
        return result
    }

    /// The options that would change a field fixed for the run's life, each as
    /// "NAME VALUE (the run uses VALUE)".
    public func conflicts(resuming run: RunConfig) -> [String] {
        let changed = applied(to: run)
        return entries.filter { !RunConfig.mayChangeOnResume.contains($0.field) && $0.differs(run, changed) }
            .map { "\($0.name) \($0.shown(changed)) (the run uses \($0.shown(run)))" }
    }

    /// The options that change a field a resumed run may change, as (name, old, new).
    public func changes(resuming run: RunConfig) -> [(name: String, from: String, to: String)] {
        let changed = applied(to: run)
        return entries.filter { RunConfig.mayChangeOnResume.contains($0.field) && $0.differs(run, changed) }
            .map { ($0.name, $0.shown(run), $0.shown(changed)) }
    }

    private static func show(_ value: some Any) -> String {
        if let optional = value as? any OptionalProtocol { return optional.shown }
        if let text = value as? any RawRepresentable<String> { return text.rawValue }
        return "\(value)"
    }
}

private protocol OptionalProtocol {
    var shown: String { get }
}

extension Optional: OptionalProtocol {
    var shown: String {
        switch self {
        case .none: "none"
        case .some(let value):
            if let text = value as? any RawRepresentable<String> { text.rawValue } else { "\(value)" }
        }
    }
}

/// JSON as charlm writes it: snake_case keys, sorted, indented; reading fills in the fields a
/// file lacks from defaults, so that files written before a field existed still load. (The
/// defaults must say what a missing field meant to the charlm that wrote the file:
/// `RunConfig.absentFieldDefaults`.)
enum JSONFile {
    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try encoder.encode(value)
    }

    /// Decodes `data` over `defaults`: every key of the file replaces the default's (objects
    /// merge key by key), then the result is decoded.
    static func decode<T: Codable>(_ type: T.Type, from data: Data, defaults: T) throws -> T {
        let file = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        let base = try JSONSerialization.jsonObject(with: encode(defaults))
        let merged = merge(file, over: base)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try decoder.decode(
            T.self, from: JSONSerialization.data(withJSONObject: merged, options: [.fragmentsAllowed]))
    }

    private static func merge(_ value: Any, over base: Any) -> Any {
        guard let object = value as? [String: Any], let defaults = base as? [String: Any] else { return value }
        var result = defaults
        for (key, item) in object { result[key] = defaults[key].map { merge(item, over: $0) } ?? item }
        return result
    }
}

extension DecodingError {
    /// One line naming the field that failed.
    var shortDescription: String {
        switch self {
        case .keyNotFound(let key, let context):
            "missing field '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            "bad value at '\(context.codingPath.map(\.stringValue).joined(separator: "."))': "
                + "\(context.debugDescription)"
        @unknown default: "\(self)"
        }
    }
}
