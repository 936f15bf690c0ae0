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
    private var samplers: [StandardSampler]
    private var generators: [SeededGenerator]
    private var decoders: [StreamingDecoder]
    private var history: [[Int32]]
    private var pending: [String]
    public private(set) var samples: [GeneratedSample]
    private var active: [Bool]
    private var logits: [Float]
    /// For vocabularies with byte tokens: what keeps each sample valid UTF-8.
    private var utf8Guards: [ValidUTF8Guard]?
    public private(set) var steps = 0

    /// Encodes the prompt and primes the network with it.
    /// - Throws: `CharLMError.badPrompt` or `.invalidOptions`.
    public init(model: LanguageModel, request: GenerationRequest) throws {
        try request.validate()
        self.model = model
        self.request = request
        let ids = try model.encodePrompt(request.prompt)
        promptIDs = ids
        promptText = model.tokenizer.decode(ids)
        let n = request.numSamples
        session = InferenceSession(
            network: model.network, batchSize: n, precision: request.precision, threads: max(1, request.threads))
        samplers = Array(repeating: StandardSampler(options: request.options), count: n)
        generators = (0..<n).map { SeededGenerator(seed: request.seed &+ UInt64($0)) }
        decoders = Array(repeating: StreamingDecoder(tokenizer: model.tokenizer), count: n)
        history = Array(repeating: ids, count: n)
        pending = Array(repeating: "", count: n)
        samples = (0..<n).map {
            GeneratedSample(text: "", tokens: [], stoppedBy: nil, seed: request.seed &+ UInt64($0))
        }
        active = Array(repeating: request.length > 0, count: n)
        let utf8Guard = ValidUTF8Guard(tokenizer: model.tokenizer)
        utf8Guards = utf8Guard.hasByteTokens ? Array(repeating: utf8Guard, count: n) : nil
        let prime = ids.isEmpty ? [model.startID] : ids
        logits = try session.feed((0..<n).flatMap { _ in prime })
    }

    /// Whether every sample has finished.
    public var isFinished: Bool { !active.contains(true) }

    /// Generates one unit for every unfinished sample; calls `emit(sample, text)` with the text
    /// that became final (possibly empty while a stop string might be forming).
    public func step(_ emit: (Int, String) -> Void) throws {
        guard !isFinished else { return }
        let v = model.tokenizer.vocabularySize
        var next = [Int32](repeating: 0, count: request.numSamples)
        for i in 0..<request.numSamples {
            guard active[i] else {
                next[i] = samples[i].tokens.last ?? promptIDs.last ?? 0
                continue
            }
            var row = Array(logits[(i * v)..<((i + 1) * v)])
            let room = request.length - samples[i].tokens.count
            if let utf8Guard = utf8Guards?[i] {
                // Tokens that would make the text invalid UTF-8 cannot be drawn.
                for id in 0..<v where !utf8Guard.allows(Int32(id), room: room) { row[id] = -.infinity }
            }
            let window = history[i].suffix(request.options.repetitionWindow)
            let id = samplers[i].sample(logits: row, recent: window, using: &generators[i])
            utf8Guards?[i].accept(id)
            next[i] = id
            history[i].append(id)
            samples[i].tokens.append(id)
            pending[i] += try decoders[i].push(id)
            if samples[i].tokens.count >= request.length { pending[i] += decoders[i].finish() }
            emit(i, release(i, final: samples[i].tokens.count >= request.length))
            if samples[i].tokens.count >= request.length || samples[i].stoppedBy != nil { active[i] = false }
        }
        steps += 1
        if !isFinished { logits = try session.feed(next) }
    }

    /// Moves the part of sample i's pending text that cannot begin a stop string into its
    /// text, and returns it; on a stop string, ends the sample there.
    ///
    /// Stop strings are matched on UTF-8 bytes (a match of valid UTF-8 inside valid UTF-8
    /// always starts and ends on scalar boundaries), so a stop string fires wherever its
    /// scalars appear, as in OpenAI's API, even inside a grapheme cluster.
    private func release(_ i: Int, final: Bool) -> String {
        let text = Array(pending[i].utf8)
        var earliest: (offset: Int, stop: String)?
        for stop in request.stop {
            if let offset = Self.firstOffset(of: Array(stop.utf8), in: text), offset < (earliest?.offset ?? .max) {
                earliest = (offset, stop)
            }
        }
        if let earliest {
            samples[i].stoppedBy = earliest.stop
            let out = String(decoding: text[..<earliest.offset], as: UTF8.self)
            pending[i] = ""
            samples[i].text += out
            return out
        }
        var keep = 0
        if !final {
            for stop in request.stop {
                let stopBytes = Array(stop.utf8)
                for length in stride(from: min(stopBytes.count - 1, text.count), to: 0, by: -1)
                where text.suffix(length).elementsEqual(stopBytes.prefix(length)) {
                    keep = max(keep, length)
                    break
                }
            }
        }
        let out = String(decoding: text.prefix(text.count - keep), as: UTF8.self)
        pending[i] = String(decoding: text.suffix(keep), as: UTF8.self)
        samples[i].text += out
        return out
    }

    /// Byte offset of the first occurrence of `needle` in `haystack`.
    static func firstOffset(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
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
