import CharNN
import CharTokenizer
import Foundation

/// A trained character model: the tokenizer and the network, loaded from a run directory.
///
/// ```swift
/// let model = try LanguageModel.load(URL(fileURLWithPath: "runs/shakespeare"))
/// for piece in try model.stream(prompt: "ROMEO:", length: 200, seed: 1) { print(piece, terminator: "") }
/// ```
public final class LanguageModel: @unchecked Sendable {
    public let tokenizer: Tokenizer
    public let network: Network
    public let config: RunConfig
    /// The trainer state saved with the weights (step, validation loss), if any.
    public let trainerState: TrainerState?
    /// The weights file that was loaded.
    public let weightsURL: URL

    public init(tokenizer: Tokenizer, network: Network, config: RunConfig, trainerState: TrainerState?, weightsURL: URL)
    {
        self.tokenizer = tokenizer
        self.network = network
        self.config = config
        self.trainerState = trainerState
        self.weightsURL = weightsURL
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
        return try load(
            weights: weights.appendingPathComponent("model.safetensors"), configIn: configDirectory,
            trainerState: weights.appendingPathComponent("trainer_state.json"))
    }

    private static func load(weights: URL, configIn directory: URL, trainerState: URL) throws -> LanguageModel {
        let (config, tokenizer) = try RunDirectory.loadConfig(in: directory)
        let network = try Network(config: config.model)
        try network.loadWeights(SafeTensors(contentsOf: weights), source: weights.path)
        let state = try? TrainerState.load(from: trainerState)
        return LanguageModel(
            tokenizer: tokenizer, network: network, config: config, trainerState: state, weightsURL: weights)
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
