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

extension Network {
    /// Output of `layer` for steps 0 ..< count, (count * rows, H): the dropped copy when dropout ran.
    func layerOutput(_ w: Workspace, _ layer: Int, dropout: Bool, from t: Int = 0, count: Int) -> UnsafeMutablePointer<
        Float
    > {
        let L = w.layers[layer]
        if dropout, let dropped = L.dropped { return dropped.from(t, count: count) }
        return L.h.from(t + 1, count: count)
    }

    /// Runs every layer over `steps` time steps of `w.inputs`, starting from the states in slot 0.
    func forwardLayers(_ w: Workspace, _ pk: PackedWeights, steps: Int, dropout: DropoutPlan?) {
        let H = config.hiddenSize, G = config.gateWidth, B = w.rows
        let n = steps * B
        for l in 0..<config.layers {
            let L = w.layers[l]
            // Input projection of the whole chunk at once: gates = x W_ih^T + bias, (n, G).
            let gates = L.gates.from(0, count: steps)
            if l == 0, let table = pk.inputTable {
                // x is one-hot: row i of W_ih^T (+ bias) for id i.
                w.inputs.withUnsafeBufferPointer { ids in
                    ck_gather_rows(Int32(n), ids.baseAddress!, table.pointer, Int32(G), pk.inputBias[0].pointer, gates)
                }
            } else {
                let x =
                    l == 0 ? embed(w, pk, steps: steps) : layerOutput(w, l - 1, dropout: dropout != nil, count: steps)
                let inputs = config.inputSize(layer: l)
                Kernels.fillRows(rows: n, cols: G, row: pk.inputBias[l].pointer, out: gates)
                product(
                    w, m: n, n: G, k: inputs, a: x, lda: inputs, packed: pk.ihForward[l]!, c: gates, ldc: G)
            }
            // The recurrence, one step at a time: gates[t] += h[t] W_hh^T, then the cell.
            let h = L.h, whh = pk.hhForward[l]
            switch config.cell {
            case .lstm:
                let c = L.c!, tanhC = L.tanhC!
                for t in 0..<steps {
                    product(w, m: B, n: G, k: H, a: h[t], lda: H, packed: whh, c: L.gates[t], ldc: G)
                    ck_lstm_forward(Int32(B), Int32(H), L.gates[t], c[t], c[t + 1], tanhC[t], h[t + 1])
                }
            case .gru:
                // GRU keeps W_hh h + b_hh apart: the reset gate multiplies it.
                let gh = L.gh!, bhh = parameters.at(layout.biasHH[l], count: G)
                for t in 0..<steps {
                    Kernels.fillRows(rows: B, cols: G, row: bhh, out: gh[t])
                    product(w, m: B, n: G, k: H, a: h[t], lda: H, packed: whh, c: gh[t], ldc: G)
                    ck_gru_forward(Int32(B), Int32(H), L.gates[t], gh[t], h[t], h[t + 1])
                }
            case .rnn:
                for t in 0..<steps {
                    product(w, m: B, n: G, k: H, a: h[t], lda: H, packed: whh, c: L.gates[t], ldc: G)
                    ck_tanh(B * H, L.gates[t], h[t + 1])
                }
            }
            if let dropout, let mask = L.mask, let dropped = L.dropped {
                let key = dropout.layerKey(l)
                for t in 0..<steps {
                    ck_dropout_mask(B * H, key, dropout.offset(step: t, width: H), config.dropout, mask[t])
                }
                Kernels.mul(n * H, h.from(1, count: steps), mask.from(0, count: steps), dropped.from(0, count: steps))
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
        let top = layerOutput(w, config.layers - 1, dropout: dropout, from: firstStep, count: steps)
        let logits = w.logits.from(0, count: steps)
        Kernels.fillRows(rows: steps * B, cols: V, row: parameters.at(layout.outBias, count: V), out: logits)
        product(w, m: steps * B, n: V, k: H, a: top, lda: H, packed: pk.outForward, c: logits, ldc: V)
    }
}
