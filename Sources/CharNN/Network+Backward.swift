import CKernels

extension Network {
    /// Back-propagates from the logits' gradient (in `w.logits`) through the output layer and
    /// every recurrent layer, adding every parameter's gradient into `w.gradients` and leaving
    /// the initial state's gradient in each unit's `dh0` (and `dc`, for LSTM).
    func backwardLayers(_ w: Workspace, _ pk: PackedWeights, steps: Int, dropout: Bool) {
        let H = config.hiddenSize, G = config.gateWidth, V = config.vocabularySize, B = w.rows
        let D = config.directions, width = config.outputWidth
        let n = steps * B
        let grads = w.gradients!
        let scratch = w.gradientScratch!
        let dlogits = w.logits.from(0, count: steps)  // (n, V)

        // Output layer, per direction d of the top layer (columns d*H ..< (d+1)*H of W_out):
        // dW_out += dlogits^T y_d, dy_d = dlogits W_out; and db_out += Σ dlogits.
        for d in 0..<D {
            let u = unit(config.layers - 1, d), top = w.layers[u]
            Kernels.weightGradient(
                m: V, n: H, k: n, a: dlogits, lda: V, b: layerOutput(w, u, dropout: dropout, count: steps), ldb: H,
                c: grads.at(layout.outWeight + d * H, count: V * width - d * H), ldc: width, scratch: scratch)
            let dy = top.dH!.from(0, count: steps)
            Kernels.gemmPacked(
                m: n, n: H, k: V, a: dlogits, lda: V, packed: pk.outBackward[d], c: dy, ldc: H, accumulate: false)
            if dropout, let mask = top.mask { Kernels.mul(n * H, dy, mask.from(0, count: steps), dy) }
        }
        Kernels.colsumAdd(rows: n, cols: V, x: dlogits, out: grads.at(layout.outBias, count: V))

        for l in stride(from: config.layers - 1, through: 0, by: -1) {
            for d in 0..<D {
                let u = unit(l, d)
                backThroughTime(w, pk, unit: u, steps: steps)
                weightGradients(w, unit: u, layer: l, steps: steps, dropout: dropout)
            }
            // The gradient of the layer's input: dx = Σ over directions of dGates W_ih.
            let allGates = (0..<D).map { w.layers[unit(l, $0)].dGates!.from(0, count: steps) }
            if l > 0 {
                for e in 0..<D {
                    let below = w.layers[unit(l - 1, e)], dx = below.dH!.from(0, count: steps)
                    for d in 0..<D {
                        Kernels.gemmPacked(
                            m: n, n: H, k: G, a: allGates[d], lda: G, packed: pk.ihBackward[unit(l, d)][e], c: dx,
                            ldc: H, accumulate: d > 0)
                    }
                    if dropout, let mask = below.mask { Kernels.mul(n * H, dx, mask.from(0, count: steps), dx) }
                }
            } else if let E = config.embeddingSize {
                // Embedded input: dx scattered into the embedding's rows by id.
                let dx = w.dEmbedded!.from(0, count: steps)
                for d in 0..<D {
                    Kernels.gemmPacked(
                        m: n, n: E, k: G, a: allGates[d], lda: G, packed: pk.ihBackward[unit(0, d)][0], c: dx, ldc: E,
                        accumulate: d > 0)
                }
                w.inputs.withUnsafeBufferPointer { ids in
                    ck_scatter_add_rows(
                        Int32(n), ids.baseAddress!, dx, Int32(E), grads.at(layout.embedding!, count: V * E))
                }
            }
        }
    }

    /// Back through time for one unit: each step's gate gradient from its output's (`dH`), and
    /// through W_hh the gradient of the state it read, added to that state's output gradient
    /// (the initial state's, `dh0`, for the step that read it).
    private func backThroughTime(_ w: Workspace, _ pk: PackedWeights, unit u: Int, steps: Int) {
        let H = config.hiddenSize, G = config.gateWidth, B = w.rows
        let L = w.layers[u], direction = w.direction(u)
        let h = L.h, dH = L.dH!, dGates = L.dGates!, dh0 = L.dh0!.pointer, whh = pk.hhBackward[u]
        // The recurrence ran steps in `direction`'s order; this runs them the other way. The
        // state step t read is the output of step t - 1 (t + 1 in reverse), or the initial state.
        @inline(__always) func stateGradient(_ t: Int) -> UnsafeMutablePointer<Float> {
            direction.reverse ? (t + 1 < steps ? dH[t + 1] : dh0) : (t > 0 ? dH[t - 1] : dh0)
        }
        @inline(__always) func readsInitialState(_ t: Int) -> Bool { direction.reverse ? t == steps - 1 : t == 0 }
        switch config.cell {
        case .lstm:
            let c = L.c!, tanhC = L.tanhC!, dc = L.dc!
            dc.zero()
            for i in stride(from: steps - 1, through: 0, by: -1) {
                let t = direction.step(i, of: steps)
                ck_lstm_backward(
                    Int32(B), Int32(H), L.gates[t], c[direction.previous(t)], tanhC[t], dH[t], dc.pointer, dGates[t])
                Kernels.gemmPacked(
                    m: B, n: H, k: G, a: dGates[t], lda: G, packed: whh, c: stateGradient(t), ldc: H,
                    accumulate: !readsInitialState(t))
            }
        case .gru:
            let gh = L.gh!, dGh = L.dGh!
            L.dh0!.zero()
            for i in stride(from: steps - 1, through: 0, by: -1) {
                let t = direction.step(i, of: steps)
                let dhPrevious = stateGradient(t)
                ck_gru_backward(
                    Int32(B), Int32(H), L.gates[t], gh[t], h[direction.previous(t)], dH[t], dGates[t], dGh[t],
                    dhPrevious)
                Kernels.gemmPacked(
                    m: B, n: H, k: G, a: dGh[t], lda: G, packed: whh, c: dhPrevious, ldc: H, accumulate: true)
            }
        case .rnn:
            for i in stride(from: steps - 1, through: 0, by: -1) {
                let t = direction.step(i, of: steps)
                ck_tanh_backward(B * H, h[direction.output(t)], dH[t], dGates[t])
                Kernels.gemmPacked(
                    m: B, n: H, k: G, a: dGates[t], lda: G, packed: whh, c: stateGradient(t), ldc: H,
                    accumulate: !readsInitialState(t))
            }
        }
    }

    /// One unit's weight and bias gradients over the whole chunk, as large products:
    /// dW_hh += dR^T h_previous (dR the gradient of the recurrent sum, which GRU keeps apart),
    /// dW_ih += dGates^T x.
    private func weightGradients(_ w: Workspace, unit u: Int, layer l: Int, steps: Int, dropout: Bool) {
        let H = config.hiddenSize, G = config.gateWidth, V = config.vocabularySize, D = config.directions
        let n = steps * w.rows
        let grads = w.gradients!, scratch = w.gradientScratch!
        let L = w.layers[u], direction = w.direction(u)
        let allGates = L.dGates!.from(0, count: steps)  // (n, G)
        let dRecurrent = config.cell == .gru ? L.dGh!.from(0, count: steps) : allGates  // (n, G)
        Kernels.weightGradient(
            m: G, n: H, k: n, a: dRecurrent, lda: G, b: L.h.from(direction.previous(0), count: steps), ldb: H,
            c: grads.at(layout.weightHH[u], count: G * H), ldc: H, scratch: scratch)
        Kernels.colsumAdd(rows: n, cols: G, x: allGates, out: grads.at(layout.biasIH[u], count: G))
        Kernels.colsumAdd(rows: n, cols: G, x: dRecurrent, out: grads.at(layout.biasHH[u], count: G))
        let inputs = config.inputSize(layer: l)
        if l > 0 {
            // One block of H columns per direction of the layer below.
            for e in 0..<D {
                Kernels.weightGradient(
                    m: G, n: H, k: n, a: allGates, lda: G,
                    b: layerOutput(w, unit(l - 1, e), dropout: dropout, count: steps),
                    ldb: H, c: grads.at(layout.weightIH[u] + e * H, count: G * inputs - e * H), ldc: inputs,
                    scratch: scratch)
            }
        } else if let E = config.embeddingSize {
            Kernels.weightGradient(
                m: G, n: E, k: n, a: allGates, lda: G, b: w.embedded!.from(0, count: steps), ldb: E,
                c: grads.at(layout.weightIH[u], count: G * E), ldc: E, scratch: scratch)
        } else {
            // One-hot input: the gradient of W_ih^T is a scatter of dGates rows by id.
            let embedding = w.embeddingGradient!
            embedding.zero()
            w.inputs.withUnsafeBufferPointer { ids in
                ck_scatter_add_rows(Int32(n), ids.baseAddress!, allGates, Int32(G), embedding.pointer)
            }
            ck_transpose_add(Int32(V), Int32(G), embedding.pointer, grads.at(layout.weightIH[u], count: G * V))
        }
    }
}
