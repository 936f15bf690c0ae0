import CharNN
import CharTokenizer
import Foundation
import Synchronization

/// A trained character model: the tokenizer and the network, loaded from a run directory.
///
/// ```swift
/// let model = try LanguageModel.load(URL(fileURLWithPath: "runs/shakespeare"))
/// for piece in try model.stream(prompt: "ROMEO:", length: 200, seed: 1) { print(piece, terminator: "") }
/// ```
public final class LanguageModel: @unchecked Sendable {
    public let tokenizer: Tokenizer
    /// The network in float32. A model loaded beside a current `model.int8.safetensors` reads
    /// its float32 weights only when this is first asked for: one-stream int8 generation
    /// does not need them.
    public var network: Network { weights.withLock { $0.network() } }
    public let config: RunConfig
    /// The trainer state saved with the weights (step, validation loss), if any.
    public let trainerState: TrainerState?
    /// The weights file that was loaded.
    public let weightsURL: URL
    /// The run directory the model was loaded from, if it was.
    private var runURL: URL?
    /// The identity of the weights file as loaded (nil for a model made in memory).
    private var loadedIdentity: String?
    private let weights: Mutex<Weights>

    /// The float32 network, made when first needed, and the int8 weights once known.
    private struct Weights {
        var made: Network?
        var make: (() -> Network)?
        var quantized: QuantizedWeights?
        /// Whether `quantized` came from the int8 file beside the weights.
        var quantizedFromFile = false

        mutating func network() -> Network {
            if let made { return made }
            let network = make!()
            made = network
            make = nil
            return network
        }
    }

    public init(tokenizer: Tokenizer, network: Network, config: RunConfig, trainerState: TrainerState?, weightsURL: URL)
    {
        self.tokenizer = tokenizer
        self.config = config
        self.trainerState = trainerState
        self.weightsURL = weightsURL
        weights = Mutex(Weights(made: network))
    }

    private init(
        tokenizer: Tokenizer, config: RunConfig, trainerState: TrainerState?, weightsURL: URL, weights: sending Weights
    ) {
        self.tokenizer = tokenizer
        self.config = config
        self.trainerState = trainerState
        self.weightsURL = weightsURL
        self.weights = Mutex(weights)
    }

    /// The weights as one-stream int8 generation reads them: from `model.int8.safetensors`
    /// when it was made from the weights loaded, otherwise quantized from the network (once).
    public var quantizedWeights: QuantizedWeights {
        weights.withLock { weights in
            if let quantized = weights.quantized { return quantized }
            let quantized = QuantizedWeights(network: weights.network())
            weights.quantized = quantized
            return quantized
        }
    }

    /// Whether the int8 weights were read from the file beside the float32 weights.
    public var quantizedWeightsFromFile: Bool { weights.withLock { $0.quantizedFromFile } }

    /// Saves the int8 weights beside the float32 weights file (`model.int8.safetensors`
    /// beside `model.safetensors`), so that the next load skips the float32 weights for
    /// one-stream int8 generation. Does nothing when the loaded file is already current. A
    /// model from a run directory takes the run's lock while it writes, so that it never
    /// writes into a checkpoint that a training is replacing.
    /// - Returns: the file written, or nil when there was nothing to write.
    /// - Throws: `CharLMError.runInUse` while the run trains, `.unwritable` when the file
    ///   cannot be written.
    @discardableResult
    public func saveQuantizedWeights() throws -> URL? {
        // Only for weights loaded from their file: a model made in memory may hold other
        // weights than the file its `weightsURL` names.
        guard !quantizedWeightsFromFile, !config.model.bidirectional, let source = loadedIdentity else { return nil }
        let lock = try runURL.map { try RunDirectory($0).lock() }
        defer { lock?.release() }
        // Under the lock: the weights file must still be the one loaded.
        guard QuantizedWeightsFile.identity(of: weightsURL) == source else { return nil }
        let url = QuantizedWeightsFile.url(besides: weightsURL)
        let data = QuantizedWeightsFile.encoded(
            quantizedWeights, source: source, step: trainerState.map { String($0.step) })
        do { try writeDurably(data, to: url) } catch {
            throw CharLMError.unwritable(path: url.path, reason: "\(error)")
        }
        return url
    }

    /// A tagger's labelling task (nil: a language model).
    public var task: TaggingTask? { config.training.task }

    /// Throws unless this model generates text: a tagger restores text instead.
    public func checkGenerates() throws {
        if let task {
            throw CharLMError.invalidOptions(
                "\(weightsURL.path) is a \(task) model: it restores text rather than generating it; use "
                    + "charlm restore RUN FILE")
        }
    }

    /// A tagger over this model's network, for a model trained with a task.
    /// - Parameter context: units read on either side of each window's decisions.
    public func tagger(context: Int = Tagger.defaultContext, threads: Int = BatchRunner.defaultThreads) throws -> Tagger
    {
        guard let task else {
            throw CharLMError.invalidOptions(
                "\(weightsURL.path) is a language model, not a tagger: train one with --task restore-marks or "
                    + "--task restore-case")
        }
        let scheme = try TaggingScheme(task: task, tokenizer: tokenizer)
        return Tagger(network: network, scheme: scheme, context: context, threads: threads)
    }

    /// Which checkpoint of a run to load.
    public enum Checkpoint: Sendable, Equatable, CustomStringConvertible {
        /// The lowest validation loss (falls back to latest when there is none yet).
        case best
        /// The last one saved.
        case latest
        /// The one kept at a step (`--keep-checkpoints`).
        case step(Int)

        /// Parses `best`, `latest` or `step-N`.
        public init?(_ text: String) {
            switch text.lowercased() {
            case "best": self = .best
            case "latest": self = .latest
            case let other where other.hasPrefix("step-"):
                guard let step = Int(other.dropFirst(5)), step >= 0 else { return nil }
                self = .step(step)
            default: return nil
            }
        }

        public var description: String {
            switch self {
            case .best: "best"
            case .latest: "latest"
            case .step(let step): "step-\(step)"
            }
        }
    }

    /// Loads a model from a run directory, or from a `model.safetensors` with its
    /// `config.json` and `tokenizer.json` beside it.
    public static func load(_ path: URL, checkpoint: Checkpoint = .best) throws -> LanguageModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDirectory) else {
            throw CharLMError.missingFile(
                path: path.path, hint: "expected a run directory made by `charlm train` or its model.safetensors")
        }
        guard isDirectory.boolValue else {
            let directory = path.deletingLastPathComponent()
            return try load(
                weights: path, configIn: directory, trainerState: directory.appendingPathComponent("trainer_state.json")
            )
        }
        let run = RunDirectory(path)
        let weights = try run.weightsDirectory(checkpoint)
        // best/ and checkpoints/step-N hold their own config and tokenizer; .previous/ shares the run's.
        let configDirectory = weights == run.previousURL ? run.url : weights
        let model = try load(
            weights: weights.appendingPathComponent("model.safetensors"), configIn: configDirectory,
            trainerState: weights.appendingPathComponent("trainer_state.json"))
        model.runURL = run.url
        return model
    }

    private static func load(weights: URL, configIn directory: URL, trainerState: URL) throws -> LanguageModel {
        let (config, tokenizer) = try RunDirectory.loadConfig(in: directory)
        let before = QuantizedWeightsFile.identity(of: weights)
        let file = try SafeTensors(contentsOf: weights)
        let state = try? TrainerState.load(from: trainerState)
        let unchanged = before != nil && QuantizedWeightsFile.identity(of: weights) == before
        // The int8 file counts only when it was made from the very file mapped here (the same
        // identity before and after mapping it). It was made from weights that loaded, so
        // they are finite: the float32 network can wait until something asks for it.
        if unchanged, let source = before, !config.model.bidirectional,
            let quantized = QuantizedWeightsFile.load(
                QuantizedWeightsFile.url(besides: weights), config: config.model, source: source)
        {
            try CheckpointFiles.checkWeights(file, config: config.model, source: weights.path)
            let make = { () -> Network in
                do {
                    let network = try Network(config: config.model)
                    try network.loadWeights(file, source: weights.path)
                    return network
                } catch {
                    fatalError("\(weights.path): \(error)")
                }
            }
            let model = LanguageModel(
                tokenizer: tokenizer, config: config, trainerState: state, weightsURL: weights,
                weights: Weights(make: make, quantized: quantized, quantizedFromFile: true))
            model.loadedIdentity = before
            return model
        }
        let network = try Network(config: config.model)
        try network.loadWeights(file, source: weights.path)
        let model = LanguageModel(
            tokenizer: tokenizer, network: network, config: config, trainerState: state, weightsURL: weights)
        // What was loaded is what the file held only when it did not change meanwhile.
        model.loadedIdentity = unchanged ? before : nil
        return model
    }

    // MARK: - Prompts

    /// The ids of `prompt` after the tokenizer's normalization.
    /// - Throws: `CharLMError.badPrompt` naming characters the vocabulary lacks.
    public func encodePrompt(_ prompt: String) throws -> [Int32] {
        do {
            return try tokenizer.encode(prompt)
        } catch TokenizerError.unknownCharacters(let scalars) {
            let names =
                scalars.prefix(10).map(TokenizerError.describe).joined(separator: ", ")
                + (scalars.count > 10 ? ", …" : "")
            let one = scalars.count == 1
            throw CharLMError.badPrompt(
                "the prompt has \(one ? "a character" : "characters") this model's vocabulary lacks: \(names); "
                    + "remove \(one ? "it" : "them"), or train with byte fallback so that any text encodes")
        } catch let error as TokenizerError {
            throw CharLMError.badPrompt("cannot encode the prompt: \(error.localizedDescription)")
        }
    }

    /// The id an empty prompt starts from: a line break when the vocabulary has one (the
    /// text then starts as if at the beginning of a line), otherwise the most frequent unit.
    public var startID: Int32 {
        if let newline = tokenizer.id(for: "\n") { return newline }
        var best: Int32 = 0
        var bestCount = -1
        for id in 0..<Int32(tokenizer.vocabularySize) {
            let count = tokenizer.count(for: id) ?? 0
            if count > bestCount {
                best = id
                bestCount = count
            }
        }
        return best
    }
}
