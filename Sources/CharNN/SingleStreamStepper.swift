import CKernels

/// How an inference path stores the weights it reads.
public enum WeightPrecision: String, Codable, Sendable, CaseIterable {
    /// The weights as trained.
    case f32
    /// One signed byte per weight with a float scale per row (each gate unit's weights): a
    /// quarter of the memory traffic. Applies to the dense weight matrices (the recurrent
    /// ones, the input ones above the first layer, the output layer); the one-hot input
    /// table, the embedding and the biases stay float32.
    case int8
}

extension Network {
    /// A copy whose dense weight matrices hold what int8 with per-row scales represents: a
    /// float32 network that computes what the int8 generation path computes, up to the order
    /// of float additions. `.f32` gives this network itself. Cached until the weights change.
    public func rounded(to precision: WeightPrecision) -> Network {
        guard precision == .int8 else { return self }
        return roundedCache.withLock { cache in
            if let cache { return cache }
            let copy = try! Network(config: config)
            copy.parameters.copy(from: parameters)
            for (rows, columns, offset) in denseMatrices() {
                ck_round_rows_to_int8(Int32(rows), Int32(columns), copy.parameters.pointer + offset)
            }
            cache = copy
            return copy
        }
    }

    /// (rows, columns, offset) of every matrix the int8 path quantizes.
    func denseMatrices() -> [(Int, Int, Int)] {
        var matrices: [(Int, Int, Int)] = []
        let g = config.gateWidth, h = config.hiddenSize
        for u in 0..<(config.layers * config.directions) {
            let l = u / config.directions
            if l > 0 || config.embeddingSize != nil {
                matrices.append((g, config.inputSize(layer: l), layout.weightIH[u]))
            }
            matrices.append((g, h, layout.weightHH[u]))
        }
        matrices.append((config.vocabularySize, config.outputWidth, layout.outWeight))
        return matrices
    }
}

/// One stream stepped one id at a time by the C stepper (`ck_stepper`), with its weights in
/// the chosen precision and its work split by hidden unit over `threads` threads. Owns a copy
/// of the weights: later changes to the network do not reach it.
final class SingleStreamStepper {
    private let handle: OpaquePointer
    let threads: Int
    let weightBytes: Int

    init?(network: Network, precision: WeightPrecision, threads: Int) {
        let c = network.config, layout = network.layout
        guard !c.bidirectional else { return nil }
        let p = network.parameters.pointer
        func pointers(_ offsets: [Int]) -> [UnsafePointer<Float>?] { offsets.map { UnsafePointer(p + $0) } }
        let wih = pointers(layout.weightIH), whh = pointers(layout.weightHH)
        let bih = pointers(layout.biasIH), bhh = pointers(layout.biasHH)
        let cell: Int32 =
            switch c.cell {
            case .lstm: Int32(CK_CELL_LSTM)
            case .gru: Int32(CK_CELL_GRU)
            case .rnn: Int32(CK_CELL_RNN)
            }
        let created: OpaquePointer? = wih.withUnsafeBufferPointer { wih in
            whh.withUnsafeBufferPointer { whh in
                bih.withUnsafeBufferPointer { bih in
                    bhh.withUnsafeBufferPointer { bhh in
                        var desc = ck_stepper_desc(
                            cell: cell, layers: Int32(c.layers), vocab: Int32(c.vocabularySize),
                            hidden: Int32(c.hiddenSize), embedding: Int32(c.embeddingSize ?? 0),
                            precision: Int32(precision == .int8 ? CK_PRECISION_INT8 : CK_PRECISION_F32),
                            threads: Int32(max(1, min(threads, 8))),
                            embeddingWeight: layout.embedding.map { UnsafePointer(p + $0) },
                            wih: wih.baseAddress, whh: whh.baseAddress, bih: bih.baseAddress, bhh: bhh.baseAddress,
                            outWeight: p + layout.outWeight, outBias: p + layout.outBias)
                        return ck_stepper_create(&desc)
                    }
                }
            }
        }
        guard let created else { return nil }
        handle = created
        self.threads = Int(ck_stepper_threads(created))
        weightBytes = ck_stepper_weight_bytes(created)
    }

    deinit { ck_stepper_destroy(handle) }

    func setState(_ state: RecurrentState) {
        ck_stepper_set_state(handle, state.h.pointer, state.c?.pointer)
    }

    func getState(_ state: RecurrentState) {
        ck_stepper_get_state(handle, state.h.pointer, state.c?.pointer)
    }

    /// Feeds one id (checked by the caller); writes the logits when `logits` is given.
    func step(_ id: Int32, logits: UnsafeMutablePointer<Float>?) {
        ck_stepper_step(handle, id, logits)
    }
}
