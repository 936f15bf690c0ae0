import CKernels
import Testing
@testable import CharNN

/// Compares the network with PyTorch's `nn.LSTM`/`nn.GRU`/`nn.RNN` + `nn.Linear` on fixtures
/// made by scripts/make_fixtures.py (weights, ids, initial state -> logits, loss, gradients).
@Suite struct PyTorchParityTests {
    static let models = [
        "lstm", "gru", "rnn", "lstm_embedding", "gru_embedding", "lstm_bidirectional", "gru_bidirectional",
        "rnn_bidirectional", "lstm_bidirectional_embedding",
    ]

    /// Weight gradients through OpenBLAS (1) and through the packed kernel (0): which one runs
    /// depends on the machine, so both are checked everywhere.
    @Test(arguments: PyTorchParityTests.models, [1, 2])
    func forwardAndBackwardMatchPyTorch(cell: String, threads: Int) throws {
        for openBLAS: Int32 in [0, 1] {
            ck_force_weight_gradients(openBLAS)
            defer { ck_force_weight_gradients(-1) }
            #expect(BLAS.weightGradientsOnOpenBLAS == (openBLAS == 1))
            try checkForwardAndBackward(cell: cell, threads: threads)
        }
    }

    func checkForwardAndBackward(cell: String, threads: Int) throws {
        let fx = try ModelFixture.load(cell)
        let net = try fx.network()
        let runner = BatchRunner(network: net, batchSize: fx.batch, seqLength: fx.steps, threads: threads)
        let state = fx.initialState()
        let gradients = FloatBuffer(count: net.parameterCount)
        let stateGradient = RecurrentState(config: net.config, batchSize: fx.batch)
        let loss = try runner.trainStep(
            inputs: fx.inputs, targets: fx.targets, state: state,
            gradients: gradients, initialStateGradient: stateGradient)
        #expect(
            abs(loss - fx.expected.loss) <= 1e-5 * abs(fx.expected.loss), "loss \(loss) vs PyTorch \(fx.expected.loss)")
        for info in net.layout.tensors {
            let expected = try #require(fx.expected.gradients[info.name], "fixture lacks \(info.name)")
            let actual = Array(gradients.array[info.offset..<(info.offset + info.count)])
            let c = closeness(actual, expected)
            #expect(c <= 1, "gradient of \(info.name) off by \(c)x the tolerance")
        }
        #expect(closeness(stateGradient.h.array, fx.expected.h0_grad) <= 1, "h0 gradient")
        #expect(closeness(state.h.array, fx.expected.final_h) <= 1, "final h")
        if let c0Grad = fx.expected.c0_grad, let finalC = fx.expected.final_c {
            #expect(closeness(stateGradient.c!.array, c0Grad) <= 1, "c0 gradient")
            #expect(closeness(state.c!.array, finalC) <= 1, "final c")
        }
    }

    /// Every instruction set this CPU has, forced on the two-thread path (the workers take the
    /// set forced on the calling thread): products, cells and softmax all run the forced variant.
    @Test(arguments: Array(0...ck_isa_detected()))
    func everyInstructionSetMatchesPyTorchOnTwoThreads(isa: Int32) throws {
        #expect(ck_force_isa(isa) == isa)
        ck_force_weight_gradients(0)
        defer {
            ck_force_isa(-1)
            ck_force_weight_gradients(-1)
        }
        for cell in ["lstm", "gru", "rnn", "lstm_embedding", "lstm_bidirectional", "gru_bidirectional"] {
            let fx = try ModelFixture.load(cell)
            let net = try fx.network()
            let runner = BatchRunner(network: net, batchSize: fx.batch, seqLength: fx.steps, threads: 2)
            #expect(runner.threads == 2)
            let state = fx.initialState()
            let gradients = FloatBuffer(count: net.parameterCount)
            let loss = try runner.trainStep(inputs: fx.inputs, targets: fx.targets, state: state, gradients: gradients)
            #expect(abs(loss - fx.expected.loss) <= 1e-5 * abs(fx.expected.loss), "\(cell) isa \(isa): loss")
            for info in net.layout.tensors {
                let actual = Array(gradients.array[info.offset..<(info.offset + info.count)])
                #expect(
                    closeness(actual, fx.expected.gradients[info.name]!) <= 1,
                    "\(cell) isa \(isa): gradient of \(info.name)")
            }
            #expect(closeness(state.h.array, fx.expected.final_h) <= 1, "\(cell) isa \(isa): final h")
        }
    }

    @Test(arguments: PyTorchParityTests.models, [1, 2])
    func logitsMatchPyTorch(cell: String, threads: Int) throws {
        let fx = try ModelFixture.load(cell)
        let net = try fx.network()
        let runner = BatchRunner(
            network: net, batchSize: fx.batch, seqLength: fx.steps, threads: threads, training: false)
        let logits = try runner.logits(inputs: fx.inputs, state: fx.initialState())
        #expect(logits.count == fx.expected.logits.count, "(batch, steps, vocab) like PyTorch's batch_first output")
        #expect(closeness(logits, fx.expected.logits) <= 1, "logits")
    }

    @Test(arguments: ["lstm", "gru", "rnn", "lstm_bidirectional"])
    func evaluationMatchesPyTorch(cell: String) throws {
        let fx = try ModelFixture.load(cell)
        let net = try fx.network()
        let runner = BatchRunner(network: net, batchSize: fx.batch, seqLength: fx.steps, threads: 1, training: false)
        let state = fx.initialState()
        let total = try runner.evaluate(inputs: fx.inputs, targets: fx.targets, state: state)
        let mean = total / Double(fx.inputs.count)
        #expect(abs(mean - fx.expected.loss) <= 1e-5 * abs(fx.expected.loss))
        #expect(closeness(state.h.array, fx.expected.final_h) <= 1)
    }
}
