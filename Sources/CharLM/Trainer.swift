import CharIO
import CharNN
import CharTokenizer
import Foundation

/// The shape of a new model; the vocabulary size comes from the tokenizer.
///
/// The defaults were chosen by measurement: on tinyshakespeare, in 10 minutes on a 2-core CPU,
/// 2x384 with dropout 0.25 reached the lowest validation loss of 2x256 (dropout 0, 0.2),
/// 2x384 (0.25, 0.3) and 2x512 (0.3); see the README's benchmarks.
public struct ModelShape: Sendable, Equatable {
    public var cell: CellKind = .lstm
    public var layers: Int = 2
    public var hiddenSize: Int = 384
    public var dropout: Float = 0.25

    public init(cell: CellKind = .lstm, layers: Int = 2, hiddenSize: Int = 384, dropout: Float = 0.25) {
        self.cell = cell
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.dropout = dropout
    }
}

/// Options given again when resuming: each one set must match the run.
public struct ResumeExpectations: Sendable {
    public var shape = PartialShape()
    public var tokenizer = PartialTokenizer()

    /// Tokenizer options given again; each must match the run's tokenizer.json.
    public struct PartialTokenizer: Sendable {
        public var form: NormalizationForm?
        public var unit: TokenUnit?
        public var fallback: Fallback?
        public var caseFold: Bool?
        public var minCount: Int?
        public init() {}

        func differences(from c: TokenizerConfig) -> [String] {
            var out: [String] = []
            if let v = form, v != c.normalization.form { out.append("--normalization \(v.rawValue) (the run uses \(c.normalization.form.rawValue))") }
            if let v = unit, v != c.unit { out.append("--unit \(v.rawValue) (the run uses \(c.unit.rawValue))") }
            if let v = fallback, v != c.fallback { out.append("--fallback \(v.rawValue) (the run uses \(c.fallback.rawValue))") }
            if let v = caseFold, v != c.normalization.caseFold { out.append(v ? "--case-fold (the run does not fold case)" : "--no-case-fold (the run folds case)") }
            if let v = minCount, v != c.minCount { out.append("--min-count \(v) (the run uses \(c.minCount))") }
            return out
        }
    }
    public var training = PartialTraining()

    /// Training options that decide what the model learns; changing them mid-run would make
    /// the resumed run a different one.
    public struct PartialTraining: Sendable {
        public var batchSize: Int?
        public var seqLength: Int?
        public var optimizer: OptimizerKind?
        public var weightDecay: Float?
        public var momentum: Float?
        public var schedule: LearningRateSchedule?
        public var gradClip: Float?
        public var valFraction: Double?
        public var validationFile: String?
        public var seed: UInt64?
        public init() {}

        func differences(from c: TrainingConfig) -> [String] {
            var out: [String] = []
            if let v = batchSize, v != c.batchSize { out.append("--batch \(v) (the run uses \(c.batchSize))") }
            if let v = seqLength, v != c.seqLength { out.append("--seq-length \(v) (the run uses \(c.seqLength))") }
            if let v = optimizer, v != c.optimizer.kind { out.append("--optimizer \(v.rawValue) (the run uses \(c.optimizer.kind.rawValue))") }
            if let v = weightDecay, v != c.optimizer.weightDecay { out.append("--weight-decay \(v) (the run uses \(c.optimizer.weightDecay))") }
            if let v = momentum, v != c.optimizer.momentum { out.append("--momentum \(v) (the run uses \(c.optimizer.momentum))") }
            if let v = schedule, v != c.schedule { out.append("--lr-schedule \(v) (the run uses \(c.schedule))") }
            if let v = gradClip, v != c.gradClip { out.append("--grad-clip \(v) (the run uses \(c.gradClip))") }
            if let v = valFraction, v != c.valFraction { out.append("--val-fraction \(v) (the run uses \(c.valFraction))") }
            if let v = validationFile, v != c.validationFile { out.append("--val-file \(v) (the run uses \(c.validationFile ?? "a split of the corpus"))") }
            if let v = seed, v != c.seed { out.append("--seed \(v) (the run uses \(c.seed))") }
            return out
        }
    }

    public struct PartialShape: Sendable {
        public var cell: CellKind?
        public var layers: Int?
        public var hiddenSize: Int?
        public var dropout: Float?
        public init() {}
    }

    public init() {}
}

/// Settings a resumed run may change.
public struct ResumeOverrides: Sendable {
    public var maxSteps: Int??
    public var epochs: Int??
    public var timeLimit: Double??
    public var evalEvery: Int?
    public var sampleEvery: Int?
    public var threads: Int?
    public var logEvery: Int?
    public var earlyStoppingPatience: Int??
    public var nanPolicy: NaNPolicy?
    /// A new base learning rate (to continue a run that diverged, say).
    public var learningRate: Float?
    public init() {}
}

/// Trains a character model on a corpus with truncated BPTT, writing a run directory that
/// never becomes unloadable, and resumes such a run exactly where it stopped.
public final class Trainer: @unchecked Sendable {
    public let run: RunDirectory
    public private(set) var config: RunConfig
    public let tokenizer: Tokenizer
    public let corpus: Corpus
    public let network: Network
    let optimizer: Optimizer
    let hidden: RecurrentState
    let batcher: StreamBatcher
    private(set) var state: TrainerState
    private var metrics: MetricsLog
    private let resumedFrom: Int?
    private var runner: BatchRunner
    /// Things to tell the user when training starts (options changed on resume).
    private var startNotices: [String] = []
    /// Held while this trainer may write the run.
    private var lock: DirectoryLock?
    /// Test hook: steps for which the loss is treated as NaN.
    var simulateNaN: (@Sendable (Int) -> Bool)?

    private init(run: RunDirectory, config: RunConfig, tokenizer: Tokenizer, corpus: Corpus, network: Network,
                 optimizer: Optimizer, hidden: RecurrentState, state: TrainerState, resumedFrom: Int?) throws {
        self.run = run
        self.config = config
        self.tokenizer = tokenizer
        self.corpus = corpus
        self.network = network
        self.optimizer = optimizer
        self.hidden = hidden
        self.state = state
        self.resumedFrom = resumedFrom
        batcher = try StreamBatcher(data: corpus.train, batchSize: config.training.batchSize, seqLength: config.training.seqLength,
                                    name: config.corpus ?? "corpus")
        guard corpus.validation.count >= 2 else {
            throw CharLMError.badCorpus(path: config.corpus ?? "corpus", reason: "its validation split has \(corpus.validation.count) units; it needs at least 2 (raise --val-fraction or give --val-file)")
        }
        let needed = BatchRunner.workingMemory(config: config.model, batchSize: config.training.batchSize,
                                               seqLength: config.training.seqLength, training: true)
        let physical = Double(ProcessInfo.processInfo.physicalMemory)
        guard needed < 0.8 * physical else {
            throw CharLMError.invalidOptions(String(format: "a training step of this model needs about %.1f GB of memory, more than this machine's %.1f GB allow; lower --batch, --seq-length or --hidden", needed / 1e9, physical / 1e9))
        }
        runner = BatchRunner(network: network, batchSize: config.training.batchSize, seqLength: config.training.seqLength,
                             threads: config.training.threads)
        metrics = MetricsLog(url: run.metricsURL, layers: config.model.layers)
    }

    // MARK: - Starting and resuming

    /// Prepares a new run: builds the tokenizer from the corpus, encodes and splits it,
    /// initialises the model, and creates the run directory (config.json, tokenizer.json).
    ///
    /// Every check that can fail runs before anything is written.
    /// - Parameter shouldStop: checked between the preparation's phases; when it holds,
    ///   preparation ends with `CharLMError.interrupted` and nothing is written.
    public static func start(corpus corpusURL: URL, runDirectory: URL, shape: ModelShape, training: TrainingConfig,
                             tokenizerConfig: TokenizerConfig, overwrite: Bool,
                             shouldStop: () -> Bool = { false }) throws -> Trainer {
        func checkpoint() throws {
            if shouldStop() { throw CharLMError.interrupted("stopped while preparing the run; nothing was written") }
        }
        try training.validate()
        let run = RunDirectory(runDirectory)
        if run.exists && !overwrite { throw CharLMError.runExists(path: run.url.path) }
        try Corpus.checkReadable(corpusURL)
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer.build(corpusFile: corpusURL, config: tokenizerConfig)
        } catch let error as TokenizerError {
            throw CharLMError.badCorpus(path: corpusURL.path, reason: error.localizedDescription)
        }
        try checkpoint()
        let corpus = try Corpus.load(corpusURL, tokenizer: tokenizer, valFraction: training.valFraction,
                                     validationFile: training.validationFile.map { URL(fileURLWithPath: $0) })
        try checkpoint()
        let model = NetworkConfig(cell: shape.cell, vocabularySize: tokenizer.vocabularySize, hiddenSize: shape.hiddenSize,
                                  layers: shape.layers, dropout: shape.dropout)
        do { try model.validate() } catch let error as NetworkError { throw CharLMError.invalidOptions("\(error)") }
        var config = RunConfig(model: model, training: training, corpus: corpusURL.path)
        config.corpusUnits = corpus.train.corpus.count
        let network = try Network(config: model, seed: training.seed)
        let optimizer = try Optimizer(config: training.optimizer, parameterCount: network.parameterCount)
        var state = TrainerState()
        state.learningRate = training.optimizer.learningRate
        state.rng = SeededGenerator(seed: training.seed ^ 0x5A5A_5A5A).state
        let trainer = try Trainer(run: run, config: config, tokenizer: tokenizer, corpus: corpus, network: network,
                                  optimizer: optimizer, hidden: RecurrentState(config: model, batchSize: training.batchSize),
                                  state: state, resumedFrom: nil)
        // A step-0 checkpoint, so that even a crash during the first save leaves one to resume.
        trainer.lock = try run.create(config: config, tokenizer: tokenizer, overwrite: overwrite) { staging in
            try staging.saveLatest(network: network, optimizer: optimizer, hidden: trainer.hidden, trainer: state)
        }
        return trainer
    }

    /// Reopens a run at its latest checkpoint.
    /// - Parameters:
    ///   - corpus: the corpus file, if given again (default: the path recorded in config.json).
    ///   - expecting: options the user gave again; each must match the run.
    ///   - overrides: stop conditions and reporting settings that may change.
    public static func resume(runDirectory: URL, corpus corpusURL: URL?, expecting: ResumeExpectations,
                              overrides: ResumeOverrides) throws -> Trainer {
        let run = RunDirectory(runDirectory)
        guard run.exists else { throw CharLMError.missingFile(path: run.url.path, hint: "nothing to resume") }
        let lock = try run.lock()
        run.tidy()
        var config = try RunConfig.load(from: run.configURL)
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.load(from: run.tokenizerURL) } catch let error as TokenizerError {
            throw CharLMError.invalidFile(path: run.tokenizerURL.path, reason: error.localizedDescription)
        }
        try check(expecting, against: config, tokenizer: tokenizer)
        var training = config.training
        var notices: [String] = []
        if let v = overrides.threads, v != training.threads {
            notices.append("--threads \(v) instead of the run's \(training.threads): the batch is split differently, so results differ from an uninterrupted run in the last bits")
        }
        if let v = overrides.learningRate, v != training.optimizer.learningRate {
            notices.append("learning rate changed from \(training.optimizer.learningRate) to \(v)")
        }
        if let v = overrides.maxSteps { training.maxSteps = v }
        if let v = overrides.epochs { training.epochs = v }
        if let v = overrides.timeLimit { training.timeLimit = v }
        if let v = overrides.evalEvery { training.evalEvery = v }
        if let v = overrides.sampleEvery { training.sampleEvery = v }
        if let v = overrides.threads { training.threads = v }
        if let v = overrides.logEvery { training.logEvery = v }
        if let v = overrides.earlyStoppingPatience { training.earlyStoppingPatience = v }
        if let v = overrides.nanPolicy { training.nanPolicy = v }
        if let v = overrides.learningRate { training.optimizer.learningRate = v }
        try training.validate()
        config.training = training
        guard let path = corpusURL?.path ?? config.corpus else {
            throw CharLMError.invalidOptions("the run does not record its corpus; give the corpus file again")
        }
        let corpus = try Corpus.load(URL(fileURLWithPath: path), tokenizer: tokenizer, valFraction: training.valFraction,
                                     validationFile: training.validationFile.map { URL(fileURLWithPath: $0) })
        if let recorded = config.corpusUnits, recorded != corpus.train.corpus.count {
            throw CharLMError.badCorpus(path: path, reason: "encodes to \(corpus.train.corpus.count) units, but the run was trained on \(recorded): the corpus changed since the run started")
        }
        config.corpus = path
        let network = try Network(config: config.model)
        let optimizer = try Optimizer(config: training.optimizer, parameterCount: network.parameterCount)
        let hidden = RecurrentState(config: config.model, batchSize: training.batchSize)
        let files = try run.latestCheckpointFiles()
        if files.source != run.url {
            var why = "its files disagree"
            do { _ = try RunDirectory.checkpoint(in: run.url) } catch { why = "\(error)" }
            notices.append("the latest checkpoint cannot be used (\(why)); resuming from the previous one, at step \(files.trainer.step)")
        }
        try RunDirectory.loadWeights(files.model, into: network, source: files.source.appendingPathComponent("model.safetensors").path)
        try RunDirectory.loadOptimizer(files.optimizer, into: optimizer, hidden: hidden,
                                       source: files.source.appendingPathComponent("optimizer.safetensors").path)
        let trainer = try Trainer(run: run, config: config, tokenizer: tokenizer, corpus: corpus, network: network,
                                  optimizer: optimizer, hidden: hidden, state: files.trainer, resumedFrom: files.trainer.step)
        trainer.startNotices = notices
        trainer.lock = lock
        guard files.trainer.cursor <= trainer.batcher.chunksPerEpoch else {
            throw CharLMError.invalidFile(path: run.trainerStateURL.path, reason: "data cursor \(files.trainer.cursor) is past the end of the corpus")
        }
        try writeDurably(config.jsonData(), to: run.configURL)
        return trainer
    }

    private static func check(_ expected: ResumeExpectations, against config: RunConfig, tokenizer: Tokenizer) throws {
        var conflicts: [String] = []
        let m = config.model
        if let v = expected.shape.cell, v != m.cell { conflicts.append("--cell \(v.rawValue) (the run is \(m.cell.rawValue))") }
        if let v = expected.shape.layers, v != m.layers { conflicts.append("--layers \(v) (the run has \(m.layers))") }
        if let v = expected.shape.hiddenSize, v != m.hiddenSize { conflicts.append("--hidden \(v) (the run has \(m.hiddenSize))") }
        if let v = expected.shape.dropout, v != m.dropout { conflicts.append("--dropout \(v) (the run has \(m.dropout))") }
        conflicts += expected.tokenizer.differences(from: tokenizer.config)
        conflicts += expected.training.differences(from: config.training)
        if !conflicts.isEmpty {
            throw CharLMError.invalidOptions("cannot resume \(config.corpus.map { "a run on \($0)" } ?? "this run") with \(conflicts.joined(separator: ", ")); drop those options to continue it as it was, or start a new run")
        }
    }

    // MARK: - Training

    /// Trains until a stop condition holds, `shouldStop` returns true (checked every step:
    /// wire it to SIGINT/SIGTERM), or training diverges. Saves the latest checkpoint at every
    /// validation and on the way out, and the best one whenever validation improves.
    public func train(shouldStop: () -> Bool = { false }, onEvent: (TrainingEvent) -> Void = { _ in }) throws -> TrainingSummary {
        if lock == nil { lock = try run.lock() }
        defer {
            lock?.release()
            lock = nil
        }
        let t = config.training
        let chunks = batcher.chunksPerEpoch
        let totalSteps = t.maxSteps ?? t.epochs.map { epochs in
            let (product, overflow) = epochs.multipliedReportingOverflow(by: chunks)
            return overflow ? Int.max : product
        }
        if resumedFrom != nil { metrics.load(upTo: state.step) }
        onEvent(.started(TrainingStart(
            runDirectory: run.url.path, resumedFromStep: resumedFrom, parameterCount: network.parameterCount,
            vocabularySize: tokenizer.vocabularySize, trainUnits: corpus.train.count, validationUnits: corpus.validation.count,
            stepsPerEpoch: chunks, kernels: BLAS.info.summary, threads: runner.threads)))
        for notice in startNotices { onEvent(.notice(notice)) }
        let gradients = FloatBuffer(count: network.parameterCount)
        let backup = RecurrentState(config: config.model, batchSize: t.batchSize)
        let sessionStart = Date()
        let elapsedBefore = state.elapsedSeconds
        var windowStart = Date(), windowSteps = 0, windowLoss = 0.0, windowClipped = 0, lastNorm = 0.0
        var lastValidation: Double? = state.history.last?.validationLoss
        var evaluatedAtStep: Int? = state.step
        var stopReason: TrainingSummary.Reason?

        func elapsed() -> Double { elapsedBefore + Date().timeIntervalSince(sessionStart) }

        while stopReason == nil {
            if let maxSteps = t.maxSteps, state.step >= maxSteps { stopReason = .maxSteps; break }
            if state.cursor >= chunks {
                state.cursor = 0
                state.epoch += 1
                hidden.reset()
            }
            if let epochs = t.epochs, state.epoch >= epochs { stopReason = .epochs; break }
            if let limit = t.timeLimit, elapsed() >= limit { stopReason = .time; break }
            if shouldStop() { stopReason = .interrupted; break }

            let batch = batcher.batch(chunk: state.cursor)
            let step = state.step + 1
            let rate = t.optimizer.learningRate * t.schedule.factor(step: step, totalSteps: totalSteps) * state.rateFactor
            backup.copy(from: hidden)
            let loss = try runner.trainStep(inputs: batch.inputs, targets: batch.targets, state: hidden, gradients: gradients,
                                            dropoutKey: Self.dropoutKey(seed: t.seed, step: step))
            state.cursor += 1
            state.step = step
            state.charactersSeen = min(state.charactersSeen, Int.max - t.batchSize * t.seqLength) + t.batchSize * t.seqLength
            if loss.isFinite, GradientClipping.allFinite(gradients), !(simulateNaN?(step) ?? false) {
                state.consecutiveBadSteps = 0
                let norm = t.gradClip > 0 ? GradientClipping.clip(gradients, maxNorm: t.gradClip) : GradientClipping.norm(gradients)
                let clipped = t.gradClip > 0 && norm > Double(t.gradClip)
                if clipped { windowClipped += 1 }
                lastNorm = norm
                let layerNorms = step % t.logEvery == 0 ? layerGradientNorms(gradients, scale: clipped ? norm / Double(t.gradClip) : 1) : []
                optimizer.update(parameters: network.parameters, gradients: gradients, learningRate: rate)
                network.parametersDidChange()
                state.learningRate = rate
                state.runningLoss += loss
                state.runningCount += 1
                windowLoss += loss
                windowSteps += 1
                if step % t.logEvery == 0 {
                    let now = Date()
                    let speed = Double(windowSteps * t.batchSize * t.seqLength) / max(now.timeIntervalSince(windowStart), 1e-9)
                    let meanLoss = windowLoss / Double(windowSteps)
                    metrics.append(MetricsRow(step: step, epoch: state.epoch, characters: state.charactersSeen, trainLoss: meanLoss,
                                              validationLoss: nil, learningRate: rate, charactersPerSecond: speed, gradientNorm: norm,
                                              clippedFraction: Double(windowClipped) / Double(windowSteps), layerGradientNorms: layerNorms,
                                              elapsedSeconds: elapsed()))
                    if windowClipped > 0 {
                        onEvent(.notice("steps \(step - windowSteps + 1)-\(step): gradient norm above \(t.gradClip) on \(windowClipped) of \(windowSteps) steps (last \(String(format: "%.2f", norm))); clipped"))
                    }
                    onEvent(.progress(TrainingProgress(
                        step: step, epoch: state.epoch, epochProgress: Double(state.cursor) / Double(chunks), trainLoss: meanLoss,
                        validationLoss: lastValidation, learningRate: rate, charactersPerSecond: speed, elapsedSeconds: elapsed(),
                        etaSeconds: eta(totalSteps: totalSteps, speed: speed, elapsed: elapsed()), gradientNorm: lastNorm,
                        clippedSteps: windowClipped, steps: windowSteps)))
                    windowStart = now
                    windowSteps = 0
                    windowLoss = 0
                    windowClipped = 0
                }
            } else {
                hidden.copy(from: backup)
                state.badSteps += 1
                state.consecutiveBadSteps += 1
                if t.nanPolicy == .stop || state.consecutiveBadSteps >= 3 {
                    onEvent(.notice("step \(step): loss or gradients are NaN/Inf; stopping with the last good checkpoint kept (\(run.url.path))"))
                    stopReason = .diverged
                    break
                }
                state.rateFactor *= 0.5
                onEvent(.notice("step \(step): loss or gradients are NaN/Inf; step skipped, learning rate halved to \(rate * 0.5)"))
            }
            // The preview draws from the trainer's generator; it runs before a checkpoint of the
            // same step so that the checkpoint holds the generator as the next step finds it.
            if t.sampleEvery > 0 && step % t.sampleEvery == 0 {
                onEvent(.sample(step: step, text: try preview(length: t.sampleLength)))
            }
            if step % t.evalEvery == 0 {
                guard let loss = try validate(step: step, scheduled: true, elapsed: elapsed(), onEvent: onEvent) else {
                    stopReason = .diverged
                    break
                }
                lastValidation = loss
                evaluatedAtStep = step
                if let patience = t.earlyStoppingPatience, state.evaluationsWithoutImprovement >= patience { stopReason = .earlyStopping }
            }
        }

        let reason = stopReason ?? .maxSteps
        switch reason {
        case .diverged:
            break
        case .interrupted:
            state.elapsedSeconds = elapsed()
            try saveLatest(onEvent: onEvent)
        default:
            if evaluatedAtStep != state.step && state.step > 0 {
                // A final validation for the user: it updates best/ but not the counters that
                // steer training, so extending the limit later continues as one run would.
                if let loss = try validate(step: state.step, scheduled: false, elapsed: elapsed(), onEvent: onEvent) { lastValidation = loss }
            }
        }
        return TrainingSummary(reason: reason, step: state.step, epoch: state.epoch, bestValidationLoss: state.bestValidationLoss,
                               bestStep: state.bestStep, lastValidationLoss: lastValidation, elapsedSeconds: elapsed(), runDirectory: run.url.path)
    }

    /// Validation over the whole split; then the checkpoints, the history and the plot.
    /// - Parameter scheduled: an every-`evalEvery` validation, which drives early stopping and
    ///   plateau decay; an unscheduled one (at the end of a session) only reports and keeps best/.
    /// - Returns: the loss, or nil when it is not finite (the weights are unusable; nothing is saved).
    private func validate(step: Int, scheduled: Bool, elapsed: Double, onEvent: (TrainingEvent) -> Void) throws -> Double? {
        let t = config.training
        let result = try Evaluator.evaluate(network: network, span: corpus.validation, batchSize: t.batchSize,
                                            seqLength: t.seqLength, threads: t.threads)
        let loss = result.nats
        guard loss.isFinite else {
            onEvent(.notice("step \(step): the validation loss is NaN/Inf; stopping with the last good checkpoint kept (\(run.url.path))"))
            return nil
        }
        let improved = loss < (state.bestValidationLoss ?? .infinity)
        if improved {
            state.bestValidationLoss = loss
            state.bestStep = step
        }
        if scheduled {
            if loss < (state.scheduledBestLoss ?? .infinity) {
                state.scheduledBestLoss = loss
                state.evaluationsWithoutImprovement = 0
                state.plateauCount = 0
            } else {
                state.evaluationsWithoutImprovement += 1
                state.plateauCount += 1
                if case .plateau(let factor, let patience) = t.schedule, state.plateauCount >= patience {
                    state.rateFactor *= factor
                    state.plateauCount = 0
                    onEvent(.notice("step \(step): validation loss has not improved for \(patience) evaluations; learning rate x\(factor)"))
                }
            }
            state.history.append(TrainerState.Evaluation(
                step: step, trainLoss: state.runningCount > 0 ? state.runningLoss / Double(state.runningCount) : nil, validationLoss: loss))
            state.runningLoss = 0
            state.runningCount = 0
        }
        state.elapsedSeconds = elapsed
        if let last = metrics.rows.last, last.step == step {
            var row = last
            row.validationLoss = loss
            metrics.replaceLast(row)
        } else {
            metrics.append(MetricsRow(step: step, epoch: state.epoch, characters: state.charactersSeen, trainLoss: nil, validationLoss: loss,
                                      learningRate: state.learningRate, charactersPerSecond: 0, gradientNorm: nil, clippedFraction: nil,
                                      layerGradientNorms: [], elapsedSeconds: elapsed))
        }
        onEvent(.validation(ValidationReport(step: step, loss: loss, improved: improved, bestLoss: state.bestValidationLoss ?? loss,
                                             bestStep: state.bestStep ?? step)))
        try saveLatest(onEvent: onEvent)
        if improved {
            try run.saveBest(network: network, trainer: state)
            onEvent(.checkpoint(step: step, best: true, path: run.bestURL.path))
        }
        return loss
    }

    private func saveLatest(onEvent: (TrainingEvent) -> Void) throws {
        try run.saveLatest(network: network, optimizer: optimizer, hidden: hidden, trainer: state)
        try metrics.write()
        let train = metrics.rows.compactMap { r in r.trainLoss.map { (Double(r.step), $0) } }
        let validation = metrics.rows.compactMap { r in r.validationLoss.map { (Double(r.step), $0) } }
        let title = "\(config.model.layers)x\(config.model.hiddenSize) \(config.model.cell.rawValue.uppercased()) on \(URL(fileURLWithPath: config.corpus ?? "corpus").lastPathComponent)"
        try writeDurably(Data(LossPlot.svg(train: train, validation: validation, title: title).utf8), to: run.plotURL)
        onEvent(.checkpoint(step: state.step, best: false, path: run.url.path))
    }

    private func eta(totalSteps: Int?, speed: Double, elapsed: Double) -> Double? {
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
        var norms: [Double] = []
        for l in 0..<config.model.layers {
            let first = layout.tensors[4 * l], last = layout.tensors[4 * l + 3]
            norms.append(GradientClipping.norm(gradients, offset: first.offset, count: last.offset + last.count - first.offset) * scale)
        }
        let out = layout.tensors[4 * config.model.layers]
        norms.append(GradientClipping.norm(gradients, offset: out.offset, count: layout.count - out.offset) * scale)
        return norms
    }

    /// A short sample from the current weights (its own generator, so training is unaffected).
    private func preview(length: Int) throws -> String {
        var generator = SeededGenerator(state: state.rng) ?? SeededGenerator(seed: 1)
        let seed = generator.next()
        state.rng = generator.state
        let model = LanguageModel(tokenizer: tokenizer, network: network, config: config, trainerState: state, weightsURL: run.modelURL)
        let request = GenerationRequest(prompt: "", length: length, options: SamplingOptions(temperature: 0.8), seed: seed)
        return try model.generate(request).first?.text ?? ""
    }

    static func dropoutKey(seed: UInt64, step: Int) -> UInt64 {
        var x = seed &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }
}
