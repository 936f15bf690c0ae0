import CharLM
import Foundation

/// A JSON value as a client sent it, kinds kept apart (a boolean is not a number).
public enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), int(Int64), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public static func parseObject(_ bytes: [UInt8]) throws(OpenAIError) -> [String: JSONValue] {
        guard nestingDepth(bytes) <= maxDepth else {
            throw OpenAIError(status: 400, message: "the body nests deeper than \(maxDepth) levels")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw OpenAIError(status: 400, message: "the body is not valid JSON")
        }
        guard case .object(let object) = value else {
            throw OpenAIError(status: 400, message: "the body must be a JSON object")
        }
        return object
    }

    /// Arrays and objects nest at most this deep in a request (decoding recurses).
    static let maxDepth = 64

    /// The deepest nesting of [ and { outside strings.
    static func nestingDepth(_ bytes: [UInt8]) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == 0x5C {
                    escaped = true
                } else if byte == 0x22 {
                    inString = false
                }
                continue
            }
            switch byte {
            case 0x22: inString = true
            case 0x5B, 0x7B:
                depth += 1
                deepest = max(deepest, depth)
            case 0x5D, 0x7D: depth -= 1
            default: break
            }
        }
        return deepest
    }

    var number: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
}

/// Field readers that name the field in their errors.
struct Fields {
    let object: [String: JSONValue]

    func bad(_ name: String, _ message: String) -> OpenAIError {
        OpenAIError(status: 400, message: "'\(name)': \(message)", param: name, code: "invalid_value")
    }

    func present(_ name: String) -> JSONValue? {
        guard let value = object[name], value != .null else { return nil }
        return value
    }

    func int(_ name: String, in range: ClosedRange<Int64>) throws(OpenAIError) -> Int? {
        guard let value = present(name) else { return nil }
        let number: Int64
        switch value {
        case .int(let i): number = i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: number = Int64(d)
        default: throw bad(name, "expected an integer")
        }
        guard range.contains(number) else {
            throw bad(name, "must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return Int(number)
    }

    func double(_ name: String, in range: ClosedRange<Double>) throws(OpenAIError) -> Double? {
        guard let value = present(name) else { return nil }
        guard let number = value.number, number.isFinite else { throw bad(name, "expected a number") }
        guard range.contains(number) else {
            throw bad(name, "must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return number
    }

    func bool(_ name: String) throws(OpenAIError) -> Bool? {
        guard let value = present(name) else { return nil }
        guard case .bool(let b) = value else { throw bad(name, "expected true or false") }
        return b
    }

    /// A string, or an array of strings (`maxCount` at most).
    func strings(_ name: String, maxCount: Int) throws(OpenAIError) -> [String]? {
        guard let value = present(name) else { return nil }
        switch value {
        case .string(let s): return [s]
        case .array(let items):
            guard items.count <= maxCount else { throw bad(name, "at most \(maxCount) strings") }
            return try items.map { item throws(OpenAIError) in
                guard case .string(let s) = item else { throw bad(name, "expected a string or an array of strings") }
                return s
            }
        default: throw bad(name, "expected a string or an array of strings")
        }
    }
}

/// A parsed `POST /v1/completions`.
public struct CompletionParameters: Sendable {
    public var prompts: [String]
    public var maxTokens: Int
    public var options: SamplingOptions
    public var n: Int
    public var seed: UInt64?
    public var stop: [String]
    public var stream: Bool
    public var includeUsage: Bool
    public var logprobs: Int?
    public var echo: Bool

    /// Every field OpenAI's completions endpoint takes; the ones charlm cannot honour must keep
    /// their neutral value.
    static let known: Set<String> = [
        "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "seed", "stop", "stream",
        "stream_options", "logprobs", "echo", "user", "presence_penalty", "frequency_penalty", "repetition_penalty",
        "best_of", "logit_bias", "suffix",
    ]

    public init(_ object: [String: JSONValue], limits: ServeLimits) throws(OpenAIError) {
        let f = Fields(object: object)
        for key in object.keys.sorted() where !Self.known.contains(key) {
            throw OpenAIError(
                status: 400, message: "Unrecognized request argument supplied: \(key)", param: key,
                code: "unknown_parameter")
        }
        prompts = try f.strings("prompt", maxCount: limits.maxN) ?? [""]
        if prompts.isEmpty { throw f.bad("prompt", "must not be an empty array") }
        maxTokens = try f.int("max_tokens", in: 0...Int64(limits.maxTokens)) ?? min(16, limits.maxTokens)
        n = try f.int("n", in: 1...Int64(limits.maxN)) ?? 1
        if prompts.count * n > limits.maxN {
            throw f.bad("n", "\(prompts.count) prompts × n = \(prompts.count * n) samples; at most \(limits.maxN)")
        }
        let temperature = try f.double("temperature", in: 0...10) ?? 1
        let topP = try f.double("top_p", in: 0...1) ?? 1
        if topP == 0 { throw f.bad("top_p", "must be above 0") }
        let topK = try f.int("top_k", in: -1...1_000_000) ?? 0
        let penalty = try f.double("repetition_penalty", in: 0.01...100) ?? 1
        options = SamplingOptions(
            temperature: Float(temperature), topK: topK > 0 ? topK : nil, topP: topP < 1 ? Float(topP) : nil,
            repetitionPenalty: Float(penalty))
        if let value = f.present("seed") {
            switch value {
            case .int(let i): seed = UInt64(bitPattern: i)
            case .double(let d) where d >= 0 && d < 1.8e19 && d.rounded() == d: seed = UInt64(d)
            default: throw f.bad("seed", "expected an integer")
            }
        }
        stop = try f.strings("stop", maxCount: 4) ?? []
        if stop.contains("") { throw f.bad("stop", "a stop string must not be empty") }
        stream = try f.bool("stream") ?? false
        includeUsage = false
        if let options = f.present("stream_options") {
            guard case .object(let o) = options else { throw f.bad("stream_options", "expected an object") }
            includeUsage = try Fields(object: o).bool("include_usage") ?? false
        }
        logprobs = try f.int("logprobs", in: 0...5)
        echo = try f.bool("echo") ?? false
        for name in ["presence_penalty", "frequency_penalty"] {
            if let value = try f.double(name, in: -2...2), value != 0 {
                throw f.bad(name, "charlm does not support it; use repetition_penalty (an extension), e.g. 1.2")
            }
        }
        if let bestOf = try f.int("best_of", in: 1...Int64(limits.maxN)), bestOf != n {
            throw f.bad("best_of", "charlm does not support it; leave it out or equal to n")
        }
        if let bias = f.present("logit_bias"), bias != .object([:]) {
            throw f.bad("logit_bias", "charlm does not support it")
        }
        if let suffix = f.present("suffix"), suffix != .string("") {
            throw f.bad("suffix", "charlm does not support it")
        }
        if let model = f.present("model"), case .string = model {
        } else if f.present("model") != nil {
            throw f.bad("model", "expected a string")
        }
        if let user = f.present("user"), case .string = user {
        } else if f.present("user") != nil {
            throw f.bad("user", "expected a string")
        }
    }
}

public struct ServeLimits: Sendable {
    public var maxTokens = 4096
    public var maxPromptUnits = 8192
    public var maxN = 16

    public init(maxTokens: Int = 4096, maxPromptUnits: Int = 8192, maxN: Int = 16) {
        self.maxTokens = maxTokens
        self.maxPromptUnits = maxPromptUnits
        self.maxN = maxN
    }
}
