import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLM

/// Truncated BPTT training end to end: exact resume, interruption, crash safety, NaN handling.
@Suite struct TrainerTests {
    let corpus = projectCorpus("brackets.txt")

    func start(_ dir: URL, steps: Int, evalEvery: Int = 10, adjust: (inout TrainingConfig) -> Void = { _ in }) throws
        -> Trainer
    {
        var training = smallTraining(steps: steps, evalEvery: evalEvery)
        adjust(&training)
        return try Trainer.start(
            corpus: corpus, runDirectory: dir.appendingPathComponent("run"), config: smallConfig(training: training))
    }

    func resume(_ dir: URL, steps: Int) throws -> Trainer {
        var options = RunOptions()
        options.set(\.training.maxSteps, to: .some(steps), as: "--max-steps")
        return try Trainer.resume(runDirectory: dir.appendingPathComponent("run"), options: options)
    }

    /// With sample previews on (every 4 steps), the previews' generator is part of the state
    /// that must survive the resume, and the previews themselves must match.
    @Test(arguments: [0, 4])
    func resumedRunReproducesTheUninterruptedOne(sampleEvery: Int) throws {
        let a = temporaryDirectory(), b = temporaryDirectory()
        defer { cleanup(a); cleanup(b) }
        let previews = { (t: inout TrainingConfig) in
            t.sampleEvery = sampleEvery
            t.sampleLength = 30
        }
        let whole = LossRecorder()
        let full = try start(a, steps: 30, adjust: previews)
        _ = try full.train(onEvent: whole.record)

        let first = LossRecorder(), second = LossRecorder()
        let part = try start(b, steps: 13, adjust: previews)
        let summary = try part.train(onEvent: first.record)
        #expect(summary.reason == .maxSteps)
        let rest = try resume(b, steps: 30)
        _ = try rest.train(onEvent: second.record)

        for step in 1...13 { #expect(first.losses[step] == whole.losses[step], "step \(step)") }
        for step in 14...30 {
            let expected = try #require(whole.losses[step])
            #expect(
                second.losses[step] == expected,
                "step \(step): resumed \(second.losses[step] ?? .nan) vs uninterrupted \(expected)")
        }
        for step in [20, 30] {
            #expect(second.validations[step] == whole.validations[step], "validation at step \(step)")
        }
        #expect(full.network.parameters.array == rest.network.parameters.array, "final weights are identical")
        if sampleEvery > 0 {
            #expect(whole.samples.count == 7 && first.samples.count == 3 && second.samples.count == 4)
            #expect(
                first.samples.merging(second.samples) { a, _ in a } == whole.samples,
                "the previews continue as they would have")
        }
    }

    @Test func interruptionSavesAndResumesExactly() throws {
        let a = temporaryDirectory(), b = temporaryDirectory()
        defer { cleanup(a); cleanup(b) }
        let whole = LossRecorder()
        _ = try start(a, steps: 24).train(onEvent: whole.record)

        let first = LossRecorder()
        var steps = 0
        let summary = try start(b, steps: 24).train(
            shouldStop: { steps >= 7 },
            onEvent: { event in
                if case .progress = event { steps += 1 }
                first.record(event)
            })
        #expect(summary.reason == .interrupted)
        #expect(summary.step == 7)
        let saved = try TrainerState.load(from: b.appendingPathComponent("run/trainer_state.json"))
        #expect(saved.step == 7, "Ctrl-C saves the step it stopped at")
        let second = LossRecorder()
        _ = try resume(b, steps: 24).train(onEvent: second.record)
        for step in 8...24 { #expect(second.losses[step] == whole.losses[step], "step \(step)") }
    }

    @Test func aCrashBetweenFilesFallsBackToThePreviousCheckpoint() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        _ = try start(dir, steps: 20).train()
        let run = RunDirectory(dir.appendingPathComponent("run"))
        // The latest (step 20) model file is replaced as if a save of a later step had renamed
        // only its first file before the crash: the three files now disagree.
        var later = try SafeTensors(contentsOf: run.modelURL)
        later.metadata["charlm_step"] = "30"
        try later.encoded().write(to: run.modelURL)
        let files = try run.latestCheckpoint()
        #expect(files.state.step == 10, "falls back to .previous, the checkpoint before")
        #expect(files.source.lastPathComponent == ".previous")
        let resumed = try resume(dir, steps: 25)
        let summary = try resumed.train()
        #expect(summary.step == 25)
    }

    @Test func extendingAFinishedRunContinuesAsOneRunWouldWithPlateauAndEarlyStopping() throws {
        let a = temporaryDirectory(), b = temporaryDirectory()
        defer { cleanup(a); cleanup(b) }
        func settings(_ t: inout TrainingConfig) {
            t.schedule = .plateau(factor: 0.5, patience: 1)
            t.earlyStoppingPatience = 50
            t.optimizer.learningRate = 2e-2
        }
        let whole = LossRecorder()
        _ = try start(a, steps: 40, evalEvery: 5, adjust: settings).train(onEvent: whole.record)
        let first = LossRecorder(), second = LossRecorder()
        _ = try start(b, steps: 17, evalEvery: 5, adjust: settings).train(onEvent: first.record)
        #expect(first.validations[17] != nil, "a run that ends between validations is validated at its end")
        _ = try resume(b, steps: 40).train(onEvent: second.record)
        for step in 18...40 { #expect(second.losses[step] == whole.losses[step], "step \(step)") }
        let saved = try TrainerState.load(from: b.appendingPathComponent("run/trainer_state.json"))
        let reference = try TrainerState.load(from: a.appendingPathComponent("run/trainer_state.json"))
        #expect(
            saved.rateFactor == reference.rateFactor
                && saved.evaluationsWithoutImprovement == reference.evaluationsWithoutImprovement)
    }

    @Test func twoCrashesInARowStillLeaveACheckpoint() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        _ = try start(dir, steps: 20).train()
        let run = RunDirectory(dir.appendingPathComponent("run"))
        func breakLatest(step: String) throws {
            var later = try SafeTensors(contentsOf: run.modelURL)
            later.metadata["charlm_step"] = step
            try later.encoded().write(to: run.modelURL)
        }
        try breakLatest(step: "30")
        let resumed = try resume(dir, steps: 30)
        _ = try resumed.train()
        try breakLatest(step: "40")
        #expect(try run.latestCheckpoint().state.step == 20, ".previous still holds a consistent checkpoint")
    }

    @Test func aTruncatedModelFileFallsBackToThePreviousCheckpoint() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        _ = try start(dir, steps: 20).train()
        let run = RunDirectory(dir.appendingPathComponent("run"))
        let data = try Data(contentsOf: run.modelURL)
        try data.prefix(data.count / 2).write(to: run.modelURL)
        #expect(try run.latestCheckpoint().state.step == 10)
        #expect(try LanguageModel.load(run.url, checkpoint: .best).network.parameterCount > 0, "best/ still loads")
    }

    /// A NaN made for one step (the output bias set to NaN before step 5, put back when the
    /// trainer reports skipping it): the step is skipped, the rate halved, and training goes on.
    /// Made for good (from step 12): three bad steps in a row stop training, keeping the last
    /// good checkpoint.
    @Test func nanLossesAreSkippedThenStopTraining() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        let trainer = try start(dir, steps: 30)
        let bias = try trainer.network.tensor("out.bias")
        let log = LossRecorder()
        let summary = try trainer.train(onEvent: { event in
            log.record(event)
            if case .progress(let p) = event, p.step == 4 {
                try! trainer.network.setTensor("out.bias", values: bias.map { _ in .nan })
            }
            if case .notice(let text) = event, text.contains("halved") {
                try! trainer.network.setTensor("out.bias", values: bias)
            }
        })
        #expect(summary.reason == .maxSteps)
        #expect(log.notices.contains { $0.contains("step 5") && $0.contains("halved") }, "\(log.notices)")
        #expect(log.losses[5] == nil && log.losses[6] != nil, "step 5 was skipped, step 6 trained")
        #expect(trainer.state.badSteps == 1)
        #expect(trainer.state.rateFactor == 0.5)
        #expect(trainer.state.learningRate == Float(5e-3) * 0.5)

        let dir2 = temporaryDirectory()
        defer { cleanup(dir2) }
        let diverging = try start(dir2, steps: 30)
        let summary2 = try diverging.train(onEvent: { event in
            if case .progress(let p) = event, p.step == 11 {
                try! diverging.network.setTensor("out.bias", values: bias.map { _ in .nan })
            }
        })
        #expect(summary2.reason == .diverged)
        #expect(diverging.state.step == 14 && diverging.state.badSteps == 3)
        let files = try RunDirectory(dir2.appendingPathComponent("run")).latestCheckpoint()
        #expect(files.state.step == 10, "the last good checkpoint is kept")
    }

    @Test func evalAgreesWithTheTrainersValidationLoss() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        // The weights as trained: latest/ holds them, and validation sees them.
        let trainer = try start(dir, steps: 20) { $0.averagingDecay = nil }
        let log = LossRecorder()
        _ = try trainer.train(onEvent: log.record)
        let validationText = trainer.tokenizer.decode(
            trainer.corpus.validation.ids(0..<trainer.corpus.validation.count))
        let file = writeFile(dir, "validation.txt", validationText)
        let model = try LanguageModel.load(dir.appendingPathComponent("run"), checkpoint: .latest)
        let ids = TokenSpan(try model.tokenizer.encodeFile(file))
        let result = try Evaluator.evaluate(
            network: model.network, span: ids, batchSize: model.config.training.batchSize,
            seqLength: model.config.training.seqLength, threads: 1)
        let trainerLoss = try #require(log.validations[20])
        #expect(abs(result.nats - trainerLoss) < 1e-6, "eval \(result.nats) vs trainer \(trainerLoss)")
        #expect(result.count == trainer.corpus.validation.count - 1, "every unit after the first is predicted")
    }

    @Test func evaluationCoversEveryTargetWithAnyBatchAndLength() throws {
        let config = NetworkConfig(cell: .gru, vocabularySize: 5, hiddenSize: 6, layers: 1)
        let net = try Network(config: config, seed: 4)
        let ids = (0..<103).map { Int32(($0 * 7) % 5) }
        let span = TokenSpan(try EncodedCorpus(ids: ids, vocabularySize: 5))
        let single = try Evaluator.evaluate(network: net, span: span, batchSize: 1, seqLength: 1000, threads: 1)
        #expect(single.count == 102)
        for (batch, seq) in [(1, 7), (4, 10), (10, 3), (50, 50)] {
            let r = try Evaluator.evaluate(network: net, span: span, batchSize: batch, seqLength: seq, threads: 2)
            #expect(r.count == 102, "batch \(batch) seq \(seq)")
            if batch == 1 { #expect(abs(r.nats - single.nats) < 1e-6, "one stream: chunking does not change the loss") }
        }
    }

    /// A time limit covers the validation that ends the run: with validation known to be slow,
    /// training stops as soon as finishing would overrun the limit, not after the limit.
    @Test func aTimeLimitKeepsTimeForTheLastValidation() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        var training = smallTraining(steps: 50, evalEvery: 1000)
        training.maxSteps = nil
        training.timeLimit = 3600
        let trainer = try Trainer.start(
            corpus: projectCorpus("brackets.txt"), runDirectory: dir.appendingPathComponent("run"),
            config: smallConfig(training: training))
        trainer.validationSecondsPerUnit = 3600.0 / Double(trainer.corpus.validation.count)
        let summary = try trainer.train()
        #expect(summary.reason == .time && summary.step == 1, "one step, then the last validation would overrun")
        let again = try Trainer.resume(runDirectory: dir.appendingPathComponent("run")).train()
        #expect(again.reason == .time && again.step == 1, "the limit is used up: the same limit stops a resume at once")

        // Before any validation the reserve is a guess from the steps' time: far below an hour
        // here, so an hour's limit lets the step limit end the run.
        var hour = training
        hour.maxSteps = 5
        let bounded = try Trainer.start(
            corpus: projectCorpus("brackets.txt"), runDirectory: dir.appendingPathComponent("hour"),
            config: smallConfig(training: hour))
        let boundedSummary = try bounded.train()
        #expect(boundedSummary.reason == .maxSteps && boundedSummary.step == 5)
    }
}
