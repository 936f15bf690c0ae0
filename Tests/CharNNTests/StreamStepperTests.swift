import CKernels
import Testing
@testable import CharNN

/// `StreamStepper`, the serving engine's batched step: each stream's logits and state are
/// those of the batched training-path forward, and do not depend on which streams share a step.
@Suite struct StreamStepperTests {
    @Test(arguments: CellKind.allCases, [nil, 5] as [Int?])
    func eachRowIsComputedAloneAndMatchesTheBatchedPath(cell: CellKind, embedding: Int?) throws {
        let config = NetworkConfig(cell: cell, vocabularySize: 19, hiddenSize: 37, layers: 2, embeddingSize: embedding)
        let net = try Network(config: config, seed: 5)
        let streams = 7, steps = 6
        let ids = (0..<(streams * steps)).map { Int32(($0 * 11 + 4) % 19) }  // batch-major
        let runner = BatchRunner(network: net, batchSize: streams, seqLength: steps, threads: 1, training: false)
        let expected = try runner.logits(inputs: ids, state: RecurrentState(config: config, batchSize: streams))
        let V = config.vocabularySize
        for isa in 0...ck_isa_detected() {
            #expect(ck_force_isa(isa) == isa)
            defer { ck_force_isa(-1) }
            // Every stream alone, one stepper per stream.
            var alone: [[Float]] = []
            for b in 0..<streams {
                let stepper = StreamStepper(network: net)
                let state = RecurrentState(config: config, batchSize: 1)
                var out: [Float] = []
                for t in 0..<steps { out += try stepper.step([ids[b * steps + t]], states: [state]) }
                alone.append(out)
                // expected is (batch, steps, vocab) for the whole batch run.
                let reference = Array(expected[(b * steps * V)..<((b + 1) * steps * V)])
                #expect(closeness(out, reference) <= 1, "\(cell) isa \(isa) stream \(b) against the batched path")
            }
            // The same streams together, joining at different steps and in a shuffled order.
            let stepper = StreamStepper(network: net)
            let states = (0..<streams).map { _ in RecurrentState(config: config, batchSize: 1) }
            var together = [[Float]](repeating: [], count: streams)
            var fed = [Int](repeating: 0, count: streams)
            var round = 0
            while fed.contains(where: { $0 < steps }) {
                // Stream b joins at round b / 2; the row order changes every round.
                let rows = (0..<streams).filter { round >= $0 / 2 && fed[$0] < steps }
                    .sorted { ($0 * 5 + round) % streams < ($1 * 5 + round) % streams }
                let logits = try stepper.step(rows.map { ids[$0 * steps + fed[$0]] }, states: rows.map { states[$0] })
                for (r, b) in rows.enumerated() {
                    together[b] += logits[(r * V)..<((r + 1) * V)]
                    fed[b] += 1
                }
                round += 1
            }
            for b in 0..<streams {
                #expect(together[b] == alone[b], "\(cell) isa \(isa) stream \(b): bit-identical in any company")
            }
        }
    }

    /// Products large enough to split by column (n × k ≥ 2^18), on two threads: bit-identical.
    @Test(arguments: [CellKind.lstm, .gru], [nil, 24] as [Int?])
    func splittingColumnsChangesNothing(cell: CellKind, embedding: Int?) throws {
        let config = NetworkConfig(
            cell: cell, vocabularySize: 50, hiddenSize: 300, layers: 2, embeddingSize: embedding)
        let net = try Network(config: config, seed: 9)
        #expect(config.gateWidth * config.hiddenSize >= Workspace.minimumSplitProduct, "the split happens")
        for isa in 0...ck_isa_detected() {
            #expect(ck_force_isa(isa) == isa)
            defer { ck_force_isa(-1) }
            let one = StreamStepper(network: net), two = StreamStepper(network: net)
            two.columnThreads = 2
            for rows in [1, 3] {
                let a = (0..<rows).map { _ in RecurrentState(config: config, batchSize: 1) }
                let b = (0..<rows).map { _ in RecurrentState(config: config, batchSize: 1) }
                for t in 0..<5 {
                    let ids = (0..<rows).map { Int32((t * 7 + $0 * 13) % 50) }
                    let x = try one.step(ids, states: a), y = try two.step(ids, states: b)
                    #expect(x == y, "\(cell) isa \(isa) rows \(rows) step \(t): logits")
                    for r in 0..<rows { #expect(a[r].h.array == b[r].h.array && a[r].c?.array == b[r].c?.array) }
                }
            }
        }
    }

    @Test func badIdsAndStatesAreRefused() throws {
        let config = NetworkConfig(cell: .lstm, vocabularySize: 9, hiddenSize: 8, layers: 1)
        let stepper = StreamStepper(network: try Network(config: config, seed: 1))
        let state = RecurrentState(config: config, batchSize: 1)
        #expect(throws: NetworkError.self) { try stepper.step([9], states: [state]) }
        #expect(throws: NetworkError.self) {
            try stepper.step([1], states: [RecurrentState(config: config, batchSize: 2)])
        }
        #expect(try stepper.step([], states: []).isEmpty)
    }
}
