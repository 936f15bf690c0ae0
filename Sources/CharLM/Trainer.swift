import CharIO
import CharNN
import CharTokenizer
import Foundation

/// Trains a character model on a corpus with truncated BPTT, writing a run directory that
/// never becomes unloadable, and resumes such a run exactly where it stopped.
///
/// ```swift
/// let trainer = try Trainer.start(corpus: corpusURL, runDirectory: runURL, config: RunConfig())
/// let summary = try trainer.train { event in print(event) }
/// ```
///
/// Starting and resuming are in Trainer+Setup.swift; validation, checkpoints and previews in
/// Trainer+Checkpoints.swift; the run directory's files and their invariants in RunDirectory.swift.
public final class Trainer: @unchecked Sendable {
    public let run: RunDirectory
    public private(set) var config: RunConfig
    public let tokenizer: Tokenizer
    public let corpus: Corpus
    public let network: Network
    let optimizer: Optimizer
    /// The exponential moving average of the weights (with `averagingDecay`): what validation,
    /// previews and best/ see. nil: they see `network`.
    let averaged: Network?
    /// The weights validation, previews and best/ use.
    var evaluated: Network { averaged ?? network }
    /// The hidden state carried from one chunk to the next, (layers, batch, hidden), and its
    /// copy from before the step, put back when a step is not applied.
    let hidden: RecurrentState
    private let hiddenBefore: RecurrentState
    let batcher: StreamBatcher
    public internal(set) var state: TrainerState
    var metrics: MetricsLog
    let resumedFrom: Int?
    let runner: BatchRunner
    /// A labelling run's vocabulary and candidates (nil: a language model).
    let tagging: TaggingScheme?
    /// Things to tell the user when training starts (options changed on resume).
    var startNotices: [String] = []
    /// Held while this trainer may write the run.
    var lock: DirectoryLock?
    /// Seconds the last validation took per unit, to keep time for the validation at the end
    /// within a time limit.
    var validationSecondsPerUnit: Double?
    /// The ranks of a distributed run (nil: this process trains alone). Every rank runs this
    /// same trainer on identical state; each computes the gradient of its share of the batch's
    /// streams, the shares are summed, and all take the same step. Only rank 0 writes.
    let communicator: Communicator?
    /// This rank's streams of each batch, when distributed.
    let rows: Range<Int>
    /// Whether this process writes the run directory (rank 0, or a process alone).
    var writes: Bool { communicator?.isLeader ?? true }

    init(
        run: RunDirectory, config: RunConfig, tokenizer: Tokenizer, corpus: Corpus, network: Network,
        optimizer: Optimizer, hidden: RecurrentState, averaged: Network? = nil, state: TrainerState,
        resumedFrom: Int?, communicator: Communicator? = Distributed.world
    ) throws {
        let t = config.training
        self.communicator = communicator
        rows = communicator?.rows(batchSize: t.batchSize) ?? 0..<t.batchSize
        var state = state
        state.ranks = communicator.map(\.size) ?? (state.ranks == nil ? nil : 1)
        if let communicator, t.batchSize < communicator.size {
            throw CharLMError.invalidOptions(
                "a batch of \(t.batchSize) streams cannot be shared by \(communicator.size) ranks; give --batch at least "
                    + "\(communicator.size)")
        }
        self.run = run
        self.config = config
        self.tokenizer = tokenizer
        self.corpus = corpus
        self.network = network
        self.optimizer = optimizer
        self.averaged = averaged
        self.hidden = hidden
        hiddenBefore = hidden.clone()
        self.state = state
        self.resumedFrom = resumedFrom
        batcher = try StreamBatcher(
            data: corpus.train, batchSize: t.batchSize, seqLength: t.seqLength, name: config.corpus ?? "corpus")
        guard corpus.validation.count >= 2 else {
            throw CharLMError.badCorpus(
                path: config.corpus ?? "corpus",
                reason:
                    "its validation split has \(corpus.validation.count) units; it needs at least 2 (hold out a "
                    + "larger fraction, or give a validation file)"
            )
        }
        let needed = BatchRunner.workingMemory(
            config: config.model, batchSize: t.batchSize, seqLength: t.seqLength, training: true)
        let physical = Double(ProcessInfo.processInfo.physicalMemory)
        guard needed < 0.8 * physical else {
            throw CharLMError.invalidOptions(
                String(
                    format:
                        "a training step of this model needs about %.1f GB of memory, more than this machine's %.1f "
                        + "GB allow; lower the batch size, the sequence length or the hidden size",
                    needed / 1e9, physical / 1e9))
        }
        if !t.samplePrompt.isEmpty {
            do { _ = try tokenizer.encode(t.samplePrompt) } catch let error as TokenizerError {
                throw CharLMError.invalidOptions("the sample prompt: \(error.localizedDescription)")
            }
        }
        tagging = try t.task.map { try TaggingScheme(task: $0, tokenizer: tokenizer) }
        runner = BatchRunner(
            network: network, batchSize: rows.count, seqLength: t.seqLength, threads: t.threads,
            globalRowOffset: rows.lowerBound, globalBatchSize: t.batchSize, candidates: tagging?.candidates)
        metrics = MetricsLog(url: run.metricsURL, layers: config.model.layers)
    }

    // MARK: - The training loop

    /// Trains until a limit is reached, `shouldStop` returns true (checked every step: wire it
    /// to signals), validation stops improving, or training diverges. Saves the latest
    /// checkpoint at every validation and on the way out, and the best one whenever the
    /// validation loss improves.
    public func train(shouldStop: () -> Bool = { false }, onEvent: (TrainingEvent) -> Void = { _ in }) throws
        -> TrainingSummary
    {
        if lock == nil && writes { lock = try run.lock() }
        try checkRanksAgree()
        defer {
            lock?.release()
            lock = nil
        }
        let t = config.training
        if resumedFrom != nil { metrics.load(upTo: state.step) }
        onEvent(
            .started(
                TrainingStart(
                    runDirectory: run.url.path, resumedFromStep: resumedFrom, parameterCount: network.parameterCount,
                    vocabularySize: tokenizer.vocabularySize, trainUnits: corpus.train.count,
                    validationUnits: corpus.validation.count, testUnits: corpus.test.count,
                    stepsPerEpoch: batcher.chunksPerEpoch, kernels: BLAS.info.summary, threads: runner.threads,
                    ranks: communicator?.size ?? 1)))
        for notice in startNotices { onEvent(.notice(notice)) }

        var session = Session(
            elapsedBefore: state.elapsedSeconds, lastValidation: state.history.last?.validationLoss,
            evaluatedAtStep: state.step)
        let gradients = FloatBuffer(count: network.parameterCount)
        var reason: TrainingSummary.Reason
        steps: while true {
            var timeUp = timeLimitReached(session), interrupted = shouldStop()
            if let communicator {
                // Every rank stops at the same step: as soon as one of them says so.
                let flags = try communicator.max([timeUp ? 1 : 0, interrupted ? 1 : 0])
                timeUp = flags[0] != 0
                interrupted = flags[1] != 0
            }
            if let stop = limitReached(session, timeUp: timeUp, interrupted: interrupted) {
                reason = stop
                break
            }
            let step = state.step + 1
            var timeUsed = budgetTimeUsed(session)
            if let communicator, let used = timeUsed {
                // Each rank's clock differs a little: all must take the step at one rate.
                timeUsed = try communicator.sum([used])[0] / Double(communicator.size)
            }
            switch try trainStep(step, gradients: gradients, timeUsed: timeUsed) {
            case .applied(let outcome):
                session.window.add(outcome)
                if step % t.logEvery == 0 { report(step, session: &session, onEvent: onEvent) }
            case .notFinite(let rate):
                if recoverFromBadStep(step, rate: rate, onEvent: onEvent) == .stop {
                    reason = .diverged
                    break steps
                }
            }
            // The preview draws from the trainer's generator: it runs before a checkpoint of the
            // same step, so that the checkpoint holds the generator as the next step finds it.
            if t.sampleEvery > 0 && step % t.sampleEvery == 0 {
                onEvent(.sample(step: step, text: try preview(length: t.sampleLength)))
            }
            if step % t.evalEvery == 0 {
                guard let loss = try validate(step: step, scheduled: true, elapsed: session.elapsed, onEvent: onEvent)
                else {
                    reason = .diverged
                    break
                }
                session.lastValidation = loss
                session.evaluatedAtStep = step
                if let patience = t.earlyStoppingPatience, state.evaluationsWithoutImprovement >= patience {
                    reason = .earlyStopping
                    break
                }
            }
        }
        try finish(reason, session: &session, onEvent: onEvent)
        let testLoss = reason == .diverged || reason == .interrupted ? nil : try bestTestLoss(onEvent: onEvent)
        return TrainingSummary(
            reason: reason, step: state.step,
            epoch: Double(state.epoch) + Double(state.cursor) / Double(batcher.chunksPerEpoch),
            bestValidationLoss: state.bestValidationLoss,
            bestStep: state.bestStep, lastValidationLoss: session.lastValidation,
            elapsedSeconds: session.elapsed, runDirectory: run.url.path, testLoss: testLoss,
            testUnits: corpus.test.count)
    }

    /// What one call of `train` keeps between steps.
    struct Session {
        let started = Date()
        /// Training time of earlier sessions of this run.
        let elapsedBefore: Double
        var window = ProgressWindow()
        var lastValidation: Double?
        /// The step of the last validation (a run that ends elsewhere is validated at its end).
        var evaluatedAtStep: Int
        /// The step this session started at.
        let firstStep: Int

        init(elapsedBefore: Double, lastValidation: Double?, evaluatedAtStep: Int) {
            self.elapsedBefore = elapsedBefore
            self.lastValidation = lastValidation
            self.evaluatedAtStep = evaluatedAtStep
            firstStep = evaluatedAtStep
        }

        /// Training time of the whole run so far.
        var elapsed: Double { elapsedBefore + Date().timeIntervalSince(started) }
    }

    // MARK: - Stopping

    /// The fraction of the time limit used, if there is one: training ends where the time left
    /// is what the final validations need.
    func budgetTimeUsed(_ session: Session) -> Double? {
        guard let limit = config.training.timeLimit else { return nil }
        let end = limit - finalValidationSeconds(session)
        return end > 0 ? session.elapsed / end : 1
    }

    /// The learning-rate schedule's factor at `step`: `auto` decays to the end of a step or time
    /// limit, `cosine` to the end of an epoch limit too.
    func scheduleFactor(step: Int, timeUsed: Double?) -> Float {
        let t = config.training
        let total = t.schedule == .auto ? t.maxSteps : totalSteps
        return t.schedule.factor(step: step, totalSteps: total, timeUsed: timeUsed)
    }

    /// Steps this run takes in all, when a step or epoch limit says (for the schedule and the ETA).
    var totalSteps: Int? {
        let t = config.training
        return t.maxSteps
            ?? t.epochs.map { epochs in
                let (product, overflow) = epochs.multipliedReportingOverflow(by: batcher.chunksPerEpoch)
                return overflow ? Int.max : product
            }
    }

    /// Why training must stop before the next step, if it must. Starts a new epoch (with a
    /// fresh hidden state) when the streams have been read to their end.
    private func limitReached(_ session: Session, timeUp: Bool, interrupted: Bool) -> TrainingSummary.Reason? {
        let t = config.training
        if let maxSteps = t.maxSteps, state.step >= maxSteps { return .maxSteps }
        if state.cursor >= batcher.chunksPerEpoch {
            state.cursor = 0
            state.epoch += 1
            hidden.reset()
        }
        if let epochs = t.epochs, state.epoch >= epochs { return .epochs }
        if timeUp { return .time }
        if interrupted { return .interrupted }
        return nil
    }

    /// Whether the time limit leaves no room for another step and the final validations.
    private func timeLimitReached(_ session: Session) -> Bool {
        guard let limit = config.training.timeLimit else { return false }
        return session.elapsed + finalValidationSeconds(session) >= limit
    }

    /// How long the validations `finish` runs would take if training stopped now, estimated
    /// from the last one (or, before any, from the training steps: a forward pass alone costs
    /// about a third of a training step, so half of one per unit is a safe guess): a time
    /// limit covers them, so that `--time 10m` ends in 10 minutes.
    private func finalValidationSeconds(_ session: Session) -> Double {
        guard state.step > 0 else { return 0 }
        let steps = state.step - session.firstStep
        let trained = Date().timeIntervalSince(session.started)
        let unitsPerStep = Double(config.training.batchSize * config.training.seqLength)
        let estimate = steps > 0 ? 0.5 * trained / (Double(steps) * unitsPerStep) : nil
        guard let perUnit = validationSecondsPerUnit ?? estimate else { return 0 }
        var units = session.evaluatedAtStep == state.step ? 0 : validationSample.count
        if validationSample.count < corpus.validation.count { units += corpus.validation.count }
        // And the best checkpoint's test loss.
        units += corpus.test.count
        return perUnit * Double(units)
    }

    /// Saves on the way out: a checkpoint when interrupted, a last validation (and best/) when
    /// a limit ended a run between validations.
    private func finish(_ reason: TrainingSummary.Reason, session: inout Session, onEvent: (TrainingEvent) -> Void)
        throws
    {
        switch reason {
        case .diverged:
            break
        case .interrupted:
            state.elapsedSeconds = session.elapsed
            try saveLatest(onEvent: onEvent)
        default:
            // A run stopped by its time limit has used it, the last validations included (they
            // run inside it): resuming with the same limit must stop at once, not train on for
            // the time they were given.
            let limit = config.training.timeLimit
            let elapsed = reason == .time ? max(session.elapsed, limit ?? 0) : session.elapsed
            if session.evaluatedAtStep != state.step && state.step > 0 {
                // For the user only: it updates best/ but not the counters that steer training, so
                // that extending the limit later continues as one uninterrupted run would.
                guard
                    let loss = try validate(step: state.step, scheduled: false, elapsed: elapsed, onEvent: onEvent)
                else { return }
                session.lastValidation = loss
            } else if reason == .time && state.step > 0 && state.elapsedSeconds < elapsed {
                state.elapsedSeconds = elapsed
                try saveLatest(onEvent: onEvent)
            }
            // The summary gives the loss on the whole validation split, which scheduled
            // validations may only sample.
            if state.step > 0 && validationSample.count < corpus.validation.count {
                session.lastValidation = try validationLoss(on: corpus.validation, step: state.step, onEvent: onEvent)
            }
        }
    }

    // MARK: - One step

    enum StepOutcome {
        /// The update was applied; what the step measured.
        case applied(ProgressWindow.Step)
        /// The loss or the gradients were NaN or infinite: nothing was updated and the hidden
        /// state is as it was before the step, which would have used `rate`.
        case notFinite(rate: Float)
    }

    /// One optimizer step on the next chunk: forward, backward, clipping, update.
    private func trainStep(_ step: Int, gradients: FloatBuffer, timeUsed: Double?) throws -> StepOutcome {
        let t = config.training
        let batch =
            tagging.map { batcher.labellingBatch(chunk: state.cursor, inputOf: $0.inputOf) }
            ?? batcher.batch(chunk: state.cursor)
        // A tagger reads each chunk on its own: no state is carried into it.
        if tagging != nil { hidden.reset() }
        let rate = t.optimizer.learningRate * scheduleFactor(step: step, timeUsed: timeUsed) * state.rateFactor
        hiddenBefore.copy(from: hidden)
        let key = Self.dropoutKey(seed: t.seed, step: step)
        let loss =
            try communicator.map { try distributedStep(batch, gradients: gradients, dropoutKey: key, $0) }
            ?? runner.trainStep(
                inputs: batch.inputs, targets: batch.targets, state: hidden, gradients: gradients, dropoutKey: key)
        state.cursor += 1
        state.step = step
        state.charactersSeen =
            min(state.charactersSeen, Int.max - t.batchSize * t.seqLength) + t.batchSize * t.seqLength
        guard loss.isFinite, GradientClipping.allFinite(gradients) else {
            hidden.copy(from: hiddenBefore)
            return .notFinite(rate: rate)
        }
        state.consecutiveBadSteps = 0
        let norm =
            t.gradClip > 0 ? GradientClipping.clip(gradients, maxNorm: t.gradClip) : GradientClipping.norm(gradients)
        let clipped = t.gradClip > 0 && norm > Double(t.gradClip)
        let layerNorms =
            step % t.logEvery == 0 ? layerGradientNorms(gradients, scale: clipped ? norm / Double(t.gradClip) : 1) : []
        optimizer.update(parameters: network.parameters, gradients: gradients, learningRate: rate)
        network.parametersDidChange()
        if let averaged, let decay = t.averagingDecay {
            Self.average(averaged, toward: network, decay: decay, step: step)
        }
        state.learningRate = rate
        state.runningLoss += loss
        state.runningCount += 1
        return .applied(
            ProgressWindow.Step(loss: loss, gradientNorm: norm, clipped: clipped, layerGradientNorms: layerNorms))
    }

    /// Ranks that were started with different binaries, options, tokenizers or corpora would
    /// train different models while exchanging gradients: every rank compares a hash of what
    /// it is about to train with the others' before the first step.
    private func checkRanksAgree() throws {
        guard let communicator else { return }
        // Threads are per rank (machines may differ); everything else must agree.
        var shared = config
        shared.training.threads = 1
        var text = (try? String(decoding: shared.jsonData(), as: UTF8.self)) ?? ""
        text += "\u{0}\(tokenizer.vocabulary.map { $0.utf8 })\u{0}\(corpus.train.count) \(corpus.validation.count)"
        text += "\u{0}\(state.step) \(state.cursor) \(network.parameterCount) \(Distributed.buildIdentifier)"
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let (low, high) = try communicator.range(of: hash)
        guard low == high else {
            throw CharLMError.distributed(
                "the \(communicator.size) ranks of this job differ (rank \(communicator.rank) has fingerprint "
                    + String(hash, radix: 16)
                    + "): every rank must run the same charlm build with the same options on the same corpus and run "
                    + "directory")
        }
    }

    /// This rank's share of a step: its streams forward and back, then the gradients and the
    /// loss summed over the ranks (the global batch's mean: each share is already divided by
    /// the global count), and every rank's new hidden state gathered, so that every rank
    /// leaves the step with the whole batch's state and the same gradient.
    private func distributedStep(
        _ batch: (inputs: [Int32], targets: [Int32]), gradients: FloatBuffer, dropoutKey: UInt64,
        _ communicator: Communicator
    ) throws -> Double {
        let t = config.training, T = batch.inputs.count / t.batchSize
        let ids = (rows.lowerBound * T)..<(rows.upperBound * T)
        let local = RecurrentState(config: config.model, batchSize: rows.count)
        for r in 0..<rows.count { local.copy(row: r, from: hidden, row: rows.lowerBound + r) }
        let share = try runner.trainStep(
            inputs: Array(batch.inputs[ids]), targets: Array(batch.targets[ids]), state: local, gradients: gradients,
            dropoutKey: dropoutKey)
        try gradients.withUnsafeMutableBufferPointer { try communicator.sum($0.baseAddress!, count: $0.count) }
        let loss = try communicator.sum([share])[0]
        // (layers, rows, H) of h, then of c: each rank's block, gathered in rank order.
        func pack(_ state: RecurrentState) -> [Float] { state.h.array + (state.c?.array ?? []) }
        let perRow = config.model.layers * config.model.hiddenSize * (local.c == nil ? 1 : 2)
        let counts = (0..<communicator.size).map {
            Communicator.rows(of: $0, ranks: communicator.size, batchSize: t.batchSize).count * perRow
        }
        let all = try communicator.gather(pack(local), counts: counts)
        var offset = 0
        for rank in 0..<communicator.size {
            let theirs = Communicator.rows(of: rank, ranks: communicator.size, batchSize: t.batchSize)
            let block = RecurrentState(config: config.model, batchSize: theirs.count)
            block.h.withUnsafeMutableBufferPointer { h in
                for i in 0..<h.count { h[i] = all[offset + i] }
                offset += h.count
            }
            block.c?.withUnsafeMutableBufferPointer { c in
                for i in 0..<c.count { c[i] = all[offset + i] }
                offset += c.count
            }
            for r in 0..<theirs.count { hidden.copy(row: theirs.lowerBound + r, from: block, row: r) }
        }
        return loss
    }

    enum Recovery { case skip, stop }

    /// A step whose loss or gradients were NaN or infinite was not applied: skip it and halve
    /// the learning rate, or stop (the policy says so, or three bad steps came in a row).
    private func recoverFromBadStep(_ step: Int, rate: Float, onEvent: (TrainingEvent) -> Void) -> Recovery {
        state.badSteps += 1
        state.consecutiveBadSteps += 1
        if config.training.nanPolicy == .stop || state.consecutiveBadSteps >= 3 {
            onEvent(
                .notice(
                    "step \(step): loss or gradients are NaN/Inf; stopping with the last good checkpoint kept "
                        + "(\(run.url.path))"
                ))
            return .stop
        }
        state.rateFactor *= 0.5
        onEvent(
            .notice("step \(step): loss or gradients are NaN/Inf; step skipped, learning rate halved to \(rate * 0.5)"))
        return .skip
    }

    /// Every `logEvery` steps: a metrics row, a clipping notice, a progress event.
    private func report(_ step: Int, session: inout Session, onEvent: (TrainingEvent) -> Void) {
        let t = config.training, w = session.window
        let speed = w.charactersPerSecond(charactersPerStep: t.batchSize * t.seqLength)
        let elapsed = session.elapsed
        metrics.append(
            MetricsRow(
                step: step, epoch: state.epoch, characters: state.charactersSeen, trainLoss: w.meanLoss,
                validationLoss: nil, learningRate: state.learningRate, charactersPerSecond: speed,
                gradientNorm: w.lastNorm, clippedFraction: w.clippedFraction,
                layerGradientNorms: w.lastLayerNorms, elapsedSeconds: elapsed))
        if w.clipped > 0 {
            onEvent(
                .notice(
                    "steps \(step - w.steps + 1)-\(step): gradient norm above \(t.gradClip) on \(w.clipped) of "
                        + "\(w.steps) steps (last \(String(format: "%.2f", w.lastNorm))); clipped"
                ))
        }
        onEvent(
            .progress(
                TrainingProgress(
                    step: step, epoch: state.epoch,
                    epochProgress: Double(state.cursor) / Double(batcher.chunksPerEpoch), trainLoss: w.meanLoss,
                    validationLoss: session.lastValidation, learningRate: state.learningRate,
                    charactersPerSecond: speed, elapsedSeconds: elapsed,
                    etaSeconds: eta(speed: speed, elapsed: elapsed), gradientNorm: w.lastNorm, clippedSteps: w.clipped,
                    steps: w.steps)))
        session.window = ProgressWindow()
    }

    private func eta(speed: Double, elapsed: Double) -> Double? {
        let t = config.training
        var candidates: [Double] = []
        if let total = totalSteps, speed > 0 {
            candidates.append(Double(max(0, total - state.step)) * Double(t.batchSize * t.seqLength) / speed)
        }
        if let limit = t.timeLimit { candidates.append(max(0, limit - elapsed)) }
        return candidates.min()
    }

    /// Gradient norm of each layer's weights and biases, then of the output layer (before clipping).
    private func layerGradientNorms(_ gradients: FloatBuffer, scale: Double) -> [Double] {
        let layout = network.layout
        return (layout.layerRanges + [layout.outputRange]).map {
            GradientClipping.norm(gradients, offset: $0.lowerBound, count: $0.count) * scale
        }
    }

    /// One step of the moving average: a += (1 - d)(w - a), with d = min(decay, (1 + step) /
    /// (10 + step)) so that early on the average follows the weights rather than their
    /// random start.
    static func average(_ averaged: Network, toward network: Network, decay: Float, step: Int) {
        let d = min(decay, Float(1 + step) / Float(10 + step))
        averaged.parameters.move(toward: network.parameters, weight: 1 - d)
        averaged.parametersDidChange()
    }

    /// The dropout masks of a step depend only on the seed and the step (and, inside the
    /// network, on layer, time step and global row), so a resumed run draws the same masks.
    static func dropoutKey(seed: UInt64, step: Int) -> UInt64 {
        var x = seed &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }
}

/// Steps since the last progress report: their losses, clipping and speed.
struct ProgressWindow {
    struct Step {
        let loss: Double
        let gradientNorm: Double
        let clipped: Bool
        /// Per layer, measured on logging steps only (empty otherwise).
        let layerGradientNorms: [Double]
    }

    let started = Date()
    private(set) var steps = 0
    private(set) var clipped = 0
    private var lossSum = 0.0
    private(set) var lastNorm = 0.0
    private(set) var lastLayerNorms: [Double] = []

    mutating func add(_ step: Step) {
        steps += 1
        lossSum += step.loss
        lastNorm = step.gradientNorm
        if step.clipped { clipped += 1 }
        if !step.layerGradientNorms.isEmpty { lastLayerNorms = step.layerGradientNorms }
    }

    var meanLoss: Double { lossSum / Double(max(steps, 1)) }
    var clippedFraction: Double { Double(clipped) / Double(max(steps, 1)) }

    func charactersPerSecond(charactersPerStep: Int) -> Double {
        Double(steps * charactersPerStep) / max(Date().timeIntervalSince(started), 1e-9)
    }
}
