import CKernels
import Foundation

/// Runs forward and backward passes of a `Network` over batches of `batchSize` streams and up
/// to `seqLength` steps, splitting the streams across threads.
///
/// Each thread owns a contiguous slice of the streams and runs the whole pass on it with
/// single-threaded products (small per-step products gain little from a second thread, whole
/// independent slices gain nearly 2x); the slices' weight gradients are summed at the end.
///
/// Ids are batch-major: element `b * steps + t` is step `t` of stream `b`.
public final class BatchRunner: @unchecked Sendable {
    public let network: Network
    public let batchSize: Int
    public let seqLength: Int
    public let threads: Int
    public let training: Bool
    /// Where these streams sit in a larger batch split across processes (data-parallel
    /// training): the first one's index, and the whole batch's size. A training pass then
    /// gives this part's share of the whole batch's mean gradient and loss (they sum to it),
    /// and draws the dropout masks of its global rows.
    public let globalRowOffset: Int
    public let globalBatchSize: Int
    /// For a labelling network: the outputs each input may become, over which the loss's
    /// softmax runs (nil: all of them).
    public let candidates: CandidateMask?
    private let shards: [Shard]

    struct Shard {
        let rowStart: Int
        let workspace: Workspace
    }

    /// Bytes of working memory a runner of this size allocates (activations, gradients, logits).
    public static func workingMemory(config: NetworkConfig, batchSize: Int, seqLength: Int, training: Bool) -> Double {
        let rows = Double(batchSize), steps = Double(seqLength)
        let h = Double(config.hiddenSize), g = Double(config.gateWidth), v = Double(config.vocabularySize)
        // Per layer: states and cell states (h, c, tanh c), gates, GRU's recurrent sum, dropout;
        // backward: dH, dGates, dGh. Then the logits and, for training, the gradient copies.
        var perLayer = 3 * (steps + 1) * rows * h + 2 * steps * rows * g + 2 * steps * rows * h
        if training { perLayer += steps * rows * h + 2 * steps * rows * g }
        var total = Double(config.layers * config.directions) * perLayer + steps * rows * v
        if let e = config.embeddingSize { total += (training ? 2 : 1) * steps * rows * Double(e) }
        if training {
            total += Double(ParameterLayout(config: config).count) + (config.embeddingSize == nil ? v * g : 0)
            // The weight-gradient scratch: a transposed gradient and a packed activation matrix.
            total += steps * rows * (max(v, g) + max(h, Double(config.embeddingSize ?? 0)))
        }
        return 4 * total
    }

    /// The number of threads used by default: every core.
    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// - Parameters:
    ///   - training: allocate what the backward pass needs.
    ///   - candidates: restricts the loss of each position to the outputs its input allows.
    public init(
        network: Network, batchSize: Int, seqLength: Int, threads: Int = BatchRunner.defaultThreads,
        training: Bool = true, globalRowOffset: Int = 0, globalBatchSize: Int? = nil, candidates: CandidateMask? = nil
    ) {
        precondition(batchSize >= 1 && seqLength >= 1, "batch size and sequence length must be positive")
        precondition(
            batchSize <= Int(Int32.max) / seqLength, "batch x sequence length must fit the kernels' 32-bit row counts")
        BLAS.ensureReady()
        self.network = network
        self.batchSize = batchSize
        self.seqLength = seqLength
        self.training = training
        self.globalRowOffset = globalRowOffset
        self.globalBatchSize = globalBatchSize ?? batchSize
        precondition(
            candidates.map { $0.vocabularySize == network.config.vocabularySize } ?? true,
            "the candidate mask is for another vocabulary size")
        self.candidates = candidates
        precondition(
            globalRowOffset >= 0 && globalRowOffset + batchSize <= self.globalBatchSize,
            "these streams must lie inside the global batch")
        let count = max(1, min(threads, batchSize))
        self.threads = count
        var shards: [Shard] = []
        var start = 0
        for i in 0..<count {
            let rows = batchSize / count + (i < batchSize % count ? 1 : 0)
            let workspace = Workspace(
                config: network.config, parameterCount: network.parameterCount,
                rows: rows, steps: seqLength, training: training)
            shards.append(Shard(rowStart: start, workspace: workspace))
            start += rows
        }
        self.shards = shards
    }

    /// One training pass: forward, mean cross-entropy, backward.
    ///
    /// - Parameters:
    ///   - inputs: ids, (batchSize, steps) batch-major.
    ///   - targets: the next ids, same shape.
    ///   - state: the initial state, replaced by the final one (gradients stop here).
    ///   - gradients: receives the gradient of the mean loss for every parameter (overwritten).
    ///   - dropoutKey: selects the dropout masks of this pass.
    ///   - initialStateGradient: if given, receives the gradient with respect to the initial state.
    /// - Returns: the mean loss in nats per character (over the global batch: this part's share
    ///   of it when the batch is split across processes).
    public func trainStep(
        inputs: [Int32], targets: [Int32], state: RecurrentState, gradients: FloatBuffer,
        dropoutKey: UInt64 = 0, initialStateGradient: RecurrentState? = nil
    ) throws -> Double {
        precondition(training, "BatchRunner was created with training: false")
        precondition(gradients.count == network.parameterCount, "gradient buffer size differs from the parameter count")
        let steps = try load(inputs: inputs, targets: targets, state: state)
        let packed = network.packed()
        let useDropout = network.config.dropout > 0
        let totalRows = Float(globalBatchSize * steps)
        let losses = UnsafeMutableBufferPointer<Double>.allocate(capacity: shards.count)
        defer { losses.deallocate() }
        forEachShard { i, shard in
            let w = shard.workspace
            let plan =
                useDropout
                ? DropoutPlan(key: dropoutKey, rowStart: globalRowOffset + shard.rowStart, totalRows: globalBatchSize)
                : nil
            w.gradients!.zero()
            network.forwardLayers(w, packed, steps: steps, dropout: plan)
            network.outputLogits(w, packed, firstStep: 0, steps: steps, dropout: useDropout)
            losses[i] = crossEntropy(w, steps: steps, gradientScale: 1 / totalRows)
            network.backwardLayers(w, packed, steps: steps, dropout: useDropout)
        }
        gradients.copy(from: shards[0].workspace.gradients!)
        for shard in shards.dropFirst() {
            ck_add(gradients.count, shard.workspace.gradients!.pointer, gradients.pointer)
        }
        storeFinalState(into: state, steps: steps)
        if let initialStateGradient { storeInitialStateGradient(into: initialStateGradient) }
        return losses.reduce(0, +) / Double(totalRows)
    }

    /// Forward pass without dropout: the summed cross-entropy (nats) of every target.
    /// `state` is replaced by the final state.
    public func evaluate(inputs: [Int32], targets: [Int32], state: RecurrentState) throws -> Double {
        let steps = try load(inputs: inputs, targets: targets, state: state)
        let packed = network.packedForward()
        let losses = UnsafeMutableBufferPointer<Double>.allocate(capacity: shards.count)
        defer { losses.deallocate() }
        forEachShard { i, shard in
            let w = shard.workspace
            network.forwardLayers(w, packed, steps: steps, dropout: nil)
            network.outputLogits(w, packed, firstStep: 0, steps: steps, dropout: false)
            losses[i] = crossEntropy(w, steps: steps, gradientScale: 0)
        }
        storeFinalState(into: state, steps: steps)
        return losses.reduce(0, +)
    }

    /// Forward pass without dropout, returning the logits: (batchSize, steps, vocabularySize),
    /// batch-major like the ids. `state` is replaced by the final state.
    public func logits(inputs: [Int32], state: RecurrentState) throws -> [Float] {
        let steps = try load(inputs: inputs, targets: inputs, state: state)
        let packed = network.packedForward()
        forEachShard { _, shard in
            network.forwardLayers(shard.workspace, packed, steps: steps, dropout: nil)
            network.outputLogits(shard.workspace, packed, firstStep: 0, steps: steps, dropout: false)
        }
        storeFinalState(into: state, steps: steps)
        let V = network.config.vocabularySize
        var out = [Float](repeating: 0, count: batchSize * steps * V)
        out.withUnsafeMutableBufferPointer { out in
            for shard in shards {
                let w = shard.workspace
                for t in 0..<steps {
                    for r in 0..<w.rows {
                        (out.baseAddress! + ((shard.rowStart + r) * steps + t) * V).update(
                            from: w.logits[t] + r * V, count: V)
                    }
                }
            }
        }
        return out
    }

    /// The summed cross-entropy of the shard's logits against its targets (over each input's
    /// candidates, when restricted); the logits are replaced by `gradientScale` times their gradient.
    private func crossEntropy(_ w: Workspace, steps: Int, gradientScale: Float) -> Double {
        let rows = Int32(steps * w.rows), V = Int32(network.config.vocabularySize)
        let logits = w.logits.from(0, count: steps)
        return w.targets.withUnsafeBufferPointer { t in
            guard let candidates else {
                return ck_softmax_xent(rows, V, logits, t.baseAddress!, gradientScale)
            }
            return w.inputs.withUnsafeBufferPointer { inputs in
                candidates.allowed.withUnsafeBufferPointer { allowed in
                    ck_softmax_xent_masked(
                        rows, V, logits, t.baseAddress!, inputs.baseAddress!, allowed.baseAddress!, gradientScale)
                }
            }
        }
    }

    // MARK: - Shards

    private func forEachShard(_ body: (Int, Shard) -> Void) {
        parallelFor(shards.count) { i in body(i, shards[i]) }
    }

    /// Copies ids (transposed to time-major) and the initial state into every shard.
    /// - Returns: the number of steps in this batch.
    private func load(inputs: [Int32], targets: [Int32], state: RecurrentState) throws -> Int {
        let config = network.config
        guard inputs.count == targets.count, inputs.count % batchSize == 0 else {
            throw NetworkError.invalidInput(
                "expected \(batchSize) streams of equal length, got \(inputs.count) inputs and \(targets.count) targets"
            )
        }
        let steps = inputs.count / batchSize
        guard steps >= 1, steps <= seqLength else {
            throw NetworkError.invalidInput("expected 1...\(seqLength) steps per stream, got \(steps)")
        }
        guard state.matches(config, batchSize: batchSize) else {
            throw NetworkError.shapeMismatch(
                "state is (\(state.layers), \(state.batchSize), \(state.hiddenSize)), network needs "
                    + "(\(config.layers * config.directions), \(batchSize), \(config.hiddenSize))"
            )
        }
        let vocab = Int32(config.vocabularySize)
        for id in inputs where id < 0 || id >= vocab {
            throw NetworkError.invalidInput("id \(id) outside the vocabulary 0..<\(vocab)")
        }
        for id in targets where id < 0 || id >= vocab {
            throw NetworkError.invalidInput("target id \(id) outside the vocabulary 0..<\(vocab)")
        }
        if let candidates {
            for (input, target) in zip(inputs, targets) where !candidates.allows(target, for: input) {
                throw NetworkError.invalidInput("target id \(target) is not a candidate of input id \(input)")
            }
        }
        for shard in shards {
            let w = shard.workspace
            for t in 0..<steps {
                for r in 0..<w.rows {
                    w.inputs[t * w.rows + r] = inputs[(shard.rowStart + r) * steps + t]
                    w.targets[t * w.rows + r] = targets[(shard.rowStart + r) * steps + t]
                }
            }
            w.loadState(state, rowStart: shard.rowStart, steps: steps)
        }
        return steps
    }

    private func storeFinalState(into state: RecurrentState, steps: Int) {
        for shard in shards { shard.workspace.storeState(state, rowStart: shard.rowStart, afterSteps: steps) }
    }

    private func storeInitialStateGradient(into gradient: RecurrentState) {
        for shard in shards { shard.workspace.storeInitialStateGradient(gradient, rowStart: shard.rowStart) }
    }
}
