import Testing
@testable import CharNN

/// Central finite differences of the mean loss against the analytic gradient, for every
/// parameter and every initial-state value, with and without dropout (a fixed mask).
///
/// The loss is evaluated in float32, so a perturbation of 1e-2 balances rounding noise against
/// the O(eps^2) truncation error; the tolerance (4% of the larger value, plus 1% of the
/// tensor's largest gradient) passes correct code by a wide margin and fails a wrong sign,
/// a missing term or a wrong factor.
@Suite struct GradientCheckTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let cell: CellKind
        let layers: Int
        let dropout: Float
        var embedding: Int? = nil
        var bidirectional = false
        /// Restrict the loss to three candidate outputs per input (a labelling network's loss).
        var candidates = false
        var testDescription: String {
            "\(cell) \(layers) layer(s), dropout \(dropout)" + (embedding.map { ", embedding \($0)" } ?? "")
                + (bidirectional ? ", bidirectional" : "") + (candidates ? ", candidates" : "")
        }
    }

    static let cases: [Case] = CellKind.allCases.flatMap { cell in
        [1, 2, 3].flatMap { layers in [Float(0), 0.3].map { Case(cell: cell, layers: layers, dropout: $0) } }
            + [
                Case(cell: cell, layers: 2, dropout: 0.3, embedding: 4),
                Case(cell: cell, layers: 1, dropout: 0, embedding: 3),
                Case(cell: cell, layers: 1, dropout: 0, bidirectional: true),
                Case(cell: cell, layers: 3, dropout: 0.3, bidirectional: true),
                Case(cell: cell, layers: 2, dropout: 0, embedding: 3, bidirectional: true),
                Case(cell: cell, layers: 2, dropout: 0.3, bidirectional: true, candidates: true),
            ]
    }

    @Test(arguments: GradientCheckTests.cases)
    func finiteDifferencesMatchGradients(_ c: Case) throws {
        let batch = 3, steps = 4
        let config = NetworkConfig(
            cell: c.cell, vocabularySize: 6, hiddenSize: 5, layers: c.layers, dropout: c.dropout,
            embeddingSize: c.embedding, bidirectional: c.bidirectional)
        let net = try Network(config: config, seed: 11)
        // Widen the weights so that the gates leave their linear range.
        net.parameters.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] *= 2.5 } }
        net.parametersDidChange()
        var rng = SeededGenerator(seed: 5)
        let inputs = (0..<(batch * steps)).map { _ in Int32(rng.next() % 6) }
        // With candidates, input i may become i, i + 1 or i + 3 (mod 6), and every target is one of them.
        var mask: CandidateMask? = nil
        if c.candidates {
            let lists: [[Int32]] = (0..<6).map { (i: Int) -> [Int32] in
                [Int32(i), Int32((i + 1) % 6), Int32((i + 3) % 6)]
            }
            mask = try CandidateMask(vocabularySize: 6, candidates: lists)
        }
        let shifts: [Int32] = [0, 1, 3]
        let targets = inputs.map { (i: Int32) -> Int32 in
            let draw = Int(rng.next() % 6)
            return c.candidates ? (i + shifts[draw % 3]) % 6 : Int32(draw)
        }
        let units = config.layers * config.directions
        let h0 = (0..<(units * batch * config.hiddenSize)).map { _ in rng.uniform(-0.8, 0.8) }
        let c0 = (0..<(units * batch * config.hiddenSize)).map { _ in rng.uniform(-0.8, 0.8) }
        let runner = BatchRunner(network: net, batchSize: batch, seqLength: steps, threads: 2, candidates: mask)
        let gradients = FloatBuffer(count: net.parameterCount)
        let scratch = FloatBuffer(count: net.parameterCount)

        func state(h: [Float], c: [Float]) -> RecurrentState {
            let s = RecurrentState(config: config, batchSize: batch)
            s.h.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = h[i] } }
            s.c?.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = c[i] } }
            return s
        }
        func loss(h: [Float] = h0, c: [Float] = c0) throws -> Double {
            try runner.trainStep(
                inputs: inputs, targets: targets, state: state(h: h, c: c), gradients: scratch, dropoutKey: 77)
        }

        let stateGradient = RecurrentState(config: config, batchSize: batch)
        _ = try runner.trainStep(
            inputs: inputs, targets: targets, state: state(h: h0, c: c0), gradients: gradients,
            dropoutKey: 77, initialStateGradient: stateGradient)
        let eps: Float = 1e-2

        func check(_ name: String, analytic: [Float], numeric: (Int) throws -> Double) throws {
            let scale = analytic.map { abs(Double($0)) }.max() ?? 0
            #expect(scale > 1e-4, "\(name): gradient is all zero, nothing was checked")
            for i in analytic.indices {
                let fd = try numeric(i)
                let a = Double(analytic[i])
                let allowed = 0.04 * max(abs(fd), abs(a)) + 0.01 * scale + 2e-5
                #expect(abs(fd - a) <= allowed, "\(name)[\(i)]: finite difference \(fd), analytic \(a)")
            }
        }

        for info in net.layout.tensors {
            let analytic = Array(gradients.array[info.offset..<(info.offset + info.count)])
            try check(info.name, analytic: analytic) { i in
                let index = info.offset + i
                let saved = net.parameters[index]
                net.parameters[index] = saved + eps
                net.parametersDidChange()
                let up = try loss()
                net.parameters[index] = saved - eps
                net.parametersDidChange()
                let down = try loss()
                net.parameters[index] = saved
                net.parametersDidChange()
                return (up - down) / Double(2 * eps)
            }
        }
        try check("h0", analytic: stateGradient.h.array) { i in
            var up = h0, down = h0
            up[i] += eps
            down[i] -= eps
            return (try loss(h: up) - loss(h: down)) / Double(2 * eps)
        }
        if let cGradient = stateGradient.c {
            try check("c0", analytic: cGradient.array) { i in
                var up = c0, down = c0
                up[i] += eps
                down[i] -= eps
                return (try loss(c: up) - loss(c: down)) / Double(2 * eps)
            }
        }
    }

    @Test func dropoutIsIndependentOfThreadCount() throws {
        let config = NetworkConfig(cell: .lstm, vocabularySize: 7, hiddenSize: 9, layers: 2, dropout: 0.4)
        let net = try Network(config: config, seed: 2)
        var rng = SeededGenerator(seed: 8)
        let inputs = (0..<(5 * 6)).map { _ in Int32(rng.next() % 7) }
        let targets = (0..<(5 * 6)).map { _ in Int32(rng.next() % 7) }
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let runner = BatchRunner(network: net, batchSize: 5, seqLength: 6, threads: threads)
            let gradients = FloatBuffer(count: net.parameterCount)
            _ = try runner.trainStep(
                inputs: inputs, targets: targets, state: RecurrentState(config: config, batchSize: 5),
                gradients: gradients, dropoutKey: 9)
            results.append(gradients.array)
        }
        #expect(closeness(results[1], results[0]) <= 1)
        #expect(closeness(results[2], results[0]) <= 1)
    }

    /// What each MPI rank computes: runners over parts of a batch, placed in it by
    /// `globalRowOffset`, give shares of the loss and gradient that sum to the whole batch's,
    /// dropout included (masks follow the global row), and the parts' final states.
    @Test func partsOfABatchSumToTheWhole() throws {
        let config = NetworkConfig(cell: .gru, vocabularySize: 7, hiddenSize: 10, layers: 2, dropout: 0.3)
        let net = try Network(config: config, seed: 4)
        let (B, T) = (7, 5)
        var rng = SeededGenerator(seed: 3)
        let inputs = (0..<(B * T)).map { _ in Int32(rng.next() % 7) }
        let targets = (0..<(B * T)).map { _ in Int32(rng.next() % 7) }
        let whole = BatchRunner(network: net, batchSize: B, seqLength: T, threads: 1)
        let wholeState = RecurrentState(config: config, batchSize: B)
        let expected = FloatBuffer(count: net.parameterCount)
        let loss = try whole.trainStep(
            inputs: inputs, targets: targets, state: wholeState, gradients: expected, dropoutKey: 21)
        var sum = [Float](repeating: 0, count: net.parameterCount)
        var lossSum = 0.0
        for part in [0..<3, 3..<4, 4..<7] {
            let runner = BatchRunner(
                network: net, batchSize: part.count, seqLength: T, threads: 1, globalRowOffset: part.lowerBound,
                globalBatchSize: B)
            let state = RecurrentState(config: config, batchSize: part.count)
            let gradients = FloatBuffer(count: net.parameterCount)
            let ids = (part.lowerBound * T)..<(part.upperBound * T)
            lossSum += try runner.trainStep(
                inputs: Array(inputs[ids]), targets: Array(targets[ids]), state: state, gradients: gradients,
                dropoutKey: 21)
            for (i, g) in gradients.array.enumerated() { sum[i] += g }
            // h is (layers, rows, hidden): every layer's row of every stream of this part.
            for l in 0..<2 {
                for r in 0..<part.count {
                    let at = (l * part.count + r) * 10, wholeAt = (l * B + part.lowerBound + r) * 10
                    #expect(
                        Array(state.h.array[at..<(at + 10)]) == Array(wholeState.h.array[wholeAt..<(wholeAt + 10)]),
                        "final state of layer \(l), stream \(part.lowerBound + r)")
                }
            }
        }
        #expect(abs(lossSum - loss) <= 1e-6 * abs(loss))
        #expect(closeness(sum, expected.array) <= 1)
    }
}
