import Testing
@testable import CharNN

/// Three steps of each optimizer, with clipping by global norm before each, against PyTorch
/// (`torch.optim.*` and `clip_grad_norm_`, fixtures from scripts/make_fixtures.py).
@Suite struct OptimizerTests {
    static let caseNames = [
        "adam", "adam_wd", "adamw", "rmsprop", "rmsprop_momentum_centered", "sgd", "sgd_momentum", "sgd_nesterov",
    ]

    static func config(_ name: String, _ options: [String: OptimizerFixture.OptionValue]) -> OptimizerConfig {
        let kind: OptimizerKind =
            name.hasPrefix("adamw")
            ? .adamw : name.hasPrefix("adam") ? .adam : name.hasPrefix("rmsprop") ? .rmsprop : .sgd
        func number(_ key: String) -> Float? { if case .number(let v)? = options[key] { return Float(v) }; return nil }
        func flag(_ key: String) -> Bool { if case .bool(let v)? = options[key] { return v }; return false }
        var c = OptimizerConfig(kind: kind, learningRate: number("lr")!)
        if case .pair(let betas)? = options["betas"] { c.beta1 = Float(betas[0]); c.beta2 = Float(betas[1]) }
        if let eps = number("eps") { c.epsilon = eps }
        if let wd = number("weight_decay") { c.weightDecay = wd }
        if let m = number("momentum") { c.momentum = m }
        if let a = number("alpha") { c.alpha = a }
        if let d = number("dampening") { c.dampening = d }
        c.centered = flag("centered")
        c.nesterov = flag("nesterov")
        return c
    }

    @Test(arguments: OptimizerTests.caseNames)
    func stepsMatchPyTorch(name: String) throws {
        let fx = try OptimizerFixture.load()
        let fixtureCase = try #require(fx.cases[name])
        let optimizer = try Optimizer(config: Self.config(name, fixtureCase.options), parameterCount: fx.start.count)
        let params = FloatBuffer(fx.start)
        for (step, g) in fx.gradients.enumerated() {
            let grads = FloatBuffer(g)
            GradientClipping.clip(grads, maxNorm: fx.clip)
            optimizer.update(parameters: params, gradients: grads)
            let c = closeness(params.array, fixtureCase.after_each_step[step])
            #expect(c <= 1, "\(name) step \(step + 1) off by \(c)x the tolerance")
        }
    }

    @Test func stateRestoresExactly() throws {
        var rng = SeededGenerator(seed: 1)
        let n = 50
        let grads = (0..<6).map { _ in FloatBuffer((0..<n).map { _ in rng.uniform(-1, 1) }) }
        for kind in OptimizerKind.allCases {
            var config = OptimizerConfig(kind: kind, learningRate: 0.01)
            config.momentum = kind == .adam || kind == .adamw ? 0 : 0.9
            let a = try Optimizer(config: config, parameterCount: n)
            let pa = FloatBuffer((0..<n).map { Float($0) / 10 })
            for g in grads.prefix(3) { a.update(parameters: pa, gradients: g) }
            let b = try Optimizer(config: config, parameterCount: n)
            try b.restore(
                step: a.step,
                buffers: Dictionary(uniqueKeysWithValues: a.stateNames.map { ($0, a.stateBuffer($0)!.array) }))
            let pb = FloatBuffer(pa.array)
            for g in grads.suffix(3) {
                a.update(parameters: pa, gradients: g)
                b.update(parameters: pb, gradients: g)
            }
            #expect(pa.array == pb.array, "\(kind): a restored optimizer must continue bit for bit")
        }
    }

    @Test func restoreRejectsWrongState() throws {
        let opt = try Optimizer(config: OptimizerConfig(kind: .adam, learningRate: 0.1), parameterCount: 4)
        #expect(throws: NetworkError.self) { try opt.restore(step: 1, buffers: ["exp_avg": [0, 0, 0, 0]]) }
        #expect(throws: NetworkError.self) { try opt.restore(step: 1, buffers: ["exp_avg": [0], "exp_avg_sq": [0]]) }
    }

    @Test func invalidConfigurationsAreRejected() {
        #expect(throws: NetworkError.self) { try OptimizerConfig(kind: .adam, learningRate: -1).validate() }
        #expect(throws: NetworkError.self) { try OptimizerConfig(kind: .sgd, learningRate: .nan).validate() }
        var c = OptimizerConfig(kind: .sgd, learningRate: 0.1)
        c.nesterov = true
        #expect(throws: NetworkError.self) { try c.validate() }
    }

    @Test func clippingScalesToTheMaximumNorm() {
        let g = FloatBuffer([3, 4])
        let before = GradientClipping.clip(g, maxNorm: 1)
        #expect(abs(before - 5) < 1e-6)
        #expect(abs(GradientClipping.norm(g) - 1) < 1e-5)
        let small = FloatBuffer([0.3, 0.4])
        GradientClipping.clip(small, maxNorm: 1)
        #expect(small.array == [0.3, 0.4], "a norm under the limit is left alone")
        #expect(!GradientClipping.allFinite(FloatBuffer([1, .nan])))
        #expect(!GradientClipping.allFinite(FloatBuffer([.infinity])))
        #expect(GradientClipping.allFinite(FloatBuffer([1, -2])))
    }
}

/// A two-layer model must be able to memorise a short text: the whole pipeline learns.
@Suite struct OverfitTests {
    @Test(arguments: CellKind.allCases)
    func twoLayerModelMemorisesAShortText(cell: CellKind) throws {
        let text = Array("the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.".utf8)
        let alphabet = Array(Set(text)).sorted()
        let ids = text.map { Int32(alphabet.firstIndex(of: $0)!) }
        let config = NetworkConfig(cell: cell, vocabularySize: alphabet.count, hiddenSize: 48, layers: 2)
        let net = try Network(config: config, seed: 3)
        let steps = ids.count - 1
        let runner = BatchRunner(network: net, batchSize: 1, seqLength: steps, threads: 1)
        let optimizer = try Optimizer(
            config: OptimizerConfig(kind: .adam, learningRate: 1e-2), parameterCount: net.parameterCount)
        let gradients = FloatBuffer(count: net.parameterCount)
        var loss = Double.infinity
        var first = 0.0
        for step in 0..<250 {
            loss = try runner.trainStep(
                inputs: Array(ids.dropLast()), targets: Array(ids.dropFirst()),
                state: RecurrentState(config: config, batchSize: 1), gradients: gradients)
            if step == 0 { first = loss }
            GradientClipping.clip(gradients, maxNorm: 5)
            optimizer.update(parameters: net.parameters, gradients: gradients)
            net.parametersDidChange()
        }
        #expect(first > 3, "starts near log(vocab)")
        #expect(loss < 0.05, "\(cell): loss after 250 steps \(loss)")
    }
}
