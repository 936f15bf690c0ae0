import CKernels

/// Dropout draws for one pass: masks depend only on (key, layer, step, global row), so the
/// result does not depend on how the batch is split across threads.
struct DropoutPlan {
    let key: UInt64
    let rowStart: Int
    let totalRows: Int

    func layerKey(_ layer: Int) -> UInt64 {
        var x = key ^ (UInt64(layer) &* 0x9E37_79B9_7F4A_7C15)
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// Index of the first mask element of step `t` of this shard, within the whole pass.
    func offset(step t: Int, width: Int) -> UInt64 {
        UInt64(t * totalRows + rowStart) &* UInt64(width)
    }
}

/// Which way a unit runs through time, and so where its states sit in its `h` (and `c`) slots:
/// a forward unit reads slot t and writes slot t + 1 at step t; a reverse unit (a
/// bidirectional layer's second direction) starts from the end, reading slot t + 1 and writing
/// slot t. Either way the outputs of steps 0 ..< steps are one contiguous (steps x rows, H)
/// block in time order, which the layer above and the output layer read as they are.
struct Direction {
    let reverse: Bool

    /// The step that the recurrence runs `i`-th.
    @inline(__always) func step(_ i: Int, of steps: Int) -> Int { reverse ? steps - 1 - i : i }
    /// Slot of the state that step t reads.
    @inline(__always) func previous(_ t: Int) -> Int { reverse ? t + 1 : t }
    /// Slot of the state that step t writes: its output.
    @inline(__always) func output(_ t: Int) -> Int { reverse ? t : t + 1 }
    /// Slots of the initial and the final state of a pass of `steps` steps.
    func initial(steps: Int) -> Int { reverse ? steps : 0 }
    func final(steps: Int) -> Int { reverse ? 0 : steps }
}

extension Network {
    /// Unit `layer * directions + direction`: one direction of one layer.
    @inline(__always) func unit(_ layer: Int, _ direction: Int) -> Int { layer * config.directions + direction }

    /// Output of `unit` for steps t ..< t + count, (count * rows, H): the dropped copy when dropout ran.
    func layerOutput(_ w: Workspace, _ unit: Int, dropout: Bool, from t: Int = 0, count: Int) -> UnsafeMutablePointer<
        Float
    > {
        let L = w.layers[unit]
        if dropout, let dropped = L.dropped { return dropped.from(t, count: count) }
        return L.h.from(w.direction(unit).output(t), count: count)
    }

    /// Runs every layer over `steps` time steps of `w.inputs`, starting from the initial states
    /// (`Workspace.loadState`).
    func forwardLayers(_ w: Workspace, _ pk: PackedWeights, steps: Int, dropout: DropoutPlan?) {
        let H = config.hiddenSize, G = config.gateWidth, B = w.rows, D = config.directions
        let n = steps * B
        let embedded = config.embeddingSize.map { (x: embed(w, pk, steps: steps), width: $0) }
        for l in 0..<config.layers {
            for d in 0..<D {
                let u = unit(l, d), L = w.layers[u], direction = w.direction(u)
                // Input projection of the whole chunk at once: gates = x W_ih^T + bias, (n, G).
                let gates = L.gates.from(0, count: steps)
                if l == 0, embedded == nil {
                    // x is one-hot: row i of W_ih^T (+ bias) for id i.
                    w.inputs.withUnsafeBufferPointer { ids in
                        ck_gather_rows(
                            Int32(n), ids.baseAddress!, pk.inputTables[d].pointer, Int32(G), pk.inputBias[u].pointer,
                            gates)
                    }
                } else {
                    Kernels.fillRows(rows: n, cols: G, row: pk.inputBias[u].pointer, out: gates)
                    if l == 0, let embedded {
                        product(
                            w, m: n, n: G, k: embedded.width, a: embedded.x, lda: embedded.width,
                            packed: pk.ihForward[u][0], c: gates, ldc: G)
                    } else {
                        // One block of W_ih's columns per direction of the layer below.
                        for e in 0..<D {
                            let x = layerOutput(w, unit(l - 1, e), dropout: dropout != nil, count: steps)
                            product(w, m: n, n: G, k: H, a: x, lda: H, packed: pk.ihForward[u][e], c: gates, ldc: G)
                        }
                    }
                }
                // The recurrence, one step at a time: gates[t] += h_previous W_hh^T, then the cell.
                let h = L.h, whh = pk.hhForward[u]
                switch config.cell {
                case .lstm:
                    let c = L.c!, tanhC = L.tanhC!
                    for i in 0..<steps {
                        let t = direction.step(i, of: steps)
                        let previous = direction.previous(t), output = direction.output(t)
                        product(w, m: B, n: G, k: H, a: h[previous], lda: H, packed: whh, c: L.gates[t], ldc: G)
                        ck_lstm_forward(Int32(B), Int32(H), L.gates[t], c[previous], c[output], tanhC[t], h[output])
                    }
                case .gru:
                    // GRU keeps W_hh h + b_hh apart: the reset gate multiplies it.
                    let gh = L.gh!, bhh = parameters.at(layout.biasHH[u], count: G)
                    for i in 0..<steps {
                        let t = direction.step(i, of: steps)
                        let previous = direction.previous(t), output = direction.output(t)
                        Kernels.fillRows(rows: B, cols: G, row: bhh, out: gh[t])
                        product(w, m: B, n: G, k: H, a: h[previous], lda: H, packed: whh, c: gh[t], ldc: G)
                        ck_gru_forward(Int32(B), Int32(H), L.gates[t], gh[t], h[previous], h[output])
                    }
                case .rnn:
                    for i in 0..<steps {
                        let t = direction.step(i, of: steps)
                        product(
                            w, m: B, n: G, k: H, a: h[direction.previous(t)], lda: H, packed: whh, c: L.gates[t], ldc: G
                        )
                        ck_tanh(B * H, L.gates[t], h[direction.output(t)])
                    }
                }
                if let dropout, let mask = L.mask, let dropped = L.dropped {
                    let key = dropout.layerKey(u)
                    for t in 0..<steps {
                        ck_dropout_mask(B * H, key, dropout.offset(step: t, width: H), config.dropout, mask[t])
                    }
                    Kernels.mul(
                        n * H, h.from(direction.output(0), count: steps), mask.from(0, count: steps),
                        dropped.from(0, count: steps))
                }
            }
        }
    }

    /// c += a · packed: on one thread, or with the columns split over `w.columnThreads` threads
    /// (bit-identical; for one or a few streams, where the batch is too small to split by row).
    @inline(__always)
    func product(
        _ w: Workspace, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, packed: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if w.columnThreads > 1 && n * k >= Workspace.minimumSplitProduct {
            Kernels.gemmPackedSplit(
                threads: w.columnThreads, m: m, n: n, k: k, a: a, lda: lda, packed: packed, c: c, ldc: ldc,
                accumulate: true)
        } else {
            Kernels.gemmPacked(m: m, n: n, k: k, a: a, lda: lda, packed: packed, c: c, ldc: ldc, accumulate: true)
        }
    }

    /// The embedding rows of `w.inputs`, (steps * rows, E), into `w.embedded`.
    func embed(_ w: Workspace, _ pk: PackedWeights, steps: Int) -> UnsafeMutablePointer<Float> {
        let E = config.embeddingSize!, V = config.vocabularySize
        let x = w.embedded!.from(0, count: steps)
        w.inputs.withUnsafeBufferPointer { ids in
            ck_gather_rows(
                Int32(steps * w.rows), ids.baseAddress!, parameters.at(layout.embedding!, count: V * E), Int32(E),
                pk.zeros.pointer, x)
        }
        return x
    }

    /// Logits (steps * rows, V) of the top layer's output for `steps` steps starting at `firstStep`,
    /// into the first `steps` steps of `w.logits`.
    func outputLogits(_ w: Workspace, _ pk: PackedWeights, firstStep: Int, steps: Int, dropout: Bool) {
        let H = config.hiddenSize, V = config.vocabularySize, B = w.rows
        let logits = w.logits.from(0, count: steps)
        Kernels.fillRows(rows: steps * B, cols: V, row: parameters.at(layout.outBias, count: V), out: logits)
        for d in 0..<config.directions {
            let top = layerOutput(w, unit(config.layers - 1, d), dropout: dropout, from: firstStep, count: steps)
            product(w, m: steps * B, n: V, k: H, a: top, lda: H, packed: pk.outForward[d], c: logits, ldc: V)
        }
    }
}
