import CKernels

extension Network {
    /// Back-propagates from the logits' gradient (in `w.logits`) through the output layer and
    /// every recurrent layer, adding every parameter's gradient into `w.gradients` and leaving
    /// the initial state's gradient in each layer's `dh0` (and `dc`, for LSTM).
    func backwardLayers(_ w: Workspace, _ pk: PackedWeights, steps: Int, dropout: Bool) {
        let H = config.hiddenSize, G = config.gateWidth, V = config.vocabularySize, B = w.rows
        let n = steps * B
        let grads = w.gradients!
        let dlogits = w.logits.from(0, count: steps)  // (n, V)
        let top = layerOutput(w, config.layers - 1, dropout: dropout, count: steps)  // (n, H)
        let last = w.layers[config.layers - 1]

        // Output layer: dW_out += dlogits^T y, db_out += Σ dlogits, dy = dlogits W_out.
        let scratch = w.gradientScratch!
        Kernels.weightGradient(
            m: V, n: H, k: n, a: dlogits, lda: V, b: top, ldb: H, c: grads.at(layout.outWeight, count: V * H), ldc: H,
            scratch: scratch)
        Kernels.colsumAdd(rows: n, cols: V, x: dlogits, out: grads.at(layout.outBias, count: V))
        Kernels.gemmPacked(
            m: n, n: H, k: V, a: dlogits, lda: V, packed: pk.outBackward!, c: last.dH!.from(0, count: steps), ldc: H,
            accumulate: false)
        if dropout, let mask = last.mask {
            Kernels.mul(
                n * H, last.dH!.from(0, count: steps), mask.from(0, count: steps), last.dH!.from(0, count: steps))
        }

        for l in stride(from: config.layers - 1, through: 0, by: -1) {
            let L = w.layers[l]
            let h = L.h, dH = L.dH!, dGates = L.dGates!, dh0 = L.dh0!.pointer, whh = pk.hhBackward[l]
            // Back through time: each step's gate gradient, and through W_hh the gradient of the
            // state it came from, added to dH[t - 1] (the initial state's at t = 0).
            switch config.cell {
            case .lstm:
                let c = L.c!, tanhC = L.tanhC!, dc = L.dc!
                dc.zero()
                for t in stride(from: steps - 1, through: 0, by: -1) {
                    ck_lstm_backward(Int32(B), Int32(H), L.gates[t], c[t], tanhC[t], dH[t], dc.pointer, dGates[t])
                    let dhPrevious = t > 0 ? dH[t - 1] : dh0
                    Kernels.gemmPacked(
                        m: B, n: H, k: G, a: dGates[t], lda: G, packed: whh, c: dhPrevious, ldc: H, accumulate: t > 0)
                }
            case .gru:
                let gh = L.gh!, dGh = L.dGh!
                L.dh0!.zero()
                for t in stride(from: steps - 1, through: 0, by: -1) {
                    let dhPrevious = t > 0 ? dH[t - 1] : dh0
                    ck_gru_backward(Int32(B), Int32(H), L.gates[t], gh[t], h[t], dH[t], dGates[t], dGh[t], dhPrevious)
                    Kernels.gemmPacked(
                        m: B, n: H, k: G, a: dGh[t], lda: G, packed: whh, c: dhPrevious, ldc: H, accumulate: true)
                }
            case .rnn:
                for t in stride(from: steps - 1, through: 0, by: -1) {
                    ck_tanh_backward(B * H, h[t + 1], dH[t], dGates[t])
                    let dhPrevious = t > 0 ? dH[t - 1] : dh0
                    Kernels.gemmPacked(
                        m: B, n: H, k: G, a: dGates[t], lda: G, packed: whh, c: dhPrevious, ldc: H, accumulate: t > 0)
                }
            }

            // Weight gradients over the whole chunk as large products: dW_hh += dR^T h[0 ..< steps],
            // where dR is the gradient of the recurrent sum (GRU keeps it apart).
            let allGates = dGates.from(0, count: steps)  // (n, G)
            let dRecurrent = config.cell == .gru ? L.dGh!.from(0, count: steps) : allGates  // (n, G)
            Kernels.weightGradient(
                m: G, n: H, k: n, a: dRecurrent, lda: G, b: h.from(0, count: steps), ldb: H,
                c: grads.at(layout.weightHH[l], count: G * H), ldc: H, scratch: scratch)
            Kernels.colsumAdd(rows: n, cols: G, x: allGates, out: grads.at(layout.biasIH[l], count: G))
            Kernels.colsumAdd(rows: n, cols: G, x: dRecurrent, out: grads.at(layout.biasHH[l], count: G))
            if l > 0 {
                // dW_ih += dGates^T x, and dx = dGates W_ih, the gradient of the layer below.
                let x = layerOutput(w, l - 1, dropout: dropout, count: steps)
                Kernels.weightGradient(
                    m: G, n: H, k: n, a: allGates, lda: G, b: x, ldb: H, c: grads.at(layout.weightIH[l], count: G * H),
                    ldc: H, scratch: scratch)
                let below = w.layers[l - 1], dx = below.dH!.from(0, count: steps)
                Kernels.gemmPacked(
                    m: n, n: H, k: G, a: allGates, lda: G, packed: pk.ihBackward[l]!, c: dx, ldc: H, accumulate: false)
                if dropout, let mask = below.mask { Kernels.mul(n * H, dx, mask.from(0, count: steps), dx) }
            } else if let E = config.embeddingSize {
                // Embedded input: dW_ih += dGates^T x, dx = dGates W_ih, scattered into the embedding's rows by id.
                let x = w.embedded!.from(0, count: steps), dx = w.dEmbedded!.from(0, count: steps)
                Kernels.weightGradient(
                    m: G, n: E, k: n, a: allGates, lda: G, b: x, ldb: E, c: grads.at(layout.weightIH[0], count: G * E),
                    ldc: E, scratch: scratch)
                Kernels.gemmPacked(
                    m: n, n: E, k: G, a: allGates, lda: G, packed: pk.ihBackward[0]!, c: dx, ldc: E, accumulate: false)
                w.inputs.withUnsafeBufferPointer { ids in
                    ck_scatter_add_rows(
                        Int32(n), ids.baseAddress!, dx, Int32(E), grads.at(layout.embedding!, count: V * E))
                }
            } else {
                // One-hot input: the gradient of W_ih^T is a scatter of dGates rows by id.
                let embedding = w.embeddingGradient!
                embedding.zero()
                w.inputs.withUnsafeBufferPointer { ids in
                    ck_scatter_add_rows(Int32(n), ids.baseAddress!, allGates, Int32(G), embedding.pointer)
                }
                ck_transpose_add(Int32(V), Int32(G), embedding.pointer, grads.at(layout.weightIH[0], count: G * V))
            }
        }
    }
}
