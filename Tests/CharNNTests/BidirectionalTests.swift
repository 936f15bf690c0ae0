import Foundation
import Testing
@testable import CharNN

/// The bidirectional network and the candidate-restricted loss, against independent
/// computations (PyTorch's numbers are in PyTorchParityTests; finite differences in
/// GradientCheckTests).
@Suite struct BidirectionalTests {
    /// A bidirectional layer's reverse direction is a forward network run on the reversed text:
    /// with the forward direction's share of the output layer set to zero, the logits at step t
    /// equal those of a one-direction network holding the reverse weights, at step T - 1 - t of
    /// the reversed ids.
    @Test(arguments: CellKind.allCases)
    func reverseDirectionIsAForwardPassOverReversedText(cell: CellKind) throws {
        let V = 7, H = 6, B = 2, T = 9
        let bi = try Network(
            config: NetworkConfig(cell: cell, vocabularySize: V, hiddenSize: H, layers: 1, bidirectional: true), seed: 3
        )
        let uni = try Network(config: NetworkConfig(cell: cell, vocabularySize: V, hiddenSize: H, layers: 1), seed: 4)
        for name in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"] {
            try uni.setTensor("rnn.\(name)", values: bi.tensor("rnn.\(name)_reverse"))
        }
        var out = try bi.tensor("out.weight")
        var reverseHalf: [Float] = []
        for v in 0..<V {
            let row = v * 2 * H
            for j in 0..<H { out[row + j] = 0 }
            reverseHalf.append(contentsOf: out[(row + H)..<(row + 2 * H)])
        }
        try bi.setTensor("out.weight", values: out)
        try uni.setTensor("out.weight", values: reverseHalf)
        try uni.setTensor("out.bias", values: bi.tensor("out.bias"))
        var rng = SeededGenerator(seed: 9)
        let ids = (0..<(B * T)).map { _ in Int32(rng.next() % UInt64(V)) }
        let reversed = (0..<B).flatMap { b in ids[(b * T)..<((b + 1) * T)].reversed() }
        let biLogits = try BatchRunner(network: bi, batchSize: B, seqLength: T, threads: 2, training: false)
            .logits(inputs: ids, state: RecurrentState(config: bi.config, batchSize: B))
        let uniLogits = try BatchRunner(network: uni, batchSize: B, seqLength: T, threads: 1, training: false)
            .logits(inputs: reversed, state: RecurrentState(config: uni.config, batchSize: B))
        var worst: Float = 0
        for b in 0..<B {
            for t in 0..<T {
                for v in 0..<V {
                    worst = max(worst, abs(biLogits[(b * T + t) * V + v] - uniLogits[(b * T + T - 1 - t) * V + v]))
                }
            }
        }
        #expect(worst <= 1e-5, "largest difference \(worst)")
    }

    /// At step t a bidirectional network has read the whole chunk: changing the last id changes
    /// the first step's logits. A forward network's first step does not see it.
    @Test func bidirectionalOutputsSeeTheFuture() throws {
        for bidirectional in [false, true] {
            let config = NetworkConfig(vocabularySize: 5, hiddenSize: 4, layers: 2, bidirectional: bidirectional)
            let net = try Network(config: config, seed: 1)
            let runner = BatchRunner(network: net, batchSize: 1, seqLength: 6, threads: 1, training: false)
            let a = try runner.logits(inputs: [1, 2, 3, 4, 0, 1], state: RecurrentState(config: config, batchSize: 1))
            let b = try runner.logits(inputs: [1, 2, 3, 4, 0, 4], state: RecurrentState(config: config, batchSize: 1))
            #expect((a[0..<5] != b[0..<5]) == bidirectional)
            #expect(a[25..<30] != b[25..<30])
        }
    }

    /// The restricted loss is the cross-entropy of the softmax over each input's candidates,
    /// computed here in double precision from the unrestricted logits.
    @Test func candidateLossIsTheSoftmaxOverTheCandidates() throws {
        let V = 6, B = 3, T = 5
        let config = NetworkConfig(cell: .gru, vocabularySize: V, hiddenSize: 5, layers: 2, bidirectional: true)
        let net = try Network(config: config, seed: 2)
        let candidates: [[Int32]] = [[0], [1, 2], [2], [3, 4, 5], [4], [5, 0]]
        let mask = try CandidateMask(vocabularySize: V, candidates: candidates)
        var rng = SeededGenerator(seed: 4)
        let inputs = (0..<(B * T)).map { _ in Int32(rng.next() % UInt64(V)) }
        let targets = inputs.map { candidates[Int($0)][Int(rng.next() % UInt64(candidates[Int($0)].count))] }
        let logits = try BatchRunner(network: net, batchSize: B, seqLength: T, threads: 1, training: false)
            .logits(inputs: inputs, state: RecurrentState(config: config, batchSize: B))
        var expected = 0.0
        for (r, input) in inputs.enumerated() {
            let row = candidates[Int(input)].map { Double(logits[r * V + Int($0)]) }
            let m = row.max()!
            expected += m + log(row.map { exp($0 - m) }.reduce(0, +)) - Double(logits[r * V + Int(targets[r])])
        }
        let runner = BatchRunner(network: net, batchSize: B, seqLength: T, threads: 2, candidates: mask)
        let total = try runner.evaluate(
            inputs: inputs, targets: targets, state: RecurrentState(config: config, batchSize: B))
        #expect(abs(total - expected) <= 1e-5 * abs(expected), "\(total) vs \(expected)")
        let gradients = FloatBuffer(count: net.parameterCount)
        let mean = try runner.trainStep(
            inputs: inputs, targets: targets, state: RecurrentState(config: config, batchSize: B), gradients: gradients)
        #expect(abs(mean - expected / Double(B * T)) <= 1e-5 * abs(mean))
        // An output no input in the batch may become gets no gradient at all.
        let reachable = Set(inputs.flatMap { candidates[Int($0)] })
        let outBias = net.layout["out.bias"]!
        for v in 0..<V {
            let g = gradients[outBias.offset + v]
            if !reachable.contains(Int32(v)) { #expect(g == 0) }
        }
        // A target that is not a candidate of its input is refused.
        #expect(throws: NetworkError.self) {
            try runner.evaluate(
                inputs: [Int32](repeating: 0, count: B * T), targets: [Int32](repeating: 1, count: B * T),
                state: RecurrentState(config: config, batchSize: B))
        }
    }

    @Test func candidateMaskChecksItsInput() throws {
        #expect(throws: NetworkError.self) { try CandidateMask(vocabularySize: 2, candidates: [[0]]) }
        #expect(throws: NetworkError.self) { try CandidateMask(vocabularySize: 2, candidates: [[0], []]) }
        #expect(throws: NetworkError.self) { try CandidateMask(vocabularySize: 2, candidates: [[0], [2]]) }
        let mask = try CandidateMask(vocabularySize: 3, candidates: [[0], [1, 2], [2]])
        let logits: [Float] = [9, 1, 2]
        #expect(logits.withUnsafeBufferPointer { mask.best($0, for: 1) } == 2)
        #expect(logits.withUnsafeBufferPointer { mask.best($0, for: 0) } == 0)
    }

    /// PyTorch's h_0 layout: (layers x directions, batch, hidden).
    @Test func stateHasOneSlotPerDirection() {
        let config = NetworkConfig(vocabularySize: 5, hiddenSize: 4, layers: 3, bidirectional: true)
        let state = RecurrentState(config: config, batchSize: 2)
        #expect(state.layers == 6)
        #expect(state.matches(config, batchSize: 2))
        #expect(ParameterLayout(config: config)["out.weight"]?.shape == [5, 8])
        #expect(ParameterLayout(config: config)["rnn.weight_ih_l1_reverse"]?.shape == [16, 8])
    }
}
