import CharNN
import CharLM
import Foundation
import Testing
@testable import CharServe

#if canImport(Glibc)
import Glibc
#endif

@Suite struct RequestParsingTests {
    func head(_ text: String) -> Result<HTTPRequest, HTTPRequest.HeadError> {
        HTTPRequest.parseHead(ArraySlice(Array(text.utf8)))
    }

    @Test func requestHeads() throws {
        let ok = try head(
            "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type:  application/json \r\nconnection: Close"
        )
        .get()
        #expect(ok.method == "POST" && ok.path == "/v1/completions" && ok.query == "x=1")
        #expect(ok.header("content-type") == "application/json" && ok.header("HOST") == "a")
        #expect(!ok.keepAlive, "Connection: close, any case")
        #expect(try head("GET / HTTP/1.1").get().keepAlive, "HTTP/1.1 keeps the connection by default")
        #expect(try !head("GET / HTTP/1.0").get().keepAlive, "HTTP/1.0 closes by default")
        #expect(try head("GET / HTTP/1.0\r\nConnection: keep-alive").get().keepAlive)
        for bad in [
            "", "GET /", "GET / HTTP/2", "GET  / HTTP/1.1", "GET nothing HTTP/1.1", "GET / HTTP/1.1\r\n: x",
            "GET / HTTP/1.1\r\nno colon", "\u{FFFD}\0 / HTTP/1.1 extra",
        ] {
            guard case .failure(let error) = head(bad) else {
                Issue.record("accepted \(bad.debugDescription)")
                continue
            }
            #expect(error.status == 400)
        }
    }

    @Test func jsonKindsStayApart() throws {
        let object = try JSONValue.parseObject(
            Array(#"{"a": true, "b": 1, "c": 1.5, "d": "x", "e": null, "f": [1], "g": {}}"#.utf8))
        #expect(object["a"] == .bool(true) && object["b"] == .int(1) && object["c"] == .double(1.5))
        #expect(object["d"] == .string("x") && object["e"] == .null && object["f"] == .array([.int(1)]))
        #expect(object["g"] == .object([:]))
        for bad in ["", "[1]", "{", "nul", "\"x\"", "{\"a\": tru}"] {
            #expect(throws: OpenAIError.self) { try JSONValue.parseObject(Array(bad.utf8)) }
        }
    }

    @Test func handWrittenJSONParses() throws {
        let tricky = [
            "", "plain", "\"quoted\" \\ back", "\n\r\t\u{0}\u{1F}\u{7F}", "\u{2028}\u{2029}", "é👋🏽日本", "\u{FFFD}",
        ]
        for text in tricky {
            let json = "[\(JSON.quote(text))]"
            let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
            #expect(parsed == [text], "\(text.debugDescription) → \(json)")
        }
        for value in [0.0, -0.0, 1.5, -1e-300, 123456789.125, -2.5e-7] {
            let parsed = try JSONSerialization.jsonObject(with: Data("[\(JSON.number(value))]".utf8)) as? [Double]
            #expect(parsed == [value])
        }
        #expect(JSON.number(.nan) == "null" && JSON.number(-.infinity) == "null")
    }

    func parameters(_ json: String, limits: ServeLimits = ServeLimits()) throws(OpenAIError) -> CompletionParameters {
        try CompletionParameters(JSONValue.parseObject(Array(json.utf8)), limits: limits)
    }

    func rejection(_ json: String, limits: ServeLimits = ServeLimits()) -> OpenAIError? {
        do {
            _ = try parameters(json, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test func completionParameters() throws {
        let p = try parameters(
            #"{"model": "x", "prompt": "ab", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 3, "n": 2, "seed": 9, "stop": ["\n", "."], "stream": true, "stream_options": {"include_usage": true}, "logprobs": 2, "echo": true, "user": "u", "presence_penalty": 0, "repetition_penalty": 1.2}"#
        )
        #expect(p.prompts == ["ab"] && p.maxTokens == 7 && p.n == 2 && p.seed == 9 && p.stop == ["\n", "."])
        #expect(p.options.temperature == 0 && p.options.topP == 0.5 && p.options.topK == 3)
        #expect(abs(p.options.repetitionPenalty - 1.2) < 1e-6)
        #expect(p.stream && p.includeUsage && p.logprobs == 2 && p.echo)
        let defaults = try parameters("{}")
        #expect(defaults.prompts == [""] && defaults.maxTokens == 16 && defaults.n == 1 && defaults.seed == nil)
        #expect(defaults.options == SamplingOptionsDefaults.value && !defaults.stream && defaults.logprobs == nil)
        #expect(try parameters(#"{"top_k": 0, "top_p": 1}"#).options.topK == nil, "0 turns top-k off")
        #expect(try parameters(#"{"seed": -1}"#).seed == UInt64.max, "negative seeds wrap, as 64-bit integers")
        // Each bad field is named.
        let cases: [(String, String)] = [
            (#"{"max_tokens": "5"}"#, "max_tokens"), (#"{"max_tokens": -1}"#, "max_tokens"),
            (#"{"max_tokens": 1e9}"#, "max_tokens"), (#"{"max_tokens": 1.5}"#, "max_tokens"),
            (#"{"temperature": "hot"}"#, "temperature"), (#"{"temperature": -0.1}"#, "temperature"),
            (#"{"top_p": 0}"#, "top_p"), (#"{"top_p": 1.5}"#, "top_p"), (#"{"n": 0}"#, "n"), (#"{"n": 17}"#, "n"),
            (#"{"prompt": 5}"#, "prompt"), (#"{"prompt": []}"#, "prompt"), (#"{"prompt": [1, 2]}"#, "prompt"),
            (#"{"stop": ["a", "b", "c", "d", "e"]}"#, "stop"), (#"{"stop": ""}"#, "stop"),
            (#"{"stream": 1}"#, "stream"),
            (#"{"logprobs": 6}"#, "logprobs"), (#"{"frequency_penalty": 0.5}"#, "frequency_penalty"),
            (#"{"best_of": 3}"#, "best_of"), (#"{"logit_bias": {"1": 2}}"#, "logit_bias"), (#"{"seed": 1.5}"#, "seed"),
            (#"{"model": 3}"#, "model"), (#"{"stream_options": true}"#, "stream_options"), (#"{"wat": 1}"#, "wat"),
            (#"{"prompt": ["a", "b"], "n": 9}"#, "n"),
        ]
        for (json, field) in cases {
            let error = rejection(json)
            #expect(error?.status == 400 && error?.param == field, "\(json) names \(field)")
            #expect(error?.message.contains(field) == true, "\(json): \(error?.message ?? "accepted")")
        }
        #expect(rejection(#"{"max_tokens": 101}"#, limits: ServeLimits(maxTokens: 100))?.param == "max_tokens")
    }
}

enum SamplingOptionsDefaults {
    static let value = CharLM.SamplingOptions()
}

/// A small model trained on corpora/brackets.txt, served in-process on a free port.
final class TestServer: @unchecked Sendable {
    let service: CompletionService
    let port: Int
    private let logged = LogLines()

    /// The server's request log so far, a line per request.
    var log: [String] { logged.lines }

    final class LogLines: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [String] = []
        var lines: [String] { lock.withLock { stored } }
        func append(_ line: String) { lock.withLock { stored.append(line) } }
    }

    /// Jobs are never short enough to finish by chance where a test stops them: up to 10 million
    /// units (a 100,000-unit job takes this model about 0.3 s in a release build).
    init(
        limits: ServeLimits = ServeLimits(maxTokens: 10_000_000), maxBatch: Int = 8, maxWaiting: Int = 16,
        apiKey: String? = nil, allowedHosts: Set<String>? = nil
    )
        throws
    {
        let model = try TestServer.model()
        let engine = GenerationEngine(model: model, maxBatch: maxBatch, maxWaiting: maxWaiting, threads: 1)
        service = CompletionService(
            model: model, name: "brackets", engine: engine, limits: limits, apiKey: apiKey, allowedHosts: allowedHosts
        ) { [logged] in logged.append($0) }
        var httpLimits = HTTPServer.Limits()
        httpLimits.maxBodyBytes = 64 << 10
        httpLimits.requestSeconds = 3
        let server = try HTTPServer(host: "127.0.0.1", port: 0, limits: httpLimits)
        port = server.port
        let service = service
        Thread.detachNewThread { server.run { service.handle($0, $1) } }
    }

    static let trained: Result<LanguageModel, Error> = Result {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let run = FileManager.default.temporaryDirectory.appendingPathComponent(
            "charlm-serve-\(UUID().uuidString.prefix(8))")
        var config = RunConfig()
        config.model = NetworkConfig(cell: .lstm, vocabularySize: 0, hiddenSize: 24, layers: 2, dropout: 0)
        config.training.batchSize = 8
        config.training.seqLength = 16
        config.training.maxSteps = 30
        config.training.evalEvery = 30
        config.training.sampleEvery = 0
        config.training.threads = 1
        _ = try Trainer.start(
            corpus: root.appendingPathComponent("corpora/brackets.txt"), runDirectory: run, config: config
        ).train()
        return try LanguageModel.load(run)
    }

    static func model() throws -> LanguageModel { try trained.get() }

    /// Sends `bytes` on a new connection and returns everything the server sends until it closes
    /// (`closeAfter`: hang up after that many bytes of response instead).
    func exchange(_ bytes: [UInt8], closeAfter: Int? = nil, timeout: Double = 20, addHost: Bool = true) throws -> String
    {
        let fd = try open(bytes, addHost: addHost)
        defer { close(fd) }
        return String(decoding: Self.receive(fd, atLeast: closeAfter, timeout: timeout), as: UTF8.self)
    }

    /// Connects and sends `bytes`; the caller reads (`receive`) and closes the descriptor.
    func open(_ bytes: [UInt8], addHost: Bool = true) throws -> Int32 {
        var bytes = bytes
        // HTTP/1.1 requires a Host header: add one after the request line unless there is one.
        let text = String(decoding: bytes, as: UTF8.self)
        if addHost, let lineEnd = text.range(of: "\r\n"), text[..<lineEnd.lowerBound].hasSuffix("HTTP/1.1"),
            !text.lowercased().contains("\r\nhost:")
        {
            bytes = Array((text[..<lineEnd.upperBound] + "Host: 127.0.0.1\r\n" + text[lineEnd.upperBound...]).utf8)
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw ServeError("cannot connect")
        }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may answer and close before reading everything
            sent += n
        }
        return fd
    }

    /// What the server sends on `fd` until it closes, `timeout` passes, or (with `atLeast`) that
    /// many bytes have come.
    static func receive(_ fd: Int32, atLeast: Int? = nil, timeout: Double) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) >= 0 else { break }
            if p.revents == 0 { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += chunk[..<n]
            if let atLeast, out.count >= atLeast { break }
        }
        return out
    }

    func request(_ method: String, _ path: String, body: String? = nil, headers: [String] = []) throws -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nConnection: close\r\n"
        if !headers.contains(where: { $0.lowercased().hasPrefix("host:") }) { text += "Host: 127.0.0.1\r\n" }
        for h in headers { text += h + "\r\n" }
        if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        return try exchange(Array((text + "\r\n" + (body ?? "")).utf8))
    }

    static func status(_ response: String) -> Int {
        Int(response.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") ?? 0
    }

    /// The JSON body of a Content-Length response.
    static func json(_ response: String) -> [String: Any] {
        guard let range = response.range(of: "\r\n\r\n") else { return [:] }
        let body = Data(response[range.upperBound...].utf8)
        return (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
    }

    /// The data lines of a chunked server-sent-event response.
    static func events(_ response: String) -> [String] {
        guard let range = response.range(of: "\r\n\r\n") else { return [] }
        var rest = Substring(response[range.upperBound...])
        var body = ""
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
            let start = rest.utf8.index(lineEnd.upperBound, offsetBy: 0)
            let bytes = Array(rest.utf8[start...].prefix(size))
            body += String(decoding: bytes, as: UTF8.self)
            rest = Substring(String(decoding: Array(rest.utf8[start...].dropFirst(size + 2)), as: UTF8.self))
        }
        return body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { String($0.dropFirst(6)) }
    }
}

@Suite(.serialized) struct ServerTests {
    static let shared = Result { try TestServer() }
    var server: TestServer { get throws { try Self.shared.get() } }

    @Test func pagesModelsAndHealth() throws {
        let page = try server.request("GET", "/")
        #expect(TestServer.status(page) == 200 && page.contains("<title>charlm playground</title>"))
        #expect(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere")
        let models = TestServer.json(try server.request("GET", "/v1/models"))
        let data = models["data"] as? [[String: Any]]
        #expect(data?.first?["id"] as? String == "brackets" && data?.first?["object"] as? String == "model")
        #expect(TestServer.json(try server.request("GET", "/health"))["status"] as? String == "ok")
        #expect(TestServer.status(try server.request("GET", "/v1/models/brackets")) == 200)
        #expect(TestServer.status(try server.request("GET", "/v1/models/gpt-4")) == 404)
        #expect(TestServer.status(try server.request("GET", "/../../etc/passwd")) == 404)
        #expect(TestServer.status(try server.request("GET", "/v1/completions")) == 405)
        #expect(TestServer.status(try server.request("DELETE", "/")) == 405)
    }

    @Test func completionsAndStreamsAgree() throws {
        let body = #"{"prompt": "(lynx [", "max_tokens": 40, "seed": 5, "n": 3}"#
        let a = TestServer.json(try server.request("POST", "/v1/completions", body: body))
        let b = TestServer.json(try server.request("POST", "/v1/completions", body: body))
        let choices = try #require(a["choices"] as? [[String: Any]])
        #expect(choices.count == 3 && choices.map { $0["index"] as? Int } == [0, 1, 2])
        let texts = choices.map { $0["text"] as? String ?? "" }
        #expect(texts == (b["choices"] as? [[String: Any]])?.map { $0["text"] as? String ?? "" }, "a seed repeats")
        #expect(Set(texts).count > 1, "the samples differ")
        #expect(
            choices.allSatisfy { $0["finish_reason"] as? String == "length" && ($0["text"] as? String)?.count == 40 })
        let usage = a["usage"] as? [String: Int]
        #expect(usage == ["prompt_tokens": 7, "completion_tokens": 120, "total_tokens": 127], "a prompt counts once")
        // The same request streamed: chunks of each choice add up to the same texts.
        let stream = try server.request(
            "POST", "/v1/completions",
            body: #"{"prompt": "(lynx [", "max_tokens": 40, "seed": 5, "n": 3, "stream": true}"#)
        #expect(stream.contains("Content-Type: text/event-stream") && stream.contains("Transfer-Encoding: chunked"))
        let events = TestServer.events(stream)
        #expect(events.last == "[DONE]")
        var streamed = ["", "", ""]
        var finishes = 0
        for event in events.dropLast() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
            #expect(object["object"] as? String == "text_completion")
            let choice = try #require((object["choices"] as? [[String: Any]])?.first)
            streamed[choice["index"] as! Int] += choice["text"] as! String
            if choice["finish_reason"] is String { finishes += 1 }
        }
        #expect(streamed == texts && finishes == 3)
    }

    @Test func badRequestsGetClearErrorsAndTheServerKeepsServing() throws {
        func error(_ response: String) -> (Int, String?, String) {
            let e = TestServer.json(response)["error"] as? [String: Any]
            return (TestServer.status(response), e?["param"] as? String, e?["message"] as? String ?? "")
        }
        #expect(error(try server.request("POST", "/v1/completions", body: "{nope")).0 == 400)
        #expect(
            error(try server.request("POST", "/v1/completions", body: #"{"max_tokens": "9"}"#)) == (
                400, "max_tokens", "'max_tokens': expected an integer"
            ))
        #expect(
            error(try server.request("POST", "/v1/completions", body: #"{"max_tokens": 1000000000}"#)).1 == "max_tokens"
        )
        let unseen = error(try server.request("POST", "/v1/completions", body: #"{"prompt": "日本 (ant"}"#))
        #expect(unseen.0 == 400 && unseen.1 == "prompt" && unseen.2.contains("U+65E5"))
        // A body over the limit is refused before it is read, and the client sees the 413.
        let big =
            "POST /v1/completions HTTP/1.1\r\nContent-Length: 10485760\r\n\r\n"
            + String(repeating: "x", count: 10 << 20)
        #expect(TestServer.status(try server.exchange(Array(big.utf8))) == 413)
        let hugeHead = "GET / HTTP/1.1\r\nX: " + String(repeating: "y", count: 40_000) + "\r\n\r\n"
        #expect(TestServer.status(try server.exchange(Array(hugeHead.utf8))) == 431)
        let chunked = "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        #expect(TestServer.status(try server.exchange(Array(chunked.utf8))) == 411)
        #expect(TestServer.status(try server.exchange(Array("BLAH\r\n\r\n".utf8))) == 400)
        let short = "POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{}"
        #expect(TestServer.status(try server.exchange(Array(short.utf8))) == 408, "a body that never arrives times out")
        // Two requests on one connection: keep-alive.
        let two = "GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        #expect(try server.exchange(Array(two.utf8)).components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        // JSON only; a clean head; one length; shallow nesting; echo with logprobs is refused.
        let form =
            "POST /v1/completions HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        #expect(TestServer.status(try server.exchange(Array(form.utf8))) == 415)
        let escape = "GET /\u{1B}[31m HTTP/1.1\r\nConnection: close\r\n\r\n"
        #expect(TestServer.status(try server.exchange(Array(escape.utf8))) == 400)
        let bareLF = "GET / HTTP/1.1\nX: y\r\nConnection: close\r\n\r\n"
        #expect(TestServer.status(try server.exchange(Array(bareLF.utf8))) == 400)
        let bareCR = "GET /x\r2025 forged HTTP/1.1\r\nConnection: close\r\n\r\n"
        #expect(TestServer.status(try server.exchange(Array(bareCR.utf8))) == 400)
        #expect(CompletionService.printable("a\u{9B}b\u{1B}c\rd\u{7F}é") == "a?b?c?d?é")
        #expect(TestServer.status(try server.request("POST", "/health", body: "{}")) == 405, "405 before 415")
        let twoLengths = "POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x"
        #expect(TestServer.status(try server.exchange(Array(twoLengths.utf8))) == 400)
        let deep = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        let nested = error(try server.request("POST", "/v1/completions", body: #"{"prompt": "# + deep + "}"))
        #expect(nested.0 == 400 && nested.2.contains("nests deeper"), "no stack overflow on a connection thread")
        #expect(
            error(try server.request("POST", "/v1/completions", body: #"{"echo": true, "logprobs": 1}"#)).1 == "echo")
        #expect(TestServer.status(try server.request("GET", "/health")) == 200, "still serving")
    }

    @Test func aClientThatLeavesStopsItsGeneration() throws {
        let server = try server
        let engine = server.service.engine
        func stopped() -> Int { server.log.filter { $0.contains(" 499 ") && $0.contains("generation stopped") }.count }
        for stream in [true, false] {
            // 10 million units: the job cannot end by itself within the test.
            let body = #"{"prompt": "(", "max_tokens": 10000000, "stream": \#(stream)}"#
            let text =
                "POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                + body
            let before = stopped()
            _ = try server.exchange(Array(text.utf8), closeAfter: stream ? 400 : nil, timeout: stream ? 20 : 0.3)
            let end = Date().addingTimeInterval(10)
            while (engine.load.running > 0 || stopped() == before) && Date() < end {
                Thread.sleep(forTimeInterval: 0.02)
            }
            #expect(engine.load == (0, 0), "stream \(stream): the job was cancelled when the client left")
            #expect(stopped() == before + 1, "stream \(stream): logged as stopped (499): \(server.log.suffix(2))")
        }
        #expect(TestServer.status(try server.request("POST", "/v1/completions", body: #"{"max_tokens": 3}"#)) == 200)
    }

    @Test func http10GetsAStreamWithoutChunks() throws {
        let body = #"{"prompt": "(", "max_tokens": 30, "seed": 2, "stream": true}"#
        let text =
            "POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
            + body
        let response = try server.exchange(Array(text.utf8))
        #expect(!response.contains("Transfer-Encoding") && response.contains("Connection: close"))
        let events = response.components(separatedBy: "\r\n\r\n").dropFirst().joined().components(separatedBy: "\n\n")
            .filter { !$0.isEmpty }
        #expect(events.last == "data: [DONE]")
        let streamed = events.dropLast().compactMap { event -> String? in
            let object = try? JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any]
            return ((object?["choices"] as? [[String: Any]])?.first?["text"]) as? String
        }.joined()
        let plain = TestServer.json(
            try server.request("POST", "/v1/completions", body: #"{"prompt": "(", "max_tokens": 30, "seed": 2}"#))
        #expect(streamed == ((plain["choices"] as? [[String: Any]])?.first?["text"] as? String))
    }

    @Test func anHTTP10StreamEndsTheConnection() throws {
        let body = #"{"prompt": "(", "max_tokens": 10, "stream": true}"#
        let text =
            "POST /v1/completions HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        let start = Date()
        let response = try server.exchange(Array(text.utf8), timeout: 10)
        #expect(response.hasSuffix("data: [DONE]\n\n") && Date().timeIntervalSince(start) < 5, "closed at the end")
    }

    @Test func otherHostNamesAreRefusedWithoutAKey() throws {
        let local = try TestServer(allowedHosts: ["localhost"])
        #expect(TestServer.status(try local.request("GET", "/v1/models", headers: ["Host: evil.example:8080"])) == 403)
        #expect(TestServer.status(try local.request("GET", "/v1/models", headers: ["Host: 192.168.7.9:8080"])) == 200)
        let noHost = "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
        #expect(TestServer.status(try local.exchange(Array(noHost.utf8), addHost: false)) == 400)
        #expect(TestServer.status(try local.exchange(Array("GET /health HTTP/1.0\r\n\r\n".utf8))) == 200)
        #expect(TestServer.status(try local.request("GET", "/v1/models", headers: ["Host: localhost:8080"])) == 200)
        #expect(TestServer.status(try local.request("GET", "/v1/models", headers: ["Host: [::1]:8080"])) == 200)
        #expect(TestServer.status(try local.request("GET", "/health", headers: ["Host: 127.0.0.1"])) == 200)
    }

    @Test func aFullQueueAnswers429() throws {
        let small = try TestServer(maxBatch: 1, maxWaiting: 0)
        let engine = small.service.engine
        // The only place, held by a stream of 10 million units whose connection stays open (and
        // unread) until the second request has been answered.
        let body = #"{"prompt": "(", "max_tokens": 10000000, "stream": true}"#
        let text =
            "POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
            + body
        let hog = try small.open(Array(text.utf8))
        #expect(
            String(decoding: TestServer.receive(hog, atLeast: 1, timeout: 10), as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        let end = Date().addingTimeInterval(10)
        while engine.load.running == 0 && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
        try #require(engine.load == (1, 0), "the stream holds the only place")
        let refused = try small.request("POST", "/v1/completions", body: #"{"max_tokens": 3}"#)
        #expect(TestServer.status(refused) == 429 && refused.contains("Retry-After: 1"))
        #expect((TestServer.json(refused)["error"] as? [String: Any])?["type"] as? String == "rate_limit_exceeded")
        close(hog)
        let freed = Date().addingTimeInterval(10)
        while engine.load.running > 0 && Date() < freed { Thread.sleep(forTimeInterval: 0.01) }
        #expect(engine.load == (0, 0), "the place is free once the stream's client has left")
        #expect(TestServer.status(try small.request("POST", "/v1/completions", body: #"{"max_tokens": 3}"#)) == 200)
    }

    @Test func anAPIKeyGuardsTheAPI() throws {
        let guarded = try TestServer(apiKey: "s3cret")
        #expect(TestServer.status(try guarded.request("GET", "/v1/models")) == 401)
        #expect(
            TestServer.status(try guarded.request("GET", "/v1/models", headers: ["Authorization: Bearer nope"])) == 401)
        #expect(
            TestServer.status(try guarded.request("GET", "/v1/models", headers: ["Authorization: Bearer s3cret"]))
                == 200)
        #expect(TestServer.status(try guarded.request("POST", "/api/trace", body: #"{"text": "("}"#)) == 401)
        #expect(TestServer.status(try guarded.request("GET", "/")) == 200, "the page itself is public")
        #expect(TestServer.status(try guarded.request("GET", "/health")) == 200)
    }

    @Test func theNeuronViewTracesText() throws {
        let response = try server.request(
            "POST", "/api/trace", body: #"{"text": "(ant [bee] cat)\n", "layer": 1, "unit": 3, "kind": "cell"}"#)
        let object = TestServer.json(response)
        let units = try #require(object["units"] as? [String])
        #expect(units.joined() == "(ant [bee] cat)\n")
        #expect(
            (object["values"] as? [Double])?.count == units.count && (object["bits"] as? [Double])?.count == units.count
        )
        #expect((object["suggested"] as? [[String: Any]])?.isEmpty == false)
        let bad = try server.request("POST", "/api/trace", body: #"{"text": "(", "layer": 9, "unit": 0}"#)
        #expect(TestServer.status(bad) == 400 && bad.contains("layer"))
    }
}
