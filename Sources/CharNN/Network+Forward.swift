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
    /// Output of `layer` for all steps (steps, rows, H): the dropped copy when dropout ran.
    func layerOutput(_ w: Workspace, _ layer: Int, dropout: Bool) -> UnsafeMutablePointer<Float> {
        let buffers = w.layers[layer]
        if dropout, let dropped = buffers.dropped { return dropped.pointer }
        return buffers.hs.pointer + w.rows * config.hiddenSize
    }

    /// Runs every layer over `steps` time steps of `w.inputs`, starting from the states in slot 0.
    func forwardLayers(_ w: Workspace, _ pk: PackedWeights, steps: Int, dropout: DropoutPlan?) {
        let H = config.hiddenSize, G = config.gateWidth, B = w.rows
        let n = steps * B
        for l in 0..<config.layers {
            let L = w.layers[l]
            let gates = L.gates.pointer
            if l == 0 {
                w.inputs.withUnsafeBufferPointer { ids in
                    ck_gather_rows(Int32(n), ids.baseAddress!, pk.embedding.pointer, Int32(G), pk.inputBias[0].pointer, gates)
                }
            } else {
                let x = layerOutput(w, l - 1, dropout: dropout != nil)
                Kernels.fillRows(rows: n, cols: G, row: pk.inputBias[l].pointer, out: gates)
                Kernels.gemmPacked(m: n, n: G, k: H, a: x, lda: H, packed: pk.ihForward[l]!, c: gates, ldc: G, accumulate: true)
            }
            let hs = L.hs.pointer, whh = pk.hhForward[l]
            switch config.cell {
            case .lstm:
                let cs = L.cs!.pointer, tc = L.tanhC!.pointer
                for t in 0..<steps {
                    let g = gates + t * B * G
                    Kernels.gemmPacked(m: B, n: G, k: H, a: hs + t * B * H, lda: H, packed: whh, c: g, ldc: G, accumulate: true)
                    ck_lstm_forward(Int32(B), Int32(H), g, cs + t * B * H, cs + (t + 1) * B * H, tc + t * B * H, hs + (t + 1) * B * H)
                }
            case .gru:
                let gh = L.gh!.pointer, bhh = parameters.pointer + layout.biasHH[l]
                for t in 0..<steps {
                    let ght = gh + t * B * G
                    Kernels.fillRows(rows: B, cols: G, row: bhh, out: ght)
                    Kernels.gemmPacked(m: B, n: G, k: H, a: hs + t * B * H, lda: H, packed: whh, c: ght, ldc: G, accumulate: true)
                    ck_gru_forward(Int32(B), Int32(H), gates + t * B * G, ght, hs + t * B * H, hs + (t + 1) * B * H)
                }
            case .rnn:
                for t in 0..<steps {
                    let g = gates + t * B * G
                    Kernels.gemmPacked(m: B, n: G, k: H, a: hs + t * B * H, lda: H, packed: whh, c: g, ldc: G, accumulate: true)
                    ck_tanh(B * H, g, hs + (t + 1) * B * H)
                }
            }
            if let dropout, let mask = L.mask?.pointer, let dropped = L.dropped?.pointer {
                let key = dropout.layerKey(l)
                for t in 0..<steps {
                    ck_dropout_mask(B * H, key, dropout.offset(step: t, width: H), config.dropout, mask + t * B * H)
                }
                Kernels.mul(n * H, hs + B * H, mask, dropped)
            }
        }
    }

    /// Logits (rows, V) of the top layer's output for `steps` steps starting at `firstStep`.
    func outputLogits(_ w: Workspace, _ pk: PackedWeights, firstStep: Int, steps: Int, dropout: Bool) {
        let H = config.hiddenSize, V = config.vocabularySize, B = w.rows
        let top = layerOutput(w, config.layers - 1, dropout: dropout) + firstStep * B * H
        let logits = w.logits.pointer
        Kernels.fillRows(rows: steps * B, cols: V, row: parameters.pointer + layout.outBias, out: logits)
        Kernels.gemmPacked(m: steps * B, n: V, k: H, a: top, lda: H, packed: pk.outForward, c: logits, ldc: V, accumulate: true)
    }
}
