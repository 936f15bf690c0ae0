import CharNN
import CharTokenizer
import Foundation

/// What to generate.
public struct GenerationRequest: Sendable {
    public var prompt: String
    /// Units to generate per sample (after the prompt).
    public var length: Int
    public var options: SamplingOptions
    /// Sample `i` draws from a generator seeded with `seed + i`, so a sample does not depend
    /// on how many others run beside it.
    public var seed: UInt64
    public var numSamples: Int
    /// A sample ends when its text contains one of these (the stop string is not returned).
    public var stop: [String]
    /// How the weights are stored while generating: int8 (the default) reads a quarter of
    /// the bytes per character; its held-out loss is within a few thousandths of a nat of
    /// float32's (measured in the README), and `.f32` computes exactly what was trained.
    public var precision: WeightPrecision
    /// Threads that step one sample (default: every core).
    public var threads: Int = BatchRunner.defaultThreads

    public init(
        prompt: String = "", length: Int = 500, options: SamplingOptions = SamplingOptions(), seed: UInt64 = 0,
        numSamples: Int = 1, stop: [String] = [], precision: WeightPrecision = .int8
    ) {
        self.prompt = prompt
        self.length = length
        self.options = options
        self.seed = seed
        self.numSamples = numSamples
        self.stop = stop
        self.precision = precision
    }

    public func validate() throws {
        try options.validate()
        guard length >= 0 else { throw CharLMError.invalidOptions("the length must not be negative") }
        guard numSamples >= 1 && numSamples <= 10_000 else {
            throw CharLMError.invalidOptions("the number of samples must be between 1 and 10000")
        }
        guard !stop.contains("") else { throw CharLMError.invalidOptions("a stop string must not be empty") }
    }
}

/// One generated sample.
public struct GeneratedSample: Sendable, Equatable {
    /// The generated text (without the prompt, without the stop string).
    public var text: String
    /// The generated token ids (including those of a stop string, if one ended the sample).
    public var tokens: [Int32]
    /// The stop string that ended the sample, if any.
    public var stoppedBy: String?
    /// The seed this sample was drawn with.
    public var seed: UInt64
}

/// Generates a batch of samples together: one forward pass per step for all of them.
public final class BatchGeneration {
    public let model: LanguageModel
    public let request: GenerationRequest
    /// The prompt as the model saw it (normalized).
    public let promptText: String
    public let promptIDs: [Int32]
    private let session: InferenceSession
    private var streams: [SampleStream]
    private var logits: [Float]
    public private(set) var steps = 0

    /// The samples so far.
    public var samples: [GeneratedSample] { streams.map(\.sample) }

    /// Encodes the prompt and primes the network with it.
    /// - Throws: `CharLMError.badPrompt` or `.invalidOptions`.
    public init(model: LanguageModel, request: GenerationRequest) throws {
        try model.checkGenerates()
        try request.validate()
        self.model = model
        self.request = request
        let ids = try model.encodePrompt(request.prompt)
        promptIDs = ids
        promptText = model.tokenizer.decode(ids)
        let n = request.numSamples
        if n == 1 && request.precision == .int8 && !model.config.model.bidirectional {
            // One stream at int8 reads the int8 weights (from the saved file when there is
            // one), not the float32 network.
            session = InferenceSession(quantized: model.quantizedWeights, threads: max(1, request.threads)) {
                model.network
            }
        } else {
            session = InferenceSession(
                network: model.network, batchSize: n, precision: request.precision, threads: max(1, request.threads))
        }
        let utf8Guard = ValidUTF8Guard(tokenizer: model.tokenizer)
        streams = (0..<n).map {
            SampleStream(
                tokenizer: model.tokenizer, promptIDs: ids, length: request.length, options: request.options,
                seed: request.seed &+ UInt64($0), stop: request.stop, utf8Guard: utf8Guard)
        }
        let prime = ids.isEmpty ? [model.startID] : ids
        logits = try session.feed((0..<n).flatMap { _ in prime })
    }

    /// Whether every sample has finished.
    public var isFinished: Bool { !streams.contains { $0.isActive } }

    /// Generates one unit for every unfinished sample; calls `emit(sample, text)` with the text
    /// that became final (possibly empty while a stop string might be forming).
    public func step(_ emit: (Int, String) -> Void) throws {
        guard !isFinished else { return }
        let v = model.tokenizer.vocabularySize
        var next = [Int32](repeating: 0, count: streams.count)
        for i in streams.indices {
            guard streams[i].isActive else {
                next[i] = streams[i].lastID
                continue
            }
            let (id, text) = try streams[i].advance(logits: logits[(i * v)..<((i + 1) * v)])
            next[i] = id
            emit(i, text)
        }
        steps += 1
        if !isFinished { logits = try session.feed(next) }
    }

    /// Runs to the end.
    public func run(_ emit: (Int, String) -> Void = { _, _ in }) throws -> [GeneratedSample] {
        while !isFinished { try step(emit) }
        return samples
    }
}

/// A single sample as a `Sequence` of text pieces, one per generated unit, produced lazily.
public struct TextStream: Sequence, IteratorProtocol {
    private let generation: BatchGeneration
    private var buffer: [String] = []
    /// The error that ended the stream early, if any.
    public private(set) var error: Error?

    public init(model: LanguageModel, request: GenerationRequest) throws {
        var single = request
        single.numSamples = 1
        generation = try BatchGeneration(model: model, request: single)
    }

    public mutating func next() -> String? {
        while buffer.isEmpty {
            if generation.isFinished { return nil }
            var pieces: [String] = []
            do {
                try generation.step { _, text in pieces.append(text) }
            } catch {
                self.error = error
                return nil
            }
            buffer = pieces
        }
        return buffer.removeFirst()
    }

    /// The sample so far.
    public var sample: GeneratedSample { generation.samples[0] }
}

extension LanguageModel {
    /// Generates one sample lazily, one piece of text per unit.
    public func stream(
        prompt: String, length: Int, options: SamplingOptions = SamplingOptions(), seed: UInt64 = 0, stop: [String] = []
    ) throws -> TextStream {
        try TextStream(
            model: self,
            request: GenerationRequest(prompt: prompt, length: length, options: options, seed: seed, stop: stop))
    }

    /// Generates every sample of `request` as one batch.
    public func generate(_ request: GenerationRequest, emit: (Int, String) -> Void = { _, _ in }) throws
        -> [GeneratedSample]
    {
        try BatchGeneration(model: self, request: request).run(emit)
    }
}
