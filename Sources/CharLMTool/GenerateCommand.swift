import ArgumentParser
import CharLM
import CharNN
import Foundation

extension LanguageModel.Checkpoint: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// `charlm generate RUN`: sample text from a trained model.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a trained model.",
        discussion: """
            RUN is a run directory (its best checkpoint is used, unless --checkpoint latest) or a \
            model.safetensors with config.json and tokenizer.json beside it. The text streams to \
            stdout as it is produced, after the prompt (unless --no-echo). An empty prompt starts \
            as if at the beginning of a line.
            """
    )

    @Argument(help: ArgumentHelp("Run directory or model.safetensors.", valueName: "run"))
    var runPath: String

    @Option(help: "Text to continue; '-' reads it from stdin.")
    var prompt: String = ""

    @Option(help: "Characters (units) to generate per sample.")
    var length = 500

    @Option(help: "Sampling temperature; 0 always picks the most likely character.")
    var temperature: Float = 1

    @Option(help: "Sample only among the K most likely characters.")
    var topK: Int?

    @Option(help: "Sample only among the most likely characters whose probabilities sum to P.")
    var topP: Float?

    @Option(help: "Penalise characters seen in the last 64 (1 = off; 1.1–1.3 curbs loops).")
    var repetitionPenalty: Float = 1

    @Option(help: "Random seed; the same seed gives the same text (default: random, reported with --json).")
    var seed: UInt64?

    @Option(help: "Number of samples, generated together as one batch.")
    var numSamples = 1

    @Option(help: "End a sample when this string appears (repeatable); the string is not printed.")
    var stop: [String] = []

    @Flag(help: "Do not print the prompt before the generated text.")
    var noEcho = false

    @Flag(help: "Print one JSON object (text, tokens, seed) instead of streaming text.")
    var json = false

    @Option(help: "Which checkpoint of a run directory: best, latest, or step-N (kept with --keep-checkpoints).")
    var checkpoint: LanguageModel.Checkpoint = .best

    @Option(
        help: ArgumentHelp(
            "Weights while generating: int8 (a quarter of the memory traffic; what `charlm eval --precision int8` "
                + "measures) or f32 (exactly as trained).",
            valueName: "precision"))
    var precision: WeightPrecision = .int8

    func validate() throws {
        if length < 0 { throw ValidationError("--length must not be negative.") }
        if numSamples < 1 || numSamples > 10_000 { throw ValidationError("--num-samples must be between 1 and 10000.") }
        if !(temperature >= 0) || !temperature.isFinite {
            throw ValidationError("--temperature must be 0 or positive.")
        }
        if let topK, topK < 1 { throw ValidationError("--top-k must be at least 1.") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1].") }
        if !(repetitionPenalty > 0) { throw ValidationError("--repetition-penalty must be positive.") }
        if stop.contains("") { throw ValidationError("--stop needs a non-empty string.") }
    }

    /// After one int8 sample, saves the int8 weights beside the float32 ones so that the next
    /// run starts sooner; quietly skipped where the directory is read-only or the run trains.
    private func saveQuantizedWeights(_ model: LanguageModel) {
        guard let url = try? model.saveQuantizedWeights() else { return }
        if !json { Console.note("charlm: saved the int8 weights to \(url.path): later runs start sooner") }
    }

    func run() throws {
        try Console.run {
            let model = try LanguageModel.load(URL(fileURLWithPath: runPath), checkpoint: checkpoint)
            try model.checkGenerates()
            var promptText = prompt
            if prompt == "-" {
                let data = FileHandle.standardInput.readDataToEndOfFile()
                guard let text = String(data: data, encoding: .utf8) else {
                    throw CharLMError.badPrompt("the prompt on stdin is not valid UTF-8")
                }
                promptText = text
            }
            let baseSeed = seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
            if seed == nil && !json {
                Console.note("charlm: seed \(baseSeed) (pass --seed \(baseSeed) to get this text again)")
            }
            let request = GenerationRequest(
                prompt: promptText, length: length,
                options: SamplingOptions(
                    temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty),
                seed: baseSeed, numSamples: numSamples, stop: stop, precision: precision)
            let generation = try BatchGeneration(model: model, request: request)
            if json {
                let samples = try generation.run()
                var object: [String: Any] = [
                    "prompt": generation.promptText, "seed": baseSeed, "model": model.weightsURL.path,
                    "temperature": Double(temperature), "length": length, "precision": precision.rawValue,
                    "samples": samples.map { s -> [String: Any] in
                        [
                            "text": s.text, "tokens": s.tokens.map(Int.init), "seed": s.seed,
                            "stopped_by": s.stoppedBy.map { $0 as Any } ?? NSNull(),
                        ]
                    },
                ]
                if numSamples == 1 { object["text"] = samples[0].text }
                Console.out(Console.json(object) + "\n")
                if numSamples == 1 && precision == .int8 { saveQuantizedWeights(model) }
                return
            }
            if numSamples == 1 {
                if !noEcho { Console.out(generation.promptText) }
                _ = try generation.run { _, piece in if !piece.isEmpty { Console.out(piece) } }
                Console.out("\n")
                if precision == .int8 { saveQuantizedWeights(model) }
            } else {
                let samples = try generation.run()
                for (i, s) in samples.enumerated() {
                    if i > 0 { Console.out("\n") }
                    Console.out("=== sample \(i + 1) of \(numSamples) (seed \(s.seed)) ===\n")
                    Console.out((noEcho ? "" : generation.promptText) + s.text + "\n")
                }
            }
        }
    }
}
