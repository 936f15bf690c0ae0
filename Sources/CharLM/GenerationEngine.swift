import CharNN
import CharTokenizer
import Foundation

/// One sample a client asked for (a completion with `n` samples is `n` jobs).
public struct CompletionJob: Sendable {
    /// The prompt's ids (empty: start as if at the beginning of a line).
    public var promptIDs: [Int32]
    /// Units to generate at most.
    public var maxTokens: Int
    public var options: SamplingOptions
    public var seed: UInt64
    /// The sample ends where one of these appears (not returned).
    public var stop: [String]
    /// Alternatives to report with each generated unit's log-probability (nil: none).
    public var logprobs: Int?

    public init(
        promptIDs: [Int32], maxTokens: Int, options: SamplingOptions = SamplingOptions(), seed: UInt64 = 0,
        stop: [String] = [], logprobs: Int? = nil
    ) {
        self.promptIDs = promptIDs
        self.maxTokens = maxTokens
        self.options = options
        self.seed = seed
        self.stop = stop
        self.logprobs = logprobs
    }
}

/// The log-probability of one generated unit under the model (temperature 1, before any
/// filtering), with the most likely alternatives.
public struct UnitLogprob: Sendable, Equatable {
    public var unit: String
    public var logprob: Double
    public var top: [(unit: String, logprob: Double)]

    public static func == (a: UnitLogprob, b: UnitLogprob) -> Bool {
        a.unit == b.unit && a.logprob == b.logprob && a.top.elementsEqual(b.top) { $0 == $1 }
    }
}

/// What the engine tells a job's owner, in order, on the engine's thread.
public enum CompletionEvent: Sendable, Equatable {
    /// Text that became final, and the units generated in this step (with their
    /// log-probabilities when the job asked for them). The text can lag the units by a few
    /// characters while a stop string might be forming.
    case text(String, units: [UnitLogprob])
    /// The sample ended: `stop` (a stop string) or `length` (`maxTokens`), after
    /// `completionTokens` units.
    case finished(reason: String, completionTokens: Int)
    /// The sample could not go on (a bug: ids come from the tokenizer and the sampler).
    case failed(String)
}

/// Generates for many clients at once by continuous batching: every step feeds one id of each
/// running job to one batched forward pass; a job joins the batch between steps and leaves it
/// when it ends or is cancelled. Jobs beyond `maxBatch` wait (at most `maxWaiting` of them).
///
/// A job's text does not depend on the others running beside it (`StreamStepper` computes
/// each row alone), so a seed gives the same text under any load.
public final class GenerationEngine: @unchecked Sendable {
    public enum EngineError: Error, Equatable {
        /// The waiting queue is full.
        case busy
        /// The engine has shut down.
        case stopped
    }

    public let model: LanguageModel
    public let maxBatch: Int
    public let maxWaiting: Int

    /// A submitted job; `cancel` stops it at the next step.
    public final class Ticket: @unchecked Sendable {
        fileprivate let job: CompletionJob
        private let events: @Sendable (CompletionEvent) -> Void
        /// Held while an event is delivered, so that once `cancel` returns no event follows
        /// (recursive: a callback may cancel its own job).
        private let lock = NSRecursiveLock()
        private var isCancelled = false
        init(job: CompletionJob, events: @escaping @Sendable (CompletionEvent) -> Void) {
            self.job = job
            self.events = events
        }

        fileprivate var cancelled: Bool {
            lock.lock()
            defer { lock.unlock() }
            return isCancelled
        }

        fileprivate func cancel() {
            lock.lock()
            isCancelled = true
            lock.unlock()
        }

        /// Delivers `event` unless the job was cancelled.
        fileprivate func deliver(_ event: CompletionEvent) {
            lock.lock()
            defer { lock.unlock() }
            if !isCancelled { events(event) }
        }
    }

    /// A job in the batch. A class: `running` (under the lock) and the step (outside it) share
    /// one copy, which only the engine's thread changes. As a struct, the step's copy made the
    /// sample's growing text and history copy-on-write at every step: a 100,000-character
    /// completion took 5 (streamed) to 20 times as long.
    private final class Running {
        let ticket: Ticket
        let state: RecurrentState
        var stream: SampleStream
        /// The ids still to feed before the first sample: the prompt (or the start id).
        let prime: [Int32]
        var primed = 0
        /// The id to feed at the next step, once primed.
        var next: Int32 = 0

        init(ticket: Ticket, state: RecurrentState, stream: SampleStream, prime: [Int32]) {
            self.ticket = ticket
            self.state = state
            self.stream = stream
            self.prime = prime
        }
    }

    private let condition = NSCondition()
    private var waiting: [Ticket] = []
    private var running: [Running] = []
    private var stopped = false
    private var thread: Thread?
    private let steppers: [StreamStepper]
    private let utf8Guard: ValidUTF8Guard
    /// Counters for /health and the log.
    public private(set) var stepsTaken = 0
    public private(set) var unitsGenerated = 0

    /// - Parameters:
    ///   - maxBatch: jobs stepped together at most.
    ///   - maxWaiting: jobs waiting for a place in the batch at most; `submit` beyond it throws `.busy`.
    ///   - threads: threads that share a step's rows, or for fewer than 8 rows each product's
    ///     columns (each element is computed alone, so neither split changes any result).
    public init(model: LanguageModel, maxBatch: Int = 64, maxWaiting: Int = 256, threads: Int = 2) {
        precondition(maxBatch >= 1 && maxWaiting >= 0 && threads >= 1)
        self.model = model
        self.maxBatch = maxBatch
        self.maxWaiting = maxWaiting
        steppers = (0..<threads).map { _ in StreamStepper(network: model.network, precision: .f32) }
        utf8Guard = ValidUTF8Guard(tokenizer: model.tokenizer)
        // The thread keeps the engine alive until `shutdown`.
        let thread = Thread { self.loop() }
        thread.name = "charlm-engine"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// Jobs generating and jobs waiting.
    public var load: (running: Int, waiting: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (running.count, waiting.count)
    }

    /// Queues `job`; `events` receives its text and its end, on the engine's thread (keep it short).
    /// - Throws: `.busy` when the queue is full, `.invalidOptions` for bad sampling options.
    public func submit(_ job: CompletionJob, events: @escaping @Sendable (CompletionEvent) -> Void) throws -> Ticket {
        try job.options.validate()
        let ticket = Ticket(job: job, events: events)
        condition.lock()
        defer { condition.unlock() }
        if stopped { throw EngineError.stopped }
        if running.count + waiting.count >= maxBatch + maxWaiting { throw EngineError.busy }
        waiting.append(ticket)
        condition.signal()
        return ticket
    }

    /// Stops `ticket`'s job before its next step; once this returns it gets no more events.
    public func cancel(_ ticket: Ticket) {
        ticket.cancel()
    }

    /// Ends the engine's thread after the current step (call it when done with the engine: the
    /// thread holds it); running jobs get no more events.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while !stopped && running.isEmpty && waiting.isEmpty { condition.wait() }
            if stopped {
                condition.unlock()
                return
            }
            running.removeAll { $0.ticket.cancelled }
            waiting.removeAll { $0.cancelled }
            var empty: [Ticket] = []
            while running.count < maxBatch, !waiting.isEmpty {
                if let ticket = admit(waiting.removeFirst()) { empty.append(ticket) }
            }
            let batch = running
            condition.unlock()
            // Callbacks run outside the engine's lock: they may submit or cancel.
            for ticket in empty { ticket.deliver(.finished(reason: "length", completionTokens: 0)) }
            if batch.isEmpty { continue }
            step(batch)
        }
    }

    /// Starts a job (under the lock); returns a job with nothing to generate, which ends at once.
    private func admit(_ ticket: Ticket) -> Ticket? {
        let job = ticket.job
        let stream = SampleStream(
            tokenizer: model.tokenizer, promptIDs: job.promptIDs, length: job.maxTokens, options: job.options,
            seed: job.seed, stop: job.stop, utf8Guard: utf8Guard)
        guard stream.isActive else { return ticket }
        running.append(
            Running(
                ticket: ticket, state: RecurrentState(config: model.network.config, batchSize: 1), stream: stream,
                prime: job.promptIDs.isEmpty ? [model.startID] : job.promptIDs))
        return nil
    }

    /// One forward step over `batch`, then a sample for every job past its prompt.
    private func step(_ batch: [Running]) {
        let ids = batch.map { $0.primed < $0.prime.count ? $0.prime[$0.primed] : $0.next }
        let logits: [Float]
        do {
            logits = try forward(ids, states: batch.map(\.state))
        } catch {
            // Ids come from the tokenizer and the sampler, so this is a bug: end every job.
            condition.lock()
            running.removeAll { r in batch.contains { $0 === r } }
            condition.unlock()
            for job in batch { job.ticket.deliver(.failed("\(error)")) }
            return
        }
        let V = model.tokenizer.vocabularySize
        // A job's last event goes out after it has left `running`, so that `load` never counts
        // a job whose client has already been told it ended.
        var ended: [(ticket: Ticket, last: CompletionEvent)] = []
        for (i, job) in batch.enumerated() {
            let ticket = job.ticket
            if ticket.cancelled { continue }
            if job.primed < job.prime.count {
                job.primed += 1
                if job.primed < job.prime.count { continue }
            }
            let row = logits[(i * V)..<((i + 1) * V)]
            do {
                let (id, text) = try job.stream.advance(logits: row)
                job.next = id
                let units = ticket.job.logprobs.map { [logprob(of: id, in: row, top: $0)] } ?? []
                ticket.deliver(.text(text, units: units))
            } catch {
                _ = job.stream.finish()
                ended.append((ticket, .failed("\(error)")))
                continue
            }
            if !job.stream.isActive {
                let reason = job.stream.sample.stoppedBy == nil ? "length" : "stop"
                ended.append((ticket, .finished(reason: reason, completionTokens: job.stream.sample.tokens.count)))
            }
        }
        condition.lock()
        stepsTaken += 1
        unitsGenerated += batch.count
        running.removeAll { r in ended.contains { $0.ticket === r.ticket } }
        condition.unlock()
        for (ticket, last) in ended { ticket.deliver(last) }
    }

    /// The batched forward step, its rows shared between the steppers' threads.
    private func forward(_ ids: [Int32], states: [RecurrentState]) throws -> [Float] {
        let parts = min(steppers.count, max(1, ids.count / 4))
        if parts == 1 {
            // Too few rows to split: the threads share each product's columns instead.
            steppers[0].columnThreads = steppers.count
            return try steppers[0].step(ids, states: states)
        }
        for stepper in steppers { stepper.columnThreads = 1 }
        let bounds = (0...parts).map { $0 * ids.count / parts }
        // Each iteration writes its own slot.
        struct Slots: @unchecked Sendable { let base: UnsafeMutablePointer<Result<[Float], Error>> }
        let slots = Slots(base: .allocate(capacity: parts))
        defer { slots.base.deallocate() }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let range = bounds[p]..<bounds[p + 1]
            (slots.base + p).initialize(
                to: Result { try steppers[p].step(Array(ids[range]), states: Array(states[range])) })
        }
        let results = (0..<parts).map { (slots.base + $0).move() }
        var logits: [Float] = []
        logits.reserveCapacity(ids.count * model.tokenizer.vocabularySize)
        for part in results { logits += try part.get() }
        return logits
    }

    /// The log-softmax of `id` in `row`, and the `top` most likely units.
    private func logprob(of id: Int32, in row: ArraySlice<Float>, top: Int) -> UnitLogprob {
        let maximum = Double(row.max() ?? 0)
        let logTotal = log(row.reduce(0.0) { $0 + exp(Double($1) - maximum) }) + maximum
        let tokenizer = model.tokenizer
        let base = row.startIndex
        let best =
            top > 0 ? row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(top) : []
        return UnitLogprob(
            unit: tokenizer.decode([id]), logprob: Double(row[base + Int(id)]) - logTotal,
            top: best.map { (tokenizer.decode([Int32($0 - base)]), Double(row[$0]) - logTotal) })
    }
}
