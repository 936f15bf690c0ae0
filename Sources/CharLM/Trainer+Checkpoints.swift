import CharNN
import Foundation

extension Trainer {
    // MARK: - Validation

    /// Validation over the whole split, then its bookkeeping and the checkpoints.
    /// - Parameter scheduled: an every-`evalEvery` validation, which drives early stopping and
    ///   plateau decay; an unscheduled one (at the end of a session) only reports and keeps best/.
    /// - Returns: the loss, or nil when it is not finite (the weights are unusable; nothing is saved).
    func validate(step: Int, scheduled: Bool, elapsed: Double, onEvent: (TrainingEvent) -> Void) throws -> Double? {
        let loss = try validationLoss(on: validationSample, step: step, onEvent: onEvent)
        guard loss.isFinite else {
            onEvent(
                .notice(
                    "step \(step): the validation loss is NaN/Inf; stopping with the last good checkpoint kept "
                        + "(\(run.url.path))"
                ))
            return nil
        }
        let improved = loss < (state.bestValidationLoss ?? .infinity)
        if improved {
            state.bestValidationLoss = loss
            state.bestStep = step
        }
        if scheduled { recordScheduledValidation(loss, step: step, onEvent: onEvent) }
        state.elapsedSeconds = elapsed
        metrics.recordValidation(
            loss, step: step, epoch: state.epoch, characters: state.charactersSeen,
            learningRate: state.learningRate, elapsedSeconds: elapsed)
        onEvent(
            .validation(
                ValidationReport(
                    step: step, loss: loss, improved: improved, bestLoss: state.bestValidationLoss ?? loss,
                    bestStep: state.bestStep ?? step)))
        try saveLatest(onEvent: onEvent)
        guard writes else { return loss }
        if scheduled && config.training.keepCheckpoints > 0 {
            try run.keepCheckpoint(step: step, keep: config.training.keepCheckpoints)
        }
        if improved {
            try run.saveBest(network: evaluated, trainer: state)
            onEvent(.checkpoint(step: step, best: true, path: run.bestURL.path))
        }
        return loss
    }

    /// The part of the validation split that validations measure (all of it when it is small).
    var validationSample: TokenSpan {
        corpus.validation.sample(atMost: config.training.validationSampleSize ?? .max)
    }

    /// The best checkpoint's loss on the test split, when there is one of each. Every rank
    /// reads best/ after the leader has finished writing it.
    func bestTestLoss(onEvent: (TrainingEvent) -> Void) throws -> Double? {
        guard corpus.test.count >= 2, let bestStep = state.bestStep else { return nil }
        try communicator?.barrier()
        let best = try Network(config: config.model)
        let url = run.bestURL.appendingPathComponent("model.safetensors")
        try best.loadWeights(SafeTensors(contentsOf: url), source: url.path)
        return try validationLoss(on: corpus.test, step: bestStep, network: best, onEvent: onEvent)
    }

    /// Mean loss on `span` (of the weights validation uses unless `network` is given), reporting
    /// progress as it goes.
    func validationLoss(
        on span: TokenSpan, step: Int, network: Network? = nil, onEvent: (TrainingEvent) -> Void
    ) throws -> Double {
        let t = config.training
        var reported = -1.0
        let started = Date()
        if let tagging {
            // A tagger's windows are independent: every rank measures the whole span.
            let tagger = Tagger(network: network ?? evaluated, scheme: tagging, threads: t.threads)
            let loss = try tagger.evaluate(span, baseline: nil).loss.nats
            onEvent(.validating(step: step, fraction: 1, units: span.count))
            validationSecondsPerUnit = Date().timeIntervalSince(started) / Double(max(span.count, 1))
            return loss
        }
        let loss = try Evaluator.evaluate(
            network: network ?? evaluated, span: span, batchSize: t.batchSize, seqLength: t.seqLength,
            threads: t.threads, communicator: communicator
        ) { fraction in
            if fraction - reported >= 0.01 || fraction == 1 {
                reported = fraction
                onEvent(.validating(step: step, fraction: fraction, units: span.count))
            }
        }.nats
        validationSecondsPerUnit = Date().timeIntervalSince(started) / Double(max(span.count, 1))
        return loss
    }

    /// Early stopping and plateau decay count scheduled validations only, against the best
    /// scheduled loss; the history records the mean training loss since the last one.
    private func recordScheduledValidation(_ loss: Double, step: Int, onEvent: (TrainingEvent) -> Void) {
        if loss < (state.scheduledBestLoss ?? .infinity) {
            state.scheduledBestLoss = loss
            state.evaluationsWithoutImprovement = 0
            state.plateauCount = 0
        } else {
            state.evaluationsWithoutImprovement += 1
            state.plateauCount += 1
            if case .plateau(let factor, let patience) = config.training.schedule, state.plateauCount >= patience {
                state.rateFactor *= factor
                state.plateauCount = 0
                onEvent(
                    .notice(
                        "step \(step): validation loss has not improved for \(patience) evaluations; learning rate "
                            + "x\(factor)"
                    ))
            }
        }
        state.history.append(
            TrainerState.Evaluation(
                step: step, trainLoss: state.runningCount > 0 ? state.runningLoss / Double(state.runningCount) : nil,
                validationLoss: loss))
        state.runningLoss = 0
        state.runningCount = 0
    }

    // MARK: - Checkpoints

    /// Saves the latest checkpoint (see RunDirectory for how) and the metrics log.
    func saveLatest(onEvent: (TrainingEvent) -> Void) throws {
        guard writes else { return }
        try run.saveLatest(
            network: network, optimizer: optimizer, hidden: hidden, averaged: averaged?.parameters, trainer: state)
        try metrics.write()
        onEvent(.checkpoint(step: state.step, best: false, path: run.url.path))
    }

    // MARK: - Previews

    /// A short sample from the current weights. It draws from the trainer's own generator
    /// (saved with the checkpoint), so that a resumed run shows the samples the uninterrupted
    /// one would have, and training itself is unaffected.
    func preview(length: Int) throws -> String {
        if let tagging {
            // A tagger shows the start of the validation text as it restores it.
            let targets = corpus.validation.ids(0..<min(length, corpus.validation.count))
            let tagger = Tagger(network: evaluated, scheme: tagging, threads: config.training.threads)
            return tokenizer.decode(try tagger.tag(tagging.inputs(of: targets)).outputs)
        }
        var generator = SeededGenerator(state: state.rng) ?? SeededGenerator(seed: 1)
        let seed = generator.next()
        state.rng = generator.state
        let model = LanguageModel(
            tokenizer: tokenizer, network: evaluated, config: config, trainerState: state, weightsURL: run.modelURL)
        let t = config.training
        var request = GenerationRequest(
            prompt: t.samplePrompt, length: length, options: SamplingOptions(temperature: t.sampleTemperature),
            seed: seed)
        request.threads = t.threads
        return t.samplePrompt + (try model.generate(request).first?.text ?? "")
    }
}
