import CKernels

extension Network {
    /// Back-propagates from the logits' gradient (in `w.logits`) through the output layer and
    /// every recurrent layer, adding every parameter's gradient into `w.gradients` and leaving
    /// the initial state's gradient in each layer's `dh0` (and `dc`, for LSTM).
    func backwardLayers(_ w: Workspace, _ pk: PackedWeights, steps: Int, dropout: Bool) {
        let H = config.hiddenSize, G = config.gateWidth, V = config.vocabularySize, B = w.rows
        let n = steps * B
        let grads = w.gradients!.pointer
        let dlogits = w.logits.pointer
        let top = layerOutput(w, config.layers - 1, dropout: dropout)
        let last = w.layers[config.layers - 1]

        // Output layer: dW_out += dlogits^T * y, db_out += sum(dlogits), dy = dlogits * W_out.
        BLAS.gemm(transA: true, transB: false, m: V, n: H, k: n, a: dlogits, lda: V, b: top, ldb: H,
                  beta: 1, c: grads + layout.outWeight, ldc: H)
        Kernels.colsumAdd(rows: n, cols: V, x: dlogits, out: grads + layout.outBias)
        Kernels.gemmPacked(m: n, n: H, k: V, a: dlogits, lda: V, packed: pk.outBackward!, c: last.dH!.pointer, ldc: H, accumulate: false)
        if dropout, let mask = last.mask { Kernels.mul(n * H, last.dH!.pointer, mask.pointer, last.dH!.pointer) }

        for l in stride(from: config.layers - 1, through: 0, by: -1) {
            let L = w.layers[l]
            let hs = L.hs.pointer, dH = L.dH!.pointer, dGates = L.dGates!.pointer, dh0 = L.dh0!.pointer
            let gates = L.gates.pointer, whh = pk.hhBackward[l]
            switch config.cell {
            case .lstm:
                let cs = L.cs!.pointer, tc = L.tanhC!.pointer, dc = L.dc!
                dc.zero()
                for t in stride(from: steps - 1, through: 0, by: -1) {
                    let dg = dGates + t * B * G
                    ck_lstm_backward(Int32(B), Int32(H), gates + t * B * G, cs + t * B * H, tc + t * B * H, dH + t * B * H, dc.pointer, dg)
                    let target = t > 0 ? dH + (t - 1) * B * H : dh0
                    Kernels.gemmPacked(m: B, n: H, k: G, a: dg, lda: G, packed: whh, c: target, ldc: H, accumulate: t > 0)
                }
            case .gru:
                let gh = L.gh!.pointer, dGh = L.dGh!.pointer
                L.dh0!.zero()
                for t in stride(from: steps - 1, through: 0, by: -1) {
                    let target = t > 0 ? dH + (t - 1) * B * H : dh0
                    ck_gru_backward(Int32(B), Int32(H), gates + t * B * G, gh + t * B * G, hs + t * B * H, dH + t * B * H,
                                    dGates + t * B * G, dGh + t * B * G, target)
                    Kernels.gemmPacked(m: B, n: H, k: G, a: dGh + t * B * G, lda: G, packed: whh, c: target, ldc: H, accumulate: true)
                }
            case .rnn:
                for t in stride(from: steps - 1, through: 0, by: -1) {
                    let dg = dGates + t * B * G
                    ck_tanh_backward(B * H, hs + (t + 1) * B * H, dH + t * B * H, dg)
                    let target = t > 0 ? dH + (t - 1) * B * H : dh0
                    Kernels.gemmPacked(m: B, n: H, k: G, a: dg, lda: G, packed: whh, c: target, ldc: H, accumulate: t > 0)
                }
            }

            // Weight gradients over the whole chunk as large products.
            let dRecurrent = config.cell == .gru ? L.dGh!.pointer : dGates
            BLAS.gemm(transA: true, transB: false, m: G, n: H, k: n, a: dRecurrent, lda: G, b: hs, ldb: H,
                      beta: 1, c: grads + layout.weightHH[l], ldc: H)
            Kernels.colsumAdd(rows: n, cols: G, x: dGates, out: grads + layout.biasIH[l])
            Kernels.colsumAdd(rows: n, cols: G, x: dRecurrent, out: grads + layout.biasHH[l])
            if l > 0 {
                let x = layerOutput(w, l - 1, dropout: dropout)
                BLAS.gemm(transA: true, transB: false, m: G, n: H, k: n, a: dGates, lda: G, b: x, ldb: H,
                          beta: 1, c: grads + layout.weightIH[l], ldc: H)
                let below = w.layers[l - 1]
                Kernels.gemmPacked(m: n, n: H, k: G, a: dGates, lda: G, packed: pk.ihBackward[l]!, c: below.dH!.pointer, ldc: H, accumulate: false)
                if dropout, let mask = below.mask { Kernels.mul(n * H, below.dH!.pointer, mask.pointer, below.dH!.pointer) }
            } else {
                let embedding = w.embeddingGradient!
                embedding.zero()
                w.inputs.withUnsafeBufferPointer { ids in
                    ck_scatter_add_rows(Int32(n), ids.baseAddress!, dGates, Int32(G), embedding.pointer)
                }
                ck_transpose_add(Int32(V), Int32(G), embedding.pointer, grads + layout.weightIH[0])
            }
        }
    }
}
