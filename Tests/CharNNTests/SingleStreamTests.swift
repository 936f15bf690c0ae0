import CKernels
import Synchronization
import Testing
@testable import CharNN

/// The single-stream generation kernel (`ck_stepper`) against PyTorch's fixtures and against
/// the batched path, in float32 and int8, on one and two threads and every instruction set.
@Suite struct SingleStreamTests {
    /// Steps stream `b` of `ids` (batch-major, `steps` per stream) one id at a time from
    /// `state`'s row b, returning the logits after every step: (steps, vocab).
    func stepLogits(
        _ net: Network, ids: [Int32], steps: Int, stream b: Int, from state: RecurrentState,
        precision: WeightPrecision, threads: Int
    ) throws -> [Float] {
        let session = InferenceSession(network: net, batchSize: 1, precision: precision, threads: threads)
        #expect(session.usesSingleStreamKernel, "one stream runs on the single-stream kernel")
        session.state.copy(row: 0, from: state, row: b)
        var out: [Float] = []
        for t in 0..<steps { out += try session.feed([ids[b * steps + t]]) }
        return out
    }

    @Test(arguments: ["lstm", "gru", "rnn", "lstm_embedding", "gru_embedding"])
    func float32StepsMatchPyTorch(cell: String) throws {
        let fx = try ModelFixture.load(cell)
        let net = try fx.network()
        for isa in 0...ck_isa_detected() {
            #expect(ck_force_isa(isa) == isa)
            defer { ck_force_isa(-1) }
            for b in 0..<fx.batch {
                let logits = try stepLogits(
                    net, ids: fx.inputs, steps: fx.steps, stream: b, from: fx.initialState(), precision: .f32,
                    threads: 1)
                let v = fx.vocab
                let expected = Array(fx.expected.logits[(b * fx.steps * v)..<((b + 1) * fx.steps * v)])
                #expect(closeness(logits, expected) <= 1, "\(cell) isa \(isa) stream \(b)")
            }
        }
    }

    /// Hidden sizes that are not multiples of 16 (padding), split over two threads, every
    /// cell, with and without an embedding: the stepper against the batched products.
    @Test(arguments: CellKind.allCases, [nil, 7] as [Int?])
    func twoThreadsMatchTheBatchedPath(cell: CellKind, embedding: Int?) throws {
        for hidden in [40, 77] {
            let config = NetworkConfig(
                cell: cell, vocabularySize: 23, hiddenSize: hidden, layers: 3, embeddingSize: embedding)
            let net = try Network(config: config, seed: 11)
            let steps = 9
            let ids = (0..<(2 * steps)).map { Int32(($0 * 7 + 3) % 23) }
            let runner = BatchRunner(network: net, batchSize: 2, seqLength: steps, threads: 1, training: false)
            let expected = try runner.logits(inputs: ids, state: RecurrentState(config: config, batchSize: 2))
            for isa in 0...ck_isa_detected() {
                #expect(ck_force_isa(isa) == isa)
                defer { ck_force_isa(-1) }
                for b in 0..<2 {
                    let session = InferenceSession(network: net, batchSize: 1, threads: 2)
                    #expect(
                        session.usesSingleStreamKernel && session.threads == 2,
                        "hidden \(hidden) splits over two threads")
                    var logits: [Float] = []
                    for t in 0..<steps { logits += try session.feed([ids[b * steps + t]]) }
                    let slice = Array(expected[(b * steps * 23)..<((b + 1) * steps * 23)])
                    #expect(closeness(logits, slice) <= 1, "\(cell) hidden \(hidden) isa \(isa) stream \(b)")
                }
            }
        }
    }

    /// int8 weights compute what the float32 network holding the int8-rounded weights does, up
    /// to the int16 rounding of the inputs of each product (at most 1/65534 of the largest
    /// input): ten times smaller, at least, than what rounding the weights itself changes.
    @Test(arguments: CellKind.allCases)
    func int8StepsMatchTheRoundedNetwork(cell: CellKind) throws {
        let config = NetworkConfig(cell: cell, vocabularySize: 31, hiddenSize: 72, layers: 2)
        let net = try Network(config: config, seed: 5)
        let rounded = net.rounded(to: .int8)
        #expect(rounded !== net && net.rounded(to: .int8) === rounded, "made once, then cached")
        #expect(net.rounded(to: .f32) === net)
        let steps = 12
        let ids = (0..<steps).map { Int32(($0 * 5 + 1) % 31) }
        func batched(_ network: Network) throws -> [Float] {
            let runner = BatchRunner(network: network, batchSize: 1, seqLength: steps, threads: 1, training: false)
            return try runner.logits(inputs: ids, state: RecurrentState(config: config, batchSize: 1))
        }
        let expected = try batched(rounded), exact = try batched(net)
        func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
            zip(a, b).map { $0.isNaN || $1.isNaN ? .infinity : abs($0 - $1) }.max()!
        }
        let roundingEffect = maxDifference(expected, exact)
        #expect(roundingEffect > 1e-4, "rounding the weights changes the logits (\(roundingEffect))")
        let start = RecurrentState(config: config, batchSize: 1)
        for isa in 0...ck_isa_detected() {
            #expect(ck_force_isa(isa) == isa)
            defer { ck_force_isa(-1) }
            for threads in [1, 2] {
                let logits = try stepLogits(
                    net, ids: ids, steps: steps, stream: 0, from: start, precision: .int8, threads: threads)
                let error = maxDifference(logits, expected)
                #expect(
                    error <= roundingEffect / 10 && error <= 1e-3,
                    "\(cell) isa \(isa) threads \(threads): \(error) from the rounded network, whose own effect is \(roundingEffect)"
                )
            }
        }
        // A batch at int8 precision runs the rounded weights: the same logits as one stream.
        let batch = InferenceSession(network: net, batchSize: 2, precision: .int8)
        let both = try batch.feed(ids + ids)
        #expect(closeness(Array(both[0..<31]), Array(expected.suffix(31))) <= 1)
        #expect(both[0..<31] == both[31..<62])
    }

    /// A session made from `QuantizedWeights` (what a saved int8 file holds) computes the same
    /// logits, bit for bit, as one that quantizes the network itself, on every cell, with and
    /// without an embedding, on one and two threads; and it makes the network only when asked.
    /// The AVX2 and AVX-512 int8 products agree bit for bit too (rows of 16, 48 and 64 padded
    /// values: the AVX-512 one's tail of 16 and its whole vectors of 32).
    @Test(arguments: CellKind.allCases, [nil, 6] as [Int?])
    func quantizedWeightsStepLikeTheNetworkAtInt8(cell: CellKind, embedding: Int?) throws {
        for hidden in [50, 40] {
            try quantizedWeightsStep(cell: cell, embedding: embedding, hidden: hidden)
        }
    }

    private func quantizedWeightsStep(cell: CellKind, embedding: Int?, hidden: Int) throws {
        let config = NetworkConfig(
            cell: cell, vocabularySize: 29, hiddenSize: hidden, layers: 2, embeddingSize: embedding)
        let net = try Network(config: config, seed: 9)
        let weights = QuantizedWeights(network: net)
        let int8 = QuantizedWeights.int8Tensors(config)
        #expect(
            int8.count == (embedding == nil ? 4 : 5), "weight_hh of each layer, weight_ih above a one-hot layer, out")
        #expect(int8["rnn.weight_ih_l0"] == nil || embedding != nil, "one-hot input weights stay float32")
        let ids = (0..<15).map { Int32(($0 * 11 + 2) % 29) }
        var byISA: [Int32: [UInt32]] = [:]
        for isa in 0...ck_isa_detected() {
            #expect(ck_force_isa(isa) == isa)
            defer { ck_force_isa(-1) }
            for threads in [1, 2] {
                let reference = InferenceSession(network: net, precision: .int8, threads: threads)
                let made = Mutex(0)
                let session = InferenceSession(quantized: weights, threads: threads) {
                    made.withLock { $0 += 1 }
                    return net
                }
                #expect(session.usesSingleStreamKernel && session.threads == reference.threads)
                var expected: [Float] = [], logits: [Float] = []
                for id in ids {
                    expected += try reference.feed([id])
                    logits += try session.feed([id])
                }
                #expect(
                    logits.map(\.bitPattern) == expected.map(\.bitPattern), "\(cell) isa \(isa) threads \(threads)")
                byISA[isa] = logits.map(\.bitPattern)
                #expect(made.withLock { $0 } == 0, "the network is not made to step")
                #expect(session.network === net && made.withLock { $0 } == 1, "made once, when asked for")
                _ = session.network
                #expect(made.withLock { $0 } == 1)
            }
        }
        if let avx2 = byISA[Int32(CK_ISA_AVX2)], let avx512 = byISA[Int32(CK_ISA_AVX512)] {
            #expect(avx2 == avx512, "\(cell) hidden \(hidden): the AVX2 and AVX-512 int8 products")
        }
    }

    /// Weights over outside memory are checked against the network's layout by name.
    @Test func quantizedWeightsCheckTheirTensors() throws {
        let config = NetworkConfig(cell: .gru, vocabularySize: 13, hiddenSize: 20, layers: 2)
        let weights = QuantizedWeights(network: try Network(config: config, seed: 1))
        var byName: [String: QuantizedWeights.Tensor] = [:]
        for (info, tensor) in zip(weights.layout.tensors, weights.tensors) { byName[info.name] = tensor }
        _ = try QuantizedWeights(config: config, tensors: byName, owner: weights)
        var missing = byName
        missing["out.bias"] = nil
        #expect(throws: NetworkError.missingTensor("out.bias")) {
            try QuantizedWeights(config: config, tensors: missing, owner: weights)
        }
        var swapped = byName
        swapped["out.weight"] = byName["out.bias"]
        #expect(throws: NetworkError.self) { try QuantizedWeights(config: config, tensors: swapped, owner: weights) }
        var extra = byName
        extra["rnn.weight_hh_l2"] = byName["rnn.weight_hh_l1"]
        #expect(throws: NetworkError.self) { try QuantizedWeights(config: config, tensors: extra, owner: weights) }
        var wide = config
        wide.hiddenSize = 21
        #expect(throws: NetworkError.self) { try QuantizedWeights(config: wide, tensors: byName, owner: weights) }
    }

    @Test func quantizationRoundsEachRowToItsOwnScale() {
        let rows: [[Float]] = [
            [0.5, -1.0, 0.25, 0.003], [0, 0, 0, 0], [2e-3, -1e-3, 5e-4, 0], [1e30, -3e29, 7, -1e30],
        ]
        var q = [Int8](repeating: 0, count: 16)
        var scale = [Float](repeating: 0, count: 4)
        let flat = rows.flatMap { $0 }
        ck_quantize_rows(4, 4, flat, 4, &q, 4, &scale)
        for r in 0..<4 {
            let maxAbs = rows[r].map { abs($0) }.max()!
            #expect(scale[r] == (maxAbs > 0 ? maxAbs / 127 : 1), "row \(r) scale")
            for k in 0..<4 {
                let value = Float(q[r * 4 + k]) * scale[r]
                #expect(abs(value - rows[r][k]) <= scale[r] / 2 * 1.0001, "row \(r) column \(k) within half a step")
            }
            if maxAbs > 0 {
                #expect(q[(r * 4)..<(r * 4 + 4)].contains { abs($0) == 127 }, "row \(r) uses the full range")
            }
        }
        var rounded = flat
        ck_round_rows_to_int8(4, 4, &rounded)
        for i in 0..<16 { #expect(rounded[i] == Float(q[i]) * scale[i / 4]) }
    }

    /// A NaN in the weights gives NaN logits at both precisions, as float32 products would
    /// (the int8 path must not turn it into an integer).
    @Test func nanWeightsGiveNaNLogits() throws {
        let config = NetworkConfig(cell: .lstm, vocabularySize: 11, hiddenSize: 32, layers: 2)
        let net = try Network(config: config, seed: 2)
        var whh = try net.tensor("rnn.weight_hh_l1")
        whh[5] = .nan
        try net.setTensor("rnn.weight_hh_l1", values: whh)
        for precision in WeightPrecision.allCases {
            let session = InferenceSession(network: net, precision: precision, threads: 2)
            let logits = try session.feed([1, 2, 3])
            let allNaN = logits.allSatisfy { $0.isNaN }
            #expect(allNaN, "\(precision)")
        }
    }

    /// A prompt fed in one call leaves the same state as the same ids fed one by one, and the
    /// session's state is what the next call continues from.
    @Test func stateCarriesAcrossCalls() throws {
        let config = NetworkConfig(cell: .lstm, vocabularySize: 17, hiddenSize: 48, layers: 2)
        let net = try Network(config: config, seed: 3)
        let ids: [Int32] = [1, 5, 9, 2, 16, 0, 4]
        let whole = InferenceSession(network: net, threads: 2)
        #expect(whole.usesSingleStreamKernel)
        let a = try whole.feed(ids)
        let pieces = InferenceSession(network: net, threads: 2)
        var b: [Float] = []
        for id in ids { b = try pieces.feed([id]) }
        #expect(a == b)
        #expect(whole.state.h.array == pieces.state.h.array && whole.state.c!.array == pieces.state.c!.array)
        whole.reset()
        #expect(try whole.feed(ids) == a, "reset starts again from zeros")
        #expect(throws: NetworkError.self) { try whole.feed([17]) }
    }
}
