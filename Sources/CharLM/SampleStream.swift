import CharNN
import CharTokenizer

/// One sample being generated, apart from the network: its sampler and random generator, the
/// decoder that turns ids into text, and the stop strings it watches for. `BatchGeneration`
/// and the serving engine step many of these over one batched forward pass.
struct SampleStream {
    let tokenizer: Tokenizer
    /// Units to generate.
    let length: Int
    let stop: [String]
    let repetitionWindow: Int
    private var sampler: StandardSampler
    private var generator: SeededGenerator
    private var decoder: StreamingDecoder
    private var history: [Int32]
    /// Decoded text that might still begin a stop string.
    private var pending = ""
    private(set) var sample: GeneratedSample
    /// For vocabularies with byte tokens: what keeps the sample valid UTF-8.
    private var utf8Guard: ValidUTF8Guard?
    /// Whether the sample wants another id.
    private(set) var isActive: Bool

    init(
        tokenizer: Tokenizer, promptIDs: [Int32], length: Int, options: SamplingOptions, seed: UInt64,
        stop: [String], utf8Guard: ValidUTF8Guard?
    ) {
        self.tokenizer = tokenizer
        self.length = length
        self.stop = stop
        repetitionWindow = options.repetitionWindow
        sampler = StandardSampler(options: options)
        generator = SeededGenerator(seed: seed)
        decoder = StreamingDecoder(tokenizer: tokenizer)
        history = promptIDs
        sample = GeneratedSample(text: "", tokens: [], stoppedBy: nil, seed: seed)
        self.utf8Guard = utf8Guard?.hasByteTokens == true ? utf8Guard : nil
        isActive = length > 0
    }

    /// The id fed to the network after this sample has finished (its batch row still steps).
    var lastID: Int32 { history.last ?? 0 }

    /// Draws the next id from `logits` (one row, vocabulary-sized) and returns it with the text
    /// that became final (possibly empty while a stop string might be forming).
    mutating func advance(logits: ArraySlice<Float>) throws -> (id: Int32, text: String) {
        precondition(isActive, "advance on a finished sample")
        var row = Array(logits)
        let room = length - sample.tokens.count
        if let utf8Guard {
            // Tokens that would make the text invalid UTF-8 cannot be drawn.
            for id in row.indices where !utf8Guard.allows(Int32(id), room: room) { row[id] = -.infinity }
        }
        let id = sampler.sample(logits: row, recent: history.suffix(repetitionWindow), using: &generator)
        utf8Guard?.accept(id)
        history.append(id)
        sample.tokens.append(id)
        pending += try decoder.push(id)
        let final = sample.tokens.count >= length
        if final { pending += decoder.finish() }
        let text = release(final: final)
        if final || sample.stoppedBy != nil { isActive = false }
        return (id, text)
    }

    /// Ends the sample early (the caller's limit or a cancellation); returns the text held back.
    mutating func finish() -> String {
        guard isActive else { return "" }
        isActive = false
        pending += decoder.finish()
        return release(final: true)
    }

    /// Moves the part of the pending text that cannot begin a stop string into the sample's
    /// text, and returns it; on a stop string, ends the sample there.
    ///
    /// Stop strings are matched on UTF-8 bytes (a match of valid UTF-8 inside valid UTF-8
    /// always starts and ends on scalar boundaries), so a stop string fires wherever its
    /// scalars appear, as in OpenAI's API, even inside a grapheme cluster.
    private mutating func release(final: Bool) -> String {
        let text = Array(pending.utf8)
        var earliest: (offset: Int, stop: String)?
        for stop in stop {
            if let offset = Self.firstOffset(of: Array(stop.utf8), in: text), offset < (earliest?.offset ?? .max) {
                earliest = (offset, stop)
            }
        }
        if let earliest {
            sample.stoppedBy = earliest.stop
            let out = String(decoding: text[..<earliest.offset], as: UTF8.self)
            pending = ""
            sample.text += out
            return out
        }
        var keep = 0
        if !final {
            for stop in stop {
                let stopBytes = Array(stop.utf8)
                for length in stride(from: min(stopBytes.count - 1, text.count), to: 0, by: -1)
                where text.suffix(length).elementsEqual(stopBytes.prefix(length)) {
                    keep = max(keep, length)
                    break
                }
            }
        }
        let out = String(decoding: text.prefix(text.count - keep), as: UTF8.self)
        pending = String(decoding: text.suffix(keep), as: UTF8.self)
        sample.text += out
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
}
