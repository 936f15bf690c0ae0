import ArgumentParser
import CharLM
import CharNN
import CharServe
import Foundation

/// `charlm serve RUN`: an OpenAI-compatible completions API and a playground page.
///
/// The server is charlm's own small HTTP/1.1 layer (`HTTPServer`) rather than Hummingbird or
/// FlyingFox: measured on this project's 2-core machine, Hummingbird added minutes to a cold
/// build and FlyingFox tens of seconds, while what serving needs here — Content-Length bodies
/// with hard limits, chunked server-sent events, noticing a client that left — is a few hundred
/// lines that the fuzz and bad-input tests cover. The README gives the figures.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a trained model: an OpenAI-compatible API and a playground page.",
        discussion: """
            POST /v1/completions (OpenAI's completions API: prompt, max_tokens, temperature, top_p, \
            top_k, n, seed, stop, stream, logprobs, echo), GET /v1/models, GET /health, and the \
            page at /. Requests that arrive together are generated together, one batched step \
            at a time. Binds to 127.0.0.1 unless --host says otherwise; use --api-key when the \
            port is reachable by others.
            """
    )

    @Argument(help: ArgumentHelp("Run directory or model.safetensors.", valueName: "run"))
    var runPath: String

    @Option(help: "Address to listen on (0.0.0.0 or :: listens on every interface).")
    var host = "127.0.0.1"

    @Option(help: "Port (0 picks a free one; the chosen port is printed).")
    var port = 8080

    @Option(
        help:
            "Require 'Authorization: Bearer KEY' on /v1 and /api requests (default: the CHARLM_API_KEY variable, if set)."
    )
    var apiKey: String?

    @Option(help: "Largest max_tokens a request may ask for.")
    var maxTokens = 4096

    @Option(help: "Longest prompt, in units (characters).")
    var maxPrompt = 8192

    @Option(help: "Largest request body, in bytes.")
    var maxBody = 1 << 20

    @Option(help: "Most samples (n × prompts) in one request.")
    var maxN = 16

    @Option(help: "Samples generated together at most (one batched step); more wait in the queue.")
    var maxBatch = 64

    @Option(help: "Samples waiting for a place in the batch at most; beyond that requests get 429.")
    var maxQueue = 256

    @Option(help: "Which checkpoint of a run directory: best, latest, or step-N.")
    var checkpoint: LanguageModel.Checkpoint = .best

    @Option(help: "Threads that share each batched step.")
    var threads = BatchRunner.defaultThreads

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be between 0 and 65535.") }
        for (value, name) in [
            (maxTokens, "--max-tokens"), (maxPrompt, "--max-prompt"), (maxBody, "--max-body"), (maxN, "--max-n"),
            (maxBatch, "--max-batch"), (threads, "--threads"),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1.")
        }
        if maxQueue < 0 { throw ValidationError("--max-queue must not be negative.") }
        if apiKey == "" { throw ValidationError("--api-key must not be empty.") }
    }

    func run() throws {
        try Console.run {
            let model = try LanguageModel.load(URL(fileURLWithPath: runPath), checkpoint: checkpoint)
            try model.checkGenerates()
            var limits = HTTPServer.Limits()
            limits.maxBodyBytes = maxBody
            let server = try HTTPServer(host: host, port: port, limits: limits)
            let key = apiKey ?? ProcessInfo.processInfo.environment["CHARLM_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            let service = CompletionService(
                model: model, name: Self.modelName(runPath),
                engine: GenerationEngine(model: model, maxBatch: maxBatch, maxWaiting: maxQueue, threads: threads),
                limits: ServeLimits(maxTokens: maxTokens, maxPromptUnits: maxPrompt, maxN: maxN), apiKey: key,
                allowedHosts: key == nil ? ["localhost", host.lowercased()] : nil,
                log: { Console.note($0) })
            let config = model.network.config
            Console.note(
                "charlm: serving \(service.name) (\(config.layers)x\(config.hiddenSize) \(config.cell.rawValue), "
                    + "\(config.vocabularySize) units) at http://\(server.boundDescription)/"
                    + (key == nil ? "" : " (API key required)"))
            if key == nil && !["127.0.0.1", "::1", "localhost"].contains(host) {
                Console.note(
                    "charlm: warning: listening on \(host) without --api-key: anyone who can reach it can use it")
            }
            Self.exitOnSignals()
            server.run { request, connection in service.handle(request, connection) }
        }
    }

    /// SIGINT, SIGTERM and SIGHUP end the server at once with 128 + the signal (there is nothing
    /// to save), even when the parent started charlm with them ignored or blocked (a shell's
    /// background job ignores SIGINT).
    static func exitOnSignals() {
        let handler: @convention(c) (Int32) -> Void = { signal in
            let message = "\ncharlm: serve stopped\n"
            _ = message.withCString { write(STDERR_FILENO, $0, strlen($0)) }
            _exit(128 + signal)
        }
        var set = sigset_t()
        sigemptyset(&set)
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, handler)
            sigaddset(&set, number)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// The model's name in the API: the run directory's name (or the weights file's folder).
    static func modelName(_ path: String) -> String {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let name =
            url.pathExtension == "safetensors"
            ? url.deletingLastPathComponent().lastPathComponent : url.lastPathComponent
        return name.isEmpty ? "charlm" : name
    }
}
