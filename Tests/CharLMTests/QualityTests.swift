import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLM

/// What decides how good a model gets in a fixed budget: the train/validation/test split, the
/// schedule that decays to the end of the budget, and the averaged weights.
@Suite struct QualityTests {
    let corpus = projectCorpus("brackets.txt")

    // MARK: - Train / validation / test

    @Test func theTestSplitIsHeldOutEvenlyAndApartFromValidation() {
        let parts = ValidationSplit.blocks(size: 100).ranges(count: 10_000, validation: 0.05, test: 0.05)
        #expect(parts.validation.map(\.count).reduce(0, +) == 500 && parts.test.map(\.count).reduce(0, +) == 500)
        // One block in ten is held out, and those alternate between validation and test.
        let heldOut = (parts.validation + parts.test).sorted { $0.lowerBound < $1.lowerBound }
        #expect(heldOut.map(\.lowerBound) == stride(from: 400, to: 10_000, by: 1000).map { $0 }, "evenly spaced")
        #expect(parts.test.map(\.lowerBound) == [400, 2400, 4400, 6400, 8400])
        #expect(parts.validation.map(\.lowerBound) == [1400, 3400, 5400, 7400, 9400])
        let all = (parts.train + heldOut).sorted { $0.lowerBound < $1.lowerBound }
        #expect(
            zip(all, all.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound } && all.first?.lowerBound == 0
                && all.last?.upperBound == 10_000, "the three parts tile the text")

        // Unequal shares: 10% validation and 2% test of 1,000 blocks.
        let uneven = ValidationSplit.blocks(size: 10).ranges(count: 10_000, validation: 0.1, test: 0.02)
        #expect(uneven.validation.map(\.count).reduce(0, +) == 1_000 && uneven.test.map(\.count).reduce(0, +) == 200)

        // Without a test part, exactly the two-way split of earlier runs.
        for split in [ValidationSplit.blocks(size: 100), .standard, .tail] {
            for count in [720, 10_000, 50_001] {
                let two = split.ranges(count: count, fraction: 0.1)
                let three = split.ranges(count: count, validation: 0.1, test: 0)
                #expect(three.train == two.train && three.validation == two.validation && three.test.isEmpty)
            }
        }
        let tail = ValidationSplit.tail.ranges(count: 10_000, validation: 0.05, test: 0.05)
        #expect(tail.train == [0..<9_000] && tail.validation == [9_000..<9_500] && tail.test == [9_500..<10_000])
    }

    @Test func oldRunsHaveNoTestSplitAndNewOnesDo() throws {
        #expect(TrainingConfig().testFraction == 0.05 && TrainingConfig().valFraction == 0.05)
        // A config.json from before the test split and averaging: neither.
        var config = RunConfig()
        config.model.vocabularySize = 5
        var object = try #require(try JSONSerialization.jsonObject(with: config.jsonData()) as? [String: Any])
        var training = try #require(object["training"] as? [String: Any])
        #expect(training["test_fraction"] as? Double == 0.05)
        training["test_fraction"] = nil
        object["training"] = training
        let old = try RunConfig.load(data: JSONSerialization.data(withJSONObject: object), source: "old")
        #expect(old.training.testFraction == 0 && old.training.averagingDecay == nil)
        // Averaging, when asked for, is written and read back.
        var averaging = RunConfig()
        averaging.model.vocabularySize = 5
        averaging.training.averagingDecay = 0.999
        #expect(try RunConfig.load(data: averaging.jsonData(), source: "new").training.averagingDecay == 0.999)
        var t = TrainingConfig()
        t.valFraction = 0.5
        t.testFraction = 0.5
        #expect(throws: CharLMError.self, "nothing left to train on") { try t.validate() }
        t.testFraction = -0.1
        #expect(throws: CharLMError.self) { try t.validate() }
    }

    /// The summary's test loss is the best checkpoint's loss on the test part, as an
    /// independent reader finds it: best/ loaded from disk, the corpus encoded and split again.
    @Test func theSummaryReportsTheBestCheckpointsTestLoss() throws {
        let dir = temporaryDirectory()
        defer { cleanup(dir) }
        var training = smallTraining(steps: 40, evalEvery: 10)
        training.testFraction = 0.1
        let trainer = try Trainer.start(
            corpus: corpus, runDirectory: dir.appendingPathComponent("run"), config: smallConfig(training: training))
        let summary = try trainer.train()
        let testLoss = try #require(summary.testLoss)
        let model = try LanguageModel.load(dir.appendingPathComponent("run"), checkpoint: .best)
        let encoded = try model.tokenizer.encodeFile(corpus)
        let heldOut = Corpus.heldOut(encoded, training: model.config.training)
        #expect(heldOut.test.count == summary.testUnits && summary.testUnits > 1_000)
        #expect(heldOut.validation?.count == trainer.corpus.validation.count)
        let result = try Evaluator.evaluate(
            network: model.network, span: heldOut.test, batchSize: training.batchSize, seqLength: training.seqLength,
            threads: 1)
        #expect(abs(result.nats - testLoss) < 1e-6, "best/ on the test part: \(result.nats) vs summary \(testLoss)")
        // Test and validation text never overlap, and neither is trained on.
        let train = Set(trainer.corpus.train.ranges.flatMap { Array($0) })
        let test = Set(heldOut.test.ranges.flatMap { Array($0) })
        let validation = Set(trainer.corpus.validation.ranges.flatMap { Array($0) })
        #expect(train.isDisjoint(with: test) && train.isDisjoint(with: validation) && test.isDisjoint(with: validation))
    }

    // MARK: - The schedule

    @Test func theAutoScheduleDecaysToTheEndOfTheBudget() throws {
        let auto = LearningRateSchedule.auto
        #expect(auto.factor(step: 5, totalSteps: nil, timeUsed: nil) == 1, "no budget: constant")
        #expect(auto.factor(step: 50_000, totalSteps: nil, timeUsed: nil) == 1)
        // A step budget of 10,000: the base rate for 7,500 steps, then a straight line to 0.1.
        #expect(auto.factor(step: 1, totalSteps: 10_000, timeUsed: nil) == 1, "no warm-up")
        #expect(auto.factor(step: 7_500, totalSteps: 10_000, timeUsed: nil) == 1)
        let middle = auto.factor(step: 8_750, totalSteps: 10_000, timeUsed: nil)
        #expect(abs(middle - 0.55) < 1e-6, "halfway down: (1 + 0.1) / 2, got \(middle)")
        #expect(abs(auto.factor(step: 10_000, totalSteps: 10_000, timeUsed: nil) - 0.1) < 1e-6)
        var last: Float = 2
        for step in stride(from: 1, through: 10_000, by: 99) {
            let f = auto.factor(step: step, totalSteps: 10_000, timeUsed: nil)
            #expect(f <= last && f >= 0.1, "never rising")
            last = f
        }
        // A time budget: the fraction of it used.
        #expect(auto.factor(step: 2_000, totalSteps: nil, timeUsed: 0.7) == 1)
        #expect(abs(auto.factor(step: 2_000, totalSteps: nil, timeUsed: 0.875) - 0.55) < 1e-6)
        #expect(abs(auto.factor(step: 2_000, totalSteps: nil, timeUsed: 1.3) - 0.1) < 1e-6, "past the end: the floor")
        // Both: whichever is further along.
        #expect(abs(auto.factor(step: 1_400, totalSteps: 10_000, timeUsed: 0.875) - 0.55) < 1e-6)
        #expect(abs(auto.factor(step: 8_750, totalSteps: 10_000, timeUsed: 0.1) - 0.55) < 1e-6)
        // A budget of fewer than autoMinimumSteps steps keeps the base rate to its end, whether
        // the step limit says so or the pace under a time limit projects it.
        #expect(LearningRateSchedule.autoMinimumSteps == 1_000)
        for step in [1, 300, 399, 400] {
            #expect(auto.factor(step: step, totalSteps: 400, timeUsed: nil) == 1, "400 steps: constant")
        }
        #expect(auto.factor(step: 999, totalSteps: 999, timeUsed: nil) == 1)
        #expect(abs(auto.factor(step: 1_000, totalSteps: 1_000, timeUsed: nil) - 0.1) < 1e-6, "1,000 steps decay")
        #expect(auto.factor(step: 350, totalSteps: nil, timeUsed: 0.875) == 1, "on pace for 400 steps")
        #expect(auto.factor(step: 100, totalSteps: 10_000, timeUsed: 0.875) == 1, "the time ends it at about 114")
        #expect(abs(auto.factor(step: 875, totalSteps: nil, timeUsed: 0.875) - 0.55) < 1e-6, "on pace for 1,000")
        // cosine takes a time budget too now.
        let cosine = LearningRateSchedule.cosine(warmup: 0, minFactor: 0)
        #expect(abs(cosine.factor(step: 7, totalSteps: nil, timeUsed: 0.5) - 0.5) < 1e-6)
        #expect(try LearningRateSchedule(parsing: "auto") == .auto && LearningRateSchedule.auto.description == "auto")
        var t = TrainingConfig()
        t.maxSteps = nil
        t.epochs = nil
        t.timeLimit = 60
        t.schedule = .cosine(warmup: 0, minFactor: 0.1)
        try t.validate()
    }

    /// The rates the trainer uses follow the schedule over a step budget, and a run stopped
    /// part-way and resumed with the same budget takes exactly the same steps.
    @Test func theTrainerFollowsTheAutoScheduleAndResumesExactly() throws {
        let a = temporaryDirectory(), b = temporaryDirectory()
        defer { cleanup(a); cleanup(b) }
        // The shortest budget that decays (LearningRateSchedule.autoMinimumSteps).
        var training = smallTraining(steps: 1_000, evalEvery: 250)
        training.schedule = .auto
        training.averagingDecay = 0.999
        let whole = try Trainer.start(
            corpus: corpus, runDirectory: a.appendingPathComponent("run"), config: smallConfig(training: training))
        var rates: [Int: Float] = [:]
        _ = try whole.train(onEvent: { event in
            if case .progress(let p) = event { rates[p.step] = p.learningRate }
        })
        let base = training.optimizer.learningRate
        #expect(rates[1] == base && rates[750] == base, "the base rate for three quarters of the budget")
        #expect(abs(try #require(rates[875]) - base * 0.55) < 1e-9, "then a straight line")
        #expect(abs(try #require(rates[1_000]) - base * 0.1) < 1e-9, "to 0.1x at the end")

        let part = try Trainer.start(
            corpus: corpus, runDirectory: b.appendingPathComponent("run"), config: smallConfig(training: training))
        var steps = 0
        _ = try part.train(shouldStop: {
            steps += 1
            return steps > 777
        })
        #expect(part.state.step == 777)
        let rest = try Trainer.resume(runDirectory: b.appendingPathComponent("run"))
        _ = try rest.train()
        #expect(rest.network.parameters.array == whole.network.parameters.array, "the same weights")
        #expect(rest.averaged!.parameters.array == whole.averaged!.parameters.array, "the same average")
    }

    // MARK: - Weight averaging

    /// The averaged weights are the moving average of the weights as trained, which averaging
    /// does not change; validation and best/ use the average.
    @Test func theAverageFollowsTheTrainedWeightsWithoutChangingThem() throws {
        let a = temporaryDirectory(), b = temporaryDirectory()
        defer { cleanup(a); cleanup(b) }
        var training = smallTraining(steps: 30, evalEvery: 1)
        training.averagingDecay = 0.9
        training.keepCheckpoints = 30
        let averaging = try Trainer.start(
            corpus: corpus, runDirectory: a.appendingPathComponent("run"), config: smallConfig(training: training))
        // The average starts at the initial weights; each step's weights are kept in checkpoints/.
        var expected = averaging.network.parameters.array
        let log = LossRecorder()
        _ = try averaging.train(onEvent: log.record)
        for step in 1...30 {
            let kept = try LanguageModel.load(
                a.appendingPathComponent("run").appendingPathComponent("checkpoints/step-\(step)"))
            let w = kept.network.parameters.array
            let d = min(Float(0.9), Float(1 + step) / Float(10 + step))
            for i in expected.indices { expected[i] += (1 - d) * (w[i] - expected[i]) }
        }
        let averaged = averaging.averaged!.parameters.array
        let difference = zip(expected, averaged).map { abs($0 - $1) }.max()!
        #expect(difference < 1e-6, "the average of the kept weights: largest difference \(difference)")

        var plain = training
        plain.averagingDecay = nil
        plain.keepCheckpoints = 0
        let trained = try Trainer.start(
            corpus: corpus, runDirectory: b.appendingPathComponent("run"), config: smallConfig(training: plain))
        _ = try trained.train()
        #expect(trained.network.parameters.array == averaging.network.parameters.array, "training is unchanged")
        #expect(trained.network.parameters.array != averaged)

        // Validation measured the average, and best/ holds it.
        let best = try LanguageModel.load(a.appendingPathComponent("run"), checkpoint: .best)
        let bestStep = try #require(averaging.state.bestStep)
        let validation = try Evaluator.evaluate(
            network: best.network, span: averaging.corpus.validation, batchSize: training.batchSize,
            seqLength: training.seqLength, threads: 1)
        let logged = try #require(log.validations[bestStep])
        #expect(abs(validation.nats - logged) < 1e-6, "best/ is what validation measured at step \(bestStep)")
    }
}
