import CharLM
import CharNN
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Events of several jobs, handed from the engine's thread to a connection's thread.
public final class EventQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var events: [(Int, CompletionEvent)] = []

    public func push(_ index: Int, _ event: CompletionEvent) {
        condition.lock()
        events.append((index, event))
        condition.signal()
        condition.unlock()
    }

    /// Everything queued, waiting up to `timeout` seconds for the first.
    public func take(timeout: Double) -> [(Int, CompletionEvent)] {
        condition.lock()
        defer { condition.unlock() }
        if events.isEmpty { _ = condition.wait(until: Date().addingTimeInterval(timeout)) }
        let out = events
        events.removeAll()
        return out
    }
}

/// Answers the API's requests with one shared engine.
public final class CompletionService: @unchecked Sendable {
    public let model: LanguageModel
    public let name: String
    public let engine: GenerationEngine
    public let limits: ServeLimits
    let apiKey: String?
    /// Host names accepted in the Host header (nil: any).
    let allowedHosts: Set<String>?
    /// Where the one line per request goes.
    let log: @Sendable (String) -> Void
    let created = Int(Date().timeIntervalSince1970)
    private let traceLock = NSLock()
    /// Units of text `/api/trace` reads at most (the rest is left out).
    public static let maxTraceUnits = 4096

    public init(
        model: LanguageModel, name: String, engine: GenerationEngine, limits: ServeLimits, apiKey: String?,
        allowedHosts: Set<String>? = nil, log: @escaping @Sendable (String) -> Void
    ) {
        self.allowedHosts = allowedHosts
        self.model = model
        self.name = name
        self.engine = engine
        self.limits = limits
        self.apiKey = apiKey
        self.log = log
    }

    public func handle(_ request: HTTPRequest, _ connection: HTTPConnection) {
        let start = Date()
        var status = 200
        var detail = ""
        do {
            (status, detail) = try route(request, connection)
        } catch {
            status = error.status
            detail = error.message
            sendJSON(connection, request, status: status, error.json)
        }
        let seconds = String(format: "%.3f", Date().timeIntervalSince(start))
        log(
            Self.printable(
                "\(ISO8601DateFormatter().string(from: Date())) \(connection.peer) \(request.method) \(request.path) "
                    + "\(status) \(seconds)s\(detail.isEmpty ? "" : " " + detail)"))
    }

    private func sendJSON(_ connection: HTTPConnection, _ request: HTTPRequest, status: Int = 200, _ body: String) {
        var headers = [("Content-Type", "application/json")]
        if status == 429 { headers.append(("Retry-After", "1")) }
        connection.send(status: status, headers: headers, body: Array(body.utf8), keepAlive: request.keepAlive)
    }

    /// Answers one request; returns its status and a detail for the log.
    private func route(_ request: HTTPRequest, _ connection: HTTPConnection) throws(OpenAIError) -> (Int, String) {
        guard let host = request.header("Host") ?? (request.version == "HTTP/1.0" ? "" : nil) else {
            throw OpenAIError(status: 400, message: "an HTTP/1.1 request needs a Host header")
        }
        if let allowedHosts, !host.isEmpty, !Self.isIPLiteral(Self.hostName(host)),
            !allowedHosts.contains(Self.hostName(host))
        {
            // A page elsewhere cannot reach a server on this machine through a name it controls
            // (DNS rebinding, which needs a name): without an API key, only addresses and this
            // server's own names are accepted.
            throw OpenAIError(
                status: 403,
                message: "Host '\(host)' is not this server's; start it with --api-key to accept other names")
        }
        let needsKey = request.path.hasPrefix("/v1/") || request.path.hasPrefix("/api/")
        if needsKey, let apiKey {
            let given = request.header("Authorization") ?? ""
            guard Self.constantTimeEqual(Array(given.utf8), Array("Bearer \(apiKey)".utf8)) else {
                throw OpenAIError(status: 401, message: "missing or wrong API key (Authorization: Bearer KEY)")
            }
        }
        func method(_ allowed: String) throws(OpenAIError) {
            guard request.method == allowed else {
                throw OpenAIError(status: 405, message: "\(request.path) takes \(allowed), not \(request.method)")
            }
            // JSON only: a cross-site form or text/plain post cannot reach the API.
            let type = request.header("Content-Type")?.lowercased() ?? ""
            guard allowed != "POST" || type.hasPrefix("application/json") else {
                throw OpenAIError(status: 415, message: "send the body as JSON, with Content-Type: application/json")
            }
        }
        switch request.path {
        case "/", "/index.html":
            try method("GET")
            connection.send(
                status: 200,
                headers: [
                    ("Content-Type", "text/html; charset=utf-8"),
                    (
                        "Content-Security-Policy",
                        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
                    ),
                ], body: Array(PlaygroundPage.html.utf8), keepAlive: request.keepAlive)
            return (200, "")
        case "/favicon.ico":
            connection.send(status: 204, headers: [], body: [], keepAlive: request.keepAlive)
            return (204, "")
        case "/health":
            try method("GET")
            let load = engine.load
            sendJSON(
                connection, request,
                JSON.encode(["status": "ok", "running": load.running, "waiting": load.waiting, "model": name]))
            return (200, "")
        case "/v1/models":
            try method("GET")
            sendJSON(connection, request, JSON.encode(["object": "list", "data": [modelObject]]))
            return (200, "")
        case "/v1/models/\(name)":
            try method("GET")
            sendJSON(connection, request, JSON.encode(modelObject))
            return (200, "")
        case "/v1/completions":
            try method("POST")
            return try complete(request, connection)
        case "/api/trace":
            try method("POST")
            return try trace(request, connection)
        default:
            if request.path.hasPrefix("/v1/models/") {
                throw OpenAIError(
                    status: 404, message: "The model '\(request.path.dropFirst(11))' does not exist", param: "model",
                    code: "model_not_found")
            }
            throw OpenAIError(status: 404, message: "no such endpoint: \(request.method) \(request.path)")
        }
    }

    private var modelObject: [String: Any] {
        let c = model.network.config
        return [
            "id": name, "object": "model", "created": created, "owned_by": "charlm",
            "charlm": [
                "cell": c.cell.rawValue, "layers": c.layers, "hidden_size": c.hiddenSize,
                "vocabulary_size": c.vocabularySize,
            ],
        ]
    }

    /// `text` with control characters (C0, DEL, C1) as "?": the log line quotes the client.
    static func printable(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { $0.value < 32 || (0x7F...0x9F).contains($0.value) ? "?" : $0 }))
    }

    /// Whether `host` is an IPv4 or IPv6 address rather than a name.
    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// The host part of a Host header: "127.0.0.1:8080" → "127.0.0.1", "[::1]:80" → "::1".
    static func hostName(_ header: String) -> String {
        let value = header.lowercased()
        if value.hasPrefix("["), let end = value.firstIndex(of: "]") {
            return String(value[value.index(after: value.startIndex)..<end])
        }
        return String(value.split(separator: ":", maxSplits: 1).first ?? "")
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return difference == 0
    }

    // MARK: - Completions

    private struct Choice {
        var text = ""
        var units: [UnitLogprob] = []
        var finish: String?
        var completionTokens = 0
        /// UTF-16 offset of the next unit's text (OpenAI's text_offset), echo included.
        var unitOffset = 0
    }

    private func complete(_ request: HTTPRequest, _ connection: HTTPConnection) throws(OpenAIError) -> (Int, String) {
        let p = try CompletionParameters(JSONValue.parseObject(request.body), limits: limits)
        if p.echo && p.logprobs != nil {
            throw OpenAIError(
                status: 400,
                message: "'echo' with 'logprobs': charlm does not return the prompt's logprobs; leave out one of them",
                param: "echo", code: "unsupported_value")
        }
        var promptIDs: [[Int32]] = []
        for prompt in p.prompts {
            let ids: [Int32]
            do {
                ids = try model.encodePrompt(prompt)
            } catch {
                throw OpenAIError(
                    status: 400, message: "'prompt': \(error.localizedDescription)", param: "prompt",
                    code: "unknown_characters")
            }
            if ids.count > limits.maxPromptUnits {
                throw OpenAIError(
                    status: 400,
                    message:
                        "'prompt': \(ids.count) units; this server takes at most \(limits.maxPromptUnits) (--max-prompt)",
                    param: "prompt", code: "prompt_too_long")
            }
            promptIDs.append(ids)
        }
        let seed = p.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        let queue = EventQueue()
        var tickets: [GenerationEngine.Ticket] = []
        // Choice i is sample i % n of prompt i / n, seeded seed + i % n as `charlm generate` seeds
        // its samples.
        for i in 0..<(p.prompts.count * p.n) {
            let job = CompletionJob(
                promptIDs: promptIDs[i / p.n], maxTokens: p.maxTokens, options: p.options,
                seed: seed &+ UInt64(i % p.n),
                stop: p.stop, logprobs: p.logprobs)
            do {
                tickets.append(try engine.submit(job) { event in queue.push(i, event) })
            } catch {
                for t in tickets { engine.cancel(t) }
                switch error {
                case GenerationEngine.EngineError.busy:
                    throw OpenAIError(
                        status: 429, message: "the server is busy: too many samples waiting; retry shortly")
                case GenerationEngine.EngineError.stopped:
                    throw OpenAIError(status: 503, message: "the server is shutting down")
                default:
                    throw OpenAIError(status: 400, message: error.localizedDescription)
                }
            }
        }
        let id = "cmpl-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let echoes = promptIDs.map { p.echo ? model.tokenizer.decode($0) : "" }
        var choices = [Choice](repeating: Choice(), count: tickets.count)
        for i in choices.indices {
            choices[i].text = echoes[i / p.n]
            choices[i].unitOffset = echoes[i / p.n].utf16.count
        }
        var finished = 0
        var usage: [String: Any] {
            // Each prompt counts once, however many samples continue it (as OpenAI counts).
            let prompt = promptIDs.reduce(0) { $0 + $1.count }
            let completion = choices.reduce(0) { $0 + $1.completionTokens }
            return ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion]
        }
        // Stream chunks are written by hand: JSONSerialization per character was the server's
        // bottleneck (about 100 µs each on Linux).
        let chunkHead = "{\"choices\":[{\"finish_reason\":"
        let chunkTail = ",\"id\":\(JSON.quote(id)),\"model\":\(JSON.quote(name)),\"object\":\"text_completion\"}\n\n"
        func chunk(_ index: Int, text: String, units: [UnitLogprob], finish: String?, offset: Int = 0) -> [UInt8] {
            var s = "data: " + chunkHead + (finish.map(JSON.quote) ?? "null") + ",\"index\":\(index),\"logprobs\":"
            s += p.logprobs == nil ? "null" : Self.logprobsJSON(units, offset: offset)
            s += ",\"text\":" + JSON.quote(text) + "}],\"created\":\(Int(Date().timeIntervalSince1970))" + chunkTail
            return Array(s.utf8)
        }
        if p.stream {
            connection.startChunks(
                status: 200,
                headers: [
                    ("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"),
                ], request: request)
            if p.echo {
                for i in choices.indices where !echoes[i / p.n].isEmpty {
                    connection.sendChunk(chunk(i, text: echoes[i / p.n], units: [], finish: nil))
                }
            }
        }
        var lastCheck = Date()
        while finished < choices.count {
            let events = queue.take(timeout: 0.05)
            // A client that left is noticed within 50 ms, between events or while waiting.
            if -lastCheck.timeIntervalSinceNow >= 0.05 || events.isEmpty, connection.clientGone {
                for t in tickets { engine.cancel(t) }
                return (499, "client closed the connection; generation stopped")
            }
            if -lastCheck.timeIntervalSinceNow >= 0.05 { lastCheck = Date() }
            // What arrived together goes out in one write: per choice, one chunk with its new
            // text (and units), then the chunks of the choices that ended.
            var fresh: [Int: (text: String, units: [UnitLogprob], offset: Int)] = [:]
            var ends: [(Int, String)] = []
            for (i, event) in events {
                switch event {
                case .text(let text, let units):
                    if p.stream && (!text.isEmpty || !units.isEmpty) {
                        fresh[i, default: ("", [], choices[i].unitOffset)].text += text
                        fresh[i]!.units += units
                    }
                    choices[i].unitOffset += units.reduce(0) { $0 + $1.unit.utf16.count }
                    choices[i].text += text
                    choices[i].units += units
                case .finished(let reason, let count):
                    choices[i].finish = reason
                    choices[i].completionTokens = count
                    finished += 1
                    ends.append((i, reason))
                case .failed(let message):
                    for t in tickets { engine.cancel(t) }
                    let error = OpenAIError(status: 500, message: "generation failed: \(message)")
                    guard p.stream else { throw error }
                    connection.sendChunk(Array("data: \(error.json)\n\n".utf8))
                    connection.endChunks()
                    return (500, error.message)
                }
            }
            if p.stream {
                var out: [UInt8] = []
                for i in fresh.keys.sorted() {
                    let f = fresh[i]!
                    out += chunk(i, text: f.text, units: f.units, finish: nil, offset: f.offset)
                }
                for (i, reason) in ends { out += chunk(i, text: "", units: [], finish: reason) }
                if !out.isEmpty { connection.sendChunk(out) }
            }
            if p.stream && connection.broken {
                for t in tickets { engine.cancel(t) }
                return (499, "client closed the connection; generation stopped")
            }
        }
        let completion = choices.reduce(0) { $0 + $1.completionTokens }
        if p.stream {
            if p.includeUsage {
                connection.sendChunk(
                    Self.event([
                        "id": id, "object": "text_completion", "created": Int(Date().timeIntervalSince1970),
                        "model": name, "choices": [Any](), "usage": usage,
                    ]))
            }
            connection.sendChunk(Array("data: [DONE]\n\n".utf8))
            connection.endChunks()
        } else {
            // Written by hand like the stream's chunks: JSONSerialization took 2 s for the
            // logprobs of 100,000 characters.
            let choicesJSON = choices.enumerated().map { i, c in
                "{\"finish_reason\":" + JSON.quote(c.finish ?? "length") + ",\"index\":\(i),\"logprobs\":"
                    + (p.logprobs == nil ? "null" : Self.logprobsJSON(c.units, offset: echoes[i / p.n].utf16.count))
                    + ",\"text\":" + JSON.quote(c.text) + "}"
            }
            let body =
                "{\"choices\":[" + choicesJSON.joined(separator: ",")
                + "],\"created\":\(Int(Date().timeIntervalSince1970))"
                + ",\"id\":" + JSON.quote(id) + ",\"model\":" + JSON.quote(name) + ",\"object\":\"text_completion\""
                + ",\"usage\":" + JSON.encode(usage) + "}"
            sendJSON(connection, request, body)
        }
        return (200, "n=\(choices.count) units=\(completion)\(p.stream ? " stream" : "")")
    }

    static func event(_ object: [String: Any]) -> [UInt8] {
        Array("data: \(JSON.encode(object))\n\n".utf8)
    }

    /// OpenAI's legacy completions logprobs (tokens, token_logprobs, top_logprobs, text_offset)
    /// as JSON text, written directly: for stream chunks and whole completions alike.
    static func logprobsJSON(_ units: [UnitLogprob], offset: Int) -> String {
        var offsets: [String] = []
        var position = offset
        for u in units {
            offsets.append(String(position))
            position += u.unit.utf16.count
        }
        let top = units.map { u in
            "{" + u.top.map { JSON.quote($0.unit) + ":" + JSON.number($0.logprob) }.joined(separator: ",") + "}"
        }
        return "{\"text_offset\":[" + offsets.joined(separator: ",") + "],\"token_logprobs\":["
            + units.map { JSON.number($0.logprob) }.joined(separator: ",") + "],\"tokens\":["
            + units.map { JSON.quote($0.unit) }.joined(separator: ",") + "],\"top_logprobs\":["
            + top.joined(separator: ",") + "]}"
    }

    // MARK: - Neuron view

    /// `POST /api/trace {"text", "layer"?, "unit"?, "kind"?}`: the surprise of every unit of the
    /// text, one neuron's activation over it, and the neurons that best follow simple properties
    /// of the text (what `charlm explain` computes).
    private func trace(_ request: HTTPRequest, _ connection: HTTPConnection) throws(OpenAIError) -> (Int, String) {
        let object = try JSONValue.parseObject(request.body)
        let f = Fields(object: object)
        guard case .string(let text)? = f.present("text") else { throw f.bad("text", "expected a string") }
        let config = model.network.config
        let layer = try f.int("layer", in: 0...Int64(config.layers - 1))
        let unit = try f.int("unit", in: 0...Int64(config.hiddenSize - 1))
        var kind = ActivationTrace.Kind.hidden
        if let value = f.present("kind") {
            guard case .string(let s) = value, let k = ActivationTrace.Kind(rawValue: s),
                k == .hidden || config.cell == .lstm
            else {
                throw f.bad("kind", config.cell == .lstm ? "expected \"hidden\" or \"cell\"" : "expected \"hidden\"")
            }
            kind = k
        }
        // One trace at a time, of at most `maxTraceUnits` units: a trace holds every neuron's
        // value at every unit (33 MB for 4096 units of a 2x512 LSTM).
        traceLock.lock()
        let trace: ActivationTrace
        do {
            trace = try model.trace(text, maxUnits: Self.maxTraceUnits)
        } catch {
            traceLock.unlock()
            throw OpenAIError(status: 400, message: "'text': \(error.localizedDescription)", param: "text")
        }
        let explanation = Explanation(trace: trace, top: 3)
        traceLock.unlock()
        var body: [String: Any] = [
            "units": trace.units, "bits": trace.bits.map(Double.init), "layers": config.layers,
            "hidden_size": config.hiddenSize,
            "kinds": config.cell == .lstm ? ["cell", "hidden"] : ["hidden"],
            "suggested": explanation.neurons.flatMap { property, best in
                best.map { n -> [String: Any] in
                    [
                        "property": property.rawValue, "layer": n.layer, "unit": n.unit, "kind": n.kind.rawValue,
                        "correlation": n.correlation,
                    ]
                }
            },
        ]
        if let layer, let unit {
            body["values"] = trace.activations(layer: layer, unit: unit, kind: kind)!.map(Double.init)
        }
        sendJSON(connection, request, JSON.encode(body))
        return (200, "units=\(trace.units.count)")
    }
}
