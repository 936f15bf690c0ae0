/// Runs a `Network` forward for generation: a batch of streams fed a few ids at a time,
/// keeping their state, returning the next-id logits of the last step fed.
///
/// ```swift
/// let session = InferenceSession(network: net, batchSize: 1)
/// let logits = try session.feed([3, 7, 1])   // prime with a prompt
/// let next = try session.feed([sampledID])    // then one id per step
/// ```
public final class InferenceSession: @unchecked Sendable {
    public let network: Network
    public let batchSize: Int
    /// The streams' current state.
    public let state: RecurrentState
    private let workspace: Workspace
    private let chunkLength: Int

    /// - Parameter chunkLength: steps per forward pass when a long prompt is fed.
    public init(network: Network, batchSize: Int = 1, chunkLength: Int = 64) {
        precondition(batchSize >= 1 && chunkLength >= 1, "batch size and chunk length must be positive")
        BLAS.ensureReady()
        self.network = network
        self.batchSize = batchSize
        self.chunkLength = chunkLength
        state = RecurrentState(config: network.config, batchSize: batchSize)
        workspace = Workspace(
            config: network.config, parameterCount: network.parameterCount, rows: batchSize, steps: chunkLength,
            training: false)
    }

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
        let vocab = Int32(network.config.vocabularySize)
        for id in ids where id < 0 || id >= vocab {
            throw NetworkError.invalidInput("id \(id) outside the vocabulary 0..<\(vocab)")
        }
        let steps = ids.count / batchSize
        let packed = network.packedForward()
        let B = batchSize
        var start = 0
        while start < steps {
            let n = min(chunkLength, steps - start)
            for t in 0..<n {
                for b in 0..<B { workspace.inputs[t * B + b] = ids[b * steps + start + t] }
            }
            workspace.loadState(state, rowStart: 0)
            network.forwardLayers(workspace, packed, steps: n, dropout: nil)
            workspace.storeState(state, rowStart: 0, afterSteps: n)
            if start + n == steps {
                network.outputLogits(workspace, packed, firstStep: n - 1, steps: 1, dropout: false)
            }
            start += n
        }
        return Array(UnsafeBufferPointer(start: workspace.logits[0], count: B * network.config.vocabularySize))
    }
}
