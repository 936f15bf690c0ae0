import Synchronization

/// Runs a `Network` forward for generation: a batch of streams fed a few ids at a time,
/// keeping their state, returning the next-id logits of the last step fed.
///
/// ```swift
/// let session = InferenceSession(network: net, batchSize: 1)
/// let logits = try session.feed([3, 7, 1])   // prime with a prompt
/// let next = try session.feed([sampledID])    // then one id per step
/// ```
///
/// A session takes the network's weights as they are when it is made (one stream copies them
/// into its kernel, a batch at int8 precision uses a rounded copy): make a new session after
/// the weights change.
///
/// One stream (`batchSize` 1) is stepped by a kernel built for it: the weights in `precision`,
/// the work of each step split by hidden unit over `threads` threads. Several streams run as
/// batched products on float32 weights rounded to `precision`, so that a batch computes what
/// the single stream does.
///
/// Only for a network that runs forward in time (not `bidirectional`).
public final class InferenceSession: @unchecked Sendable {
    /// The network the session was made from (made on first use for a session made from
    /// `QuantizedWeights`).
    public var network: Network { networkSource.withLock { $0.get() } }
    public let config: NetworkConfig
    public let batchSize: Int
    public let precision: WeightPrecision
    /// The streams' current state.
    public let state: RecurrentState
    private let chunkLength: Int
    private let batched: (network: Network, workspace: Workspace)?
    private let stepper: SingleStreamStepper?
    private let logitsBuffer: FloatBuffer
    private let networkSource: Mutex<NetworkSource>

    /// A network at hand, or the way to make it.
    private enum NetworkSource {
        case ready(Network)
        case later(() -> Network)

        mutating func get() -> Network {
            switch self {
            case .ready(let network): return network
            case .later(let make):
                let network = make()
                self = .ready(network)
                return network
            }
        }
    }

    /// - Parameters:
    ///   - chunkLength: steps per forward pass when a long prompt is fed to several streams.
    ///   - precision: how the weights are stored for this session.
    ///   - threads: threads for one stream (default: every core).
    public init(
        network: Network, batchSize: Int = 1, chunkLength: Int = 64, precision: WeightPrecision = .f32,
        threads: Int = BatchRunner.defaultThreads
    ) {
        precondition(batchSize >= 1 && chunkLength >= 1, "batch size and chunk length must be positive")
        precondition(
            !network.config.bidirectional,
            "a bidirectional network reads a whole chunk at once: use BatchRunner.logits, not a session")
        BLAS.ensureReady()
        networkSource = Mutex(.ready(network))
        config = network.config
        self.batchSize = batchSize
        self.chunkLength = chunkLength
        self.precision = precision
        state = RecurrentState(config: network.config, batchSize: batchSize)
        logitsBuffer = FloatBuffer(count: batchSize * network.config.vocabularySize)
        if batchSize == 1, let stepper = SingleStreamStepper(network: network, precision: precision, threads: threads) {
            self.stepper = stepper
            batched = nil
        } else {
            stepper = nil
            let rounded = network.rounded(to: precision)
            batched = (
                rounded,
                Workspace(
                    config: network.config, parameterCount: network.parameterCount, rows: batchSize,
                    steps: chunkLength, training: false)
            )
        }
    }

    /// One stream on weights already quantized: computes what a session made from the
    /// network at `.int8` computes, bit for bit, without the network's float32 weights.
    /// `network` makes the network when something first asks for it (the `network`
    /// property, or a fallback to the batched path when the one-stream kernel cannot be made).
    public init(
        quantized: QuantizedWeights, threads: Int = BatchRunner.defaultThreads,
        network: @escaping @Sendable () -> Network
    ) {
        precondition(
            !quantized.config.bidirectional,
            "a bidirectional network reads a whole chunk at once: use BatchRunner.logits, not a session")
        BLAS.ensureReady()
        config = quantized.config
        batchSize = 1
        chunkLength = 64
        precision = .int8
        state = RecurrentState(config: config, batchSize: 1)
        logitsBuffer = FloatBuffer(count: config.vocabularySize)
        if let stepper = SingleStreamStepper(quantized: quantized, threads: threads) {
            self.stepper = stepper
            batched = nil
            networkSource = Mutex(.later(network))
        } else {
            let made = network()
            stepper = nil
            batched = (
                made.rounded(to: .int8),
                Workspace(
                    config: config, parameterCount: made.parameterCount, rows: 1, steps: chunkLength, training: false)
            )
            networkSource = Mutex(.ready(made))
        }
    }

    /// Threads that step one stream (1 for a batch, whose products run on the caller's thread).
    public var threads: Int { stepper?.threads ?? 1 }

    /// Whether the single-stream kernel runs this session (one stream, and it could be made).
    var usesSingleStreamKernel: Bool { stepper != nil }

    /// Sets every stream back to the zero state.
    public func reset() {
        state.reset()
    }

    /// Feeds `ids` — (batchSize, steps) batch-major, steps >= 1 — and returns the logits
    /// (batchSize, vocabularySize) after the last step.
    public func feed(_ ids: [Int32]) throws -> [Float] {
        guard !ids.isEmpty, ids.count % batchSize == 0 else {
            throw NetworkError.invalidInput("expected \(batchSize) streams of equal length, got \(ids.count) ids")
        }
        let vocab = Int32(config.vocabularySize)
        for id in ids where id < 0 || id >= vocab {
            throw NetworkError.invalidInput("id \(id) outside the vocabulary 0..<\(vocab)")
        }
        if let stepper {
            stepper.setState(state)
            for (i, id) in ids.enumerated() {
                stepper.step(id, logits: i == ids.count - 1 ? logitsBuffer.pointer : nil)
            }
            stepper.getState(state)
        } else if let (network, workspace) = batched {
            feedBatched(ids, network: network, workspace: workspace)
        }
        return Array(UnsafeBufferPointer(start: logitsBuffer.pointer, count: logitsBuffer.count))
    }

    private func feedBatched(_ ids: [Int32], network: Network, workspace: Workspace) {
        let steps = ids.count / batchSize
        let packed = network.packedForward()
        let B = batchSize
        var start = 0
        while start < steps {
            let n = min(chunkLength, steps - start)
            for t in 0..<n {
                for b in 0..<B { workspace.inputs[t * B + b] = ids[b * steps + start + t] }
            }
            workspace.loadState(state, rowStart: 0, steps: n)
            network.forwardLayers(workspace, packed, steps: n, dropout: nil)
            workspace.storeState(state, rowStart: 0, afterSteps: n)
            if start + n == steps {
                network.outputLogits(workspace, packed, firstStep: n - 1, steps: 1, dropout: false)
                logitsBuffer.pointer.update(from: workspace.logits[0], count: logitsBuffer.count)
            }
            start += n
        }
    }
}

/// Steps a changing set of streams one id at a time, each stream keeping its own state: the
/// rows of a serving batch, which streams join and leave between steps.
///
/// ```swift
/// let stepper = StreamStepper(network: net)
/// let a = RecurrentState(config: net.config, batchSize: 1), b = RecurrentState(config: net.config, batchSize: 1)
/// let logits = stepper.step([3, 7], states: [a, b])   // (2, vocabularySize); a and b advance
/// ```
///
/// A stream's logits do not depend on which other streams share its step: every row is
/// computed by the same products in the same order (tested), so a seeded sample is the same
/// alone or in a crowd. Weights are taken as they are when the stepper is made.
public final class StreamStepper: @unchecked Sendable {
    public let network: Network
    public let precision: WeightPrecision
    private let packed: PackedWeights
    private var workspaces: [Int: Workspace] = [:]

    /// Threads that share the columns of each product (the engine splits large batches by row
    /// instead, over several steppers).
    public var columnThreads = 1

    public init(network: Network, precision: WeightPrecision = .f32) {
        precondition(!network.config.bidirectional, "a bidirectional network cannot step one id at a time")
        BLAS.ensureReady()
        let rounded = network.rounded(to: precision)
        self.network = rounded
        self.precision = precision
        packed = rounded.packedForward()
    }

    /// Feeds `ids[i]` to the stream whose state is `states[i]` (each of batch size 1), advances
    /// the states, and returns the next-id logits, (ids.count, vocabularySize).
    public func step(_ ids: [Int32], states: [RecurrentState]) throws -> [Float] {
        precondition(ids.count == states.count, "one state per id")
        let config = network.config
        let V = config.vocabularySize, H = config.hiddenSize
        for id in ids where id < 0 || Int(id) >= V {
            throw NetworkError.invalidInput("id \(id) outside the vocabulary 0..<\(V)")
        }
        for state in states where !state.matches(config, batchSize: 1) {
            throw NetworkError.invalidInput("a state does not fit this network with one stream")
        }
        let n = ids.count
        guard n > 0 else { return [] }
        let w = workspace(rows: n)
        w.columnThreads = columnThreads
        w.inputs.replaceSubrange(0..<n, with: ids)
        for (l, L) in w.layers.enumerated() {
            for (r, state) in states.enumerated() {
                (L.h[0] + r * H).update(from: state.h(layer: l, row: 0, rows: 1), count: H)
                if let c = L.c, let stateC = state.c(layer: l, row: 0, rows: 1) {
                    (c[0] + r * H).update(from: stateC, count: H)
                }
            }
        }
        network.forwardLayers(w, packed, steps: 1, dropout: nil)
        for (l, L) in w.layers.enumerated() {
            for (r, state) in states.enumerated() {
                state.h(layer: l, row: 0, rows: 1).update(from: L.h[1] + r * H, count: H)
                if let c = L.c, let stateC = state.c(layer: l, row: 0, rows: 1) {
                    stateC.update(from: c[1] + r * H, count: H)
                }
            }
        }
        network.outputLogits(w, packed, firstStep: 0, steps: 1, dropout: false)
        return Array(UnsafeBufferPointer(start: w.logits[0], count: n * V))
    }

    /// A one-step workspace of `rows` rows, made the first time that many streams step together.
    private func workspace(rows: Int) -> Workspace {
        if let w = workspaces[rows] { return w }
        let w = Workspace(
            config: network.config, parameterCount: network.parameterCount, rows: rows, steps: 1, training: false)
        workspaces[rows] = w
        return w
    }
}
