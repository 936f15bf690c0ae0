import CharNN
import Foundation
import Testing
@testable import CharLM

/// Collects one job's events (they arrive on the engine's thread).
final class JobRecorder: @unchecked Sendable {
    private let condition = NSCondition()
    private(set) var text = ""
    private(set) var units: [UnitLogprob] = []
    private(set) var finish: (reason: String, tokens: Int)?
    private(set) var eventsAfterFinish = 0
    private var events = 0

    var eventCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return events
    }

    func record(_ event: CompletionEvent) {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        if finish != nil { eventsAfterFinish += 1 }
        switch event {
        case .text(let t, let u):
            text += t
            units += u
        case .finished(let reason, let tokens): finish = (reason, tokens)
        case .failed(let message): finish = ("failed: \(message)", 0)
        }
        events += 1
    }

    /// Waits until the job finished (false after `seconds`).
    func wait(seconds: Double = 60) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let end = Date().addingTimeInterval(seconds)
        while finish == nil { if !condition.wait(until: end) { return false } }
        return true
    }
}

/// The serving engine (continuous batching) and activation traces, on a small trained model.
@Suite(.serialized) struct ServingTests {
    static let trained = smallBracketsModel("serving")

    var model: LanguageModel { Self.trained.1 }

    /// What `charlm generate --precision f32` gives for the same prompt, length and seed.
    func reference(_ prompt: String, length: Int, seed: UInt64, stop: [String] = [], temperature: Float = 1) throws
        -> GeneratedSample
    {
        var request = GenerationRequest(
            prompt: prompt, length: length, options: SamplingOptions(temperature: temperature), seed: seed,
            stop: stop, precision: .f32)
        request.threads = 1
        return try model.generate(request)[0]
    }

    @Test func jobsRunTogetherGiveWhatEachGivesAlone() throws {
        let prompts = ["(lynx [", "", "<", "{hen (ant", "[", "(", "owl ", "<<"]
        for threads in [1, 2] {
            let engine = GenerationEngine(model: model, maxBatch: 5, maxWaiting: 16, threads: threads)
            defer { engine.shutdown() }
            var recorders: [JobRecorder] = []
            for (i, prompt) in prompts.enumerated() {
                let recorder = JobRecorder()
                recorders.append(recorder)
                // Different lengths, so that jobs leave the batch and waiting ones join mid-way.
                let job = CompletionJob(
                    promptIDs: try model.encodePrompt(prompt), maxTokens: 20 + 9 * i, seed: UInt64(100 + i))
                _ = try engine.submit(job) { recorder.record($0) }
            }
            for (i, recorder) in recorders.enumerated() {
                #expect(recorder.wait(), "job \(i) finished")
                let expected = try reference(prompts[i], length: 20 + 9 * i, seed: UInt64(100 + i))
                #expect(recorder.text == expected.text, "job \(i), \(threads) threads: the same text as generate")
                #expect(recorder.finish?.reason == "length" && recorder.finish?.tokens == 20 + 9 * i)
                #expect(recorder.eventsAfterFinish == 0)
            }
            #expect(engine.load == (0, 0))
        }
    }

    @Test func stopStringsAndLogprobs() throws {
        let free = try reference("(lynx [", length: 60, seed: 3)
        let cut = free.text.index(free.text.startIndex, offsetBy: 20)
        let stop = String(free.text[cut...].prefix(3))
        let expected = try reference("(lynx [", length: 60, seed: 3, stop: [stop])
        #expect(expected.stoppedBy == stop)
        let engine = GenerationEngine(model: model, threads: 1)
        defer { engine.shutdown() }
        let recorder = JobRecorder()
        let job = CompletionJob(
            promptIDs: try model.encodePrompt("(lynx ["), maxTokens: 60, seed: 3, stop: [stop], logprobs: 2)
        _ = try engine.submit(job) { recorder.record($0) }
        #expect(recorder.wait())
        #expect(recorder.text == expected.text)
        #expect(recorder.finish?.reason == "stop")
        #expect(recorder.units.count == expected.tokens.count, "one logprob per generated unit")
        // The logprobs are the model's own distribution: a softmax of InferenceSession's logits.
        let session = InferenceSession(network: model.network)
        var logits = try session.feed(try model.encodePrompt("(lynx ["))
        for (unit, token) in zip(recorder.units, expected.tokens) {
            let m = logits.max()!
            let logTotal = log(logits.reduce(0.0) { $0 + exp(Double($1 - m)) }) + Double(m)
            #expect(abs(unit.logprob - (Double(logits[Int(token)]) - logTotal)) < 1e-4)
            #expect(unit.unit == model.tokenizer.decode([token]))
            #expect(unit.top.count == 2 && unit.top[0].logprob >= unit.top[1].logprob)
            #expect(unit.top[0].logprob >= unit.logprob - 1e-12)
            logits = try session.feed([token])
        }
    }

    @Test func cancelledJobsStopAndAFullQueueRefuses() throws {
        let engine = GenerationEngine(model: model, maxBatch: 1, maxWaiting: 1, threads: 1)
        defer { engine.shutdown() }
        let long = JobRecorder(), waiting = JobRecorder()
        let first = try engine.submit(CompletionJob(promptIDs: [], maxTokens: 1_000_000)) { long.record($0) }
        let second = try engine.submit(CompletionJob(promptIDs: [], maxTokens: 5)) { waiting.record($0) }
        #expect(throws: GenerationEngine.EngineError.busy) {
            try engine.submit(CompletionJob(promptIDs: [], maxTokens: 5)) { _ in }
        }
        Thread.sleep(forTimeInterval: 0.1)
        #expect(waiting.finish == nil, "the second job waits while the first holds the only place")
        engine.cancel(first)
        let afterCancel = long.eventCount
        #expect(waiting.wait(), "cancelling the first lets the second run")
        #expect(long.eventCount == afterCancel && long.finish == nil, "no event follows the cancel")
        _ = second
        // Nothing to generate ends at once; bad options are refused at submission.
        let empty = JobRecorder()
        _ = try engine.submit(CompletionJob(promptIDs: [], maxTokens: 0)) { empty.record($0) }
        #expect(empty.wait() && empty.finish! == ("length", 0) && empty.text.isEmpty)
        #expect(throws: CharLMError.self) {
            try engine.submit(CompletionJob(promptIDs: [], maxTokens: 5, options: SamplingOptions(topP: 2))) { _ in }
        }
        engine.shutdown()
        #expect(throws: GenerationEngine.EngineError.stopped) {
            try engine.submit(CompletionJob(promptIDs: [], maxTokens: 5)) { _ in }
        }
    }

    @Test func noEventFollowsACancelAndCallbacksMaySubmit() throws {
        let engine = GenerationEngine(model: model, maxBatch: 4, threads: 1)
        defer { engine.shutdown() }
        for round in 0..<20 {
            let recorder = JobRecorder()
            let ticket = try engine.submit(CompletionJob(promptIDs: [], maxTokens: 100_000, seed: UInt64(round))) {
                recorder.record($0)
            }
            let end = Date().addingTimeInterval(10)
            while recorder.eventCount < 3 + round && Date() < end { usleep(50) }
            engine.cancel(ticket)  // from this thread, while the engine is stepping the job
            let count = recorder.eventCount
            Thread.sleep(forTimeInterval: 0.005)
            #expect(
                recorder.eventCount == count && recorder.finish == nil, "round \(round): nothing after cancel returned")
        }
        // A callback may submit (the next job) and cancel (its own): no deadlock.
        let chained = JobRecorder()
        _ = try engine.submit(CompletionJob(promptIDs: [], maxTokens: 0)) { event in
            if case .finished = event {
                _ = try? engine.submit(CompletionJob(promptIDs: [], maxTokens: 3)) { chained.record($0) }
            }
        }
        #expect(chained.wait(seconds: 10) && chained.finish?.tokens == 3)
        let selfCancelling = JobRecorder()
        final class Box: @unchecked Sendable { var ticket: GenerationEngine.Ticket? }
        let box = Box()
        let lock = NSLock()
        lock.lock()
        box.ticket = try engine.submit(CompletionJob(promptIDs: [], maxTokens: 100_000)) { event in
            selfCancelling.record(event)
            lock.lock()
            let ticket = box.ticket
            lock.unlock()
            if let ticket { engine.cancel(ticket) }
        }
        lock.unlock()
        let end = Date().addingTimeInterval(10)
        while (selfCancelling.eventCount == 0 || engine.load != (0, 0)) && Date() < end {
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(engine.load == (0, 0), "a job that cancels itself leaves the batch")
        Thread.sleep(forTimeInterval: 0.05)
        #expect(
            (1...2).contains(selfCancelling.eventCount) && selfCancelling.finish == nil,
            "a job that cancels itself stops")
    }

    @Test func aTraceIsTheModelReadingTheText() throws {
        let text = "(lynx [dog hen] {owl})\n<kea>"
        let trace = try model.trace(text)
        let ids = try model.encodePrompt(text)
        #expect(trace.ids == ids && trace.units.joined() == text)
        // Surprise against an independent forward pass: a batched InferenceSession on f32.
        let session = InferenceSession(network: model.network, batchSize: 2)
        var logits = Array(try session.feed([model.startID, model.startID]).prefix(model.tokenizer.vocabularySize))
        let H = model.network.config.hiddenSize, L = model.network.config.layers
        for (i, id) in ids.enumerated() {
            let m = logits.max()!
            let nats = log(logits.reduce(0.0) { $0 + exp(Double($1 - m)) }) + Double(m) - Double(logits[Int(id)])
            #expect(abs(Double(trace.bits[i]) - nats / M_LN2) < 1e-4, "unit \(i)")
            logits = Array(try session.feed([id, id]).prefix(model.tokenizer.vocabularySize))
            for l in 0..<L {
                for unit in [0, H / 2, H - 1] {
                    let h = session.state.h[l * 2 * H + unit]
                    #expect(abs(trace.activations(layer: l, unit: unit)![i] - h) < 1e-5)
                    let c = session.state.c![l * 2 * H + unit]
                    #expect(abs(trace.activations(layer: l, unit: unit, kind: .cell)![i] - c) < 1e-5)
                }
            }
        }
        #expect(trace.activations(layer: L, unit: 0) == nil && trace.activations(layer: 0, unit: H) == nil)
        #expect(try model.trace(text, maxUnits: 5).units.count == 5)
        #expect(throws: CharLMError.self) { try model.trace("日本") }
    }

    @Test func propertiesAndCorrelations() throws {
        let units = ["a", "\"", "b", "(", "[", "x", "]", "\n", "w", "o", "r", "d", " ", "“", "q", "”"]
        #expect(TextProperty.positionInLine.values(units) == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(TextProperty.insideQuotes.values(units) == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
        #expect(TextProperty.bracketDepth.values(units) == [0, 0, 0, 1, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        #expect(TextProperty.afterNewline.values(units) == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(TextProperty.wordLength.values(units) == [1, 0, 1, 0, 0, 1, 0, 0, 1, 2, 3, 4, 0, 0, 1, 0])
        // A made-up trace: unit 0 follows depth exactly, unit 1 its negative plus noise, unit 2 is constant.
        let depth = TextProperty.bracketDepth.values(units)
        var hidden: [Float] = []
        for (i, d) in depth.enumerated() { hidden += [d * 0.3 - 0.2, -d + Float(i % 3) * 0.4, 0.5] }
        let trace = ActivationTrace(
            units: units, ids: Array(repeating: 0, count: units.count), bits: Array(repeating: 1, count: units.count),
            layers: 1, hiddenSize: 3, hidden: hidden, cell: nil)
        let best = try #require(Explanation.correlated(trace, with: depth, top: 3))
        #expect(best.count == 2, "a constant unit has no correlation")
        #expect(best[0].unit == 0 && abs(best[0].correlation - 1) < 1e-9)
        // Pearson's r of unit 1 computed the plain way.
        let x = (0..<units.count).map { Double(hidden[$0 * 3 + 1]) }, y = depth.map(Double.init)
        let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
        let sxy = zip(x, y).reduce(0.0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        let sxx = x.reduce(0.0) { $0 + ($1 - mx) * ($1 - mx) }, syy = y.reduce(0.0) { $0 + ($1 - my) * ($1 - my) }
        #expect(best[1].unit == 1 && abs(best[1].correlation - sxy / (sxx * syy).squareRoot()) < 1e-9)
        #expect(best[1].correlation < -0.8)
        let explanation = Explanation(trace: trace, top: 1, spanLength: 4, spans: 2)
        #expect(explanation.neurons.count == 5 && explanation.constant.isEmpty)
        #expect(explanation.hardest.count == 2 && explanation.hardest[0].count == 4)
        #expect(
            explanation.hardest[0].start + 4 <= explanation.hardest[1].start
                || explanation.hardest[1].start + 4 <= explanation.hardest[0].start)
    }
}
