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
    func denseMatrices() -> [(Int, Int, Int)] { layout.denseMatrices(config) }
}

/// One stream stepped one id at a time by the C stepper (`ck_stepper`), with its weights in
/// the chosen precision and its work split by hidden unit over `threads` threads. Owns a copy
/// of the weights: later changes to the network do not reach it.
final class SingleStreamStepper {
    private let handle: OpaquePointer
    let threads: Int
    let weightBytes: Int

    convenience init?(network: Network, precision: WeightPrecision, threads: Int) {
        let p = network.parameters.pointer
        self.init(
            config: network.config, layout: network.layout, precision: precision, threads: threads,
            floats: { UnsafePointer(p + $0) }, int8: { _ in nil })
    }

    /// A stepper on weights already quantized: int8 precision, nothing rounded again.
    convenience init?(quantized: QuantizedWeights, threads: Int) {
        self.init(
            config: quantized.config, layout: quantized.layout, precision: .int8, threads: threads,
            floats: quantized.floats(at:), int8: quantized.int8(at:))
    }

    /// `floats(offset)` gives the float32 tensor at a layout offset, `int8(offset)` the
    /// quantized one when there is one (then `floats` is not read for it).
    private init?(
        config c: NetworkConfig, layout: ParameterLayout, precision: WeightPrecision, threads: Int,
        floats: (Int) -> UnsafePointer<Float>?, int8: (Int) -> (UnsafePointer<Int8>, UnsafePointer<Float>)?
    ) {
        guard !c.bidirectional else { return nil }
        let wih = layout.weightIH.map(floats), whh = layout.weightHH.map(floats)
        let bih = layout.biasIH.map(floats), bhh = layout.biasHH.map(floats)
        let wihQ = layout.weightIH.map(int8), whhQ = layout.weightHH.map(int8)
        let wq = wihQ.map { $0?.0 }, ws = wihQ.map { $0?.1 }, hq = whhQ.map { $0?.0 }, hs = whhQ.map { $0?.1 }
        let outQ = int8(layout.outWeight)
        let cell: Int32 =
            switch c.cell {
            case .lstm: Int32(CK_CELL_LSTM)
            case .gru: Int32(CK_CELL_GRU)
            case .rnn: Int32(CK_CELL_RNN)
            }
        var desc = ck_stepper_desc(
            cell: cell, layers: Int32(c.layers), vocab: Int32(c.vocabularySize), hidden: Int32(c.hiddenSize),
            embedding: Int32(c.embeddingSize ?? 0),
            precision: Int32(precision == .int8 ? CK_PRECISION_INT8 : CK_PRECISION_F32),
            threads: Int32(max(1, min(threads, 8))), embeddingWeight: layout.embedding.flatMap(floats),
            wih: nil, whh: nil, bih: nil, bhh: nil, outWeight: floats(layout.outWeight),
            outBias: floats(layout.outBias), wihQ: nil, whhQ: nil, wihScale: nil, whhScale: nil, outQ: outQ?.0,
            outScale: outQ?.1)
        let created: OpaquePointer? = wih.withUnsafeBufferPointer { wih in
            whh.withUnsafeBufferPointer { whh in
                bih.withUnsafeBufferPointer { bih in
                    bhh.withUnsafeBufferPointer { bhh in
                        wq.withUnsafeBufferPointer { wq in
                            ws.withUnsafeBufferPointer { ws in
                                hq.withUnsafeBufferPointer { hq in
                                    hs.withUnsafeBufferPointer { hs in
                                        desc.wih = wih.baseAddress
                                        desc.whh = whh.baseAddress
                                        desc.bih = bih.baseAddress
                                        desc.bhh = bhh.baseAddress
                                        desc.wihQ = wq.baseAddress
                                        desc.wihScale = ws.baseAddress
                                        desc.whhQ = hq.baseAddress
                                        desc.whhScale = hs.baseAddress
                                        return ck_stepper_create(&desc)
                                    }
                                }
                            }
                        }
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
