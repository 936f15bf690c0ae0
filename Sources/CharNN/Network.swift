import CKernels
import Synchronization

/// A stacked recurrent network over one-hot character ids (unidirectional, or bidirectional),
/// with an output projection to vocabulary logits: the weights, and the packed copies of them that the kernels read.
///
/// ```swift
/// let net = try Network(config: NetworkConfig(vocabularySize: 65), seed: 1)
/// let runner = BatchRunner(network: net, batchSize: 50, seqLength: 50)
/// ```
public final class Network: @unchecked Sendable {
    public let config: NetworkConfig
    public let layout: ParameterLayout
    /// All weights, flat, in `layout` order.
    public let parameters: FloatBuffer
    /// Packed copies of the current weights, made on first use: one with the backward layouts
    /// (training) and a forward-only one (inference). Locked, so that inference sessions on
    /// several threads can share one network.
    private let packCache = Mutex<(full: PackedWeights?, forward: PackedWeights?)>((nil, nil))
    /// The int8-rounded copy (`rounded(to:)`), made on first use.
    let roundedCache = Mutex<Network?>(nil)

    /// A network initialised as PyTorch does: every recurrent weight and bias uniform in
    /// ±1/√hidden, the output layer uniform in ±1/√fan-in (nn.Linear's default; the fan-in is
    /// 2 x hidden when bidirectional).
    /// An embedding, when there is one, starts from N(0, 1), as `nn.Embedding` does.
    public convenience init(config: NetworkConfig, seed: UInt64) throws {
        try self.init(config: config)
        var rng = SeededGenerator(seed: seed)
        let bound = 1 / Float(config.hiddenSize).squareRoot()
        let p = parameters.pointer
        for i in 0..<layout.count { p[i] = rng.uniform(-bound, bound) }
        if config.bidirectional {
            // nn.Linear(2H, V): its fan-in is both directions' outputs.
            let outputBound = 1 / Float(config.outputWidth).squareRoot()
            for i in layout.outputRange { p[i] *= outputBound / bound }
        }
        if let embedding = layout.embedding, let e = config.embeddingSize {
            var normal = SeededGenerator(seed: seed ^ 0xE4BE_DD14_6000_0001)
            for i in 0..<(config.vocabularySize * e) { p[embedding + i] = normal.standardNormal() }
        }
    }

    /// A network with every weight zero, to be filled by `setTensor` (loading a checkpoint).
    public init(config: NetworkConfig) throws {
        try config.validate()
        BLAS.ensureReady()
        self.config = config
        layout = ParameterLayout(config: config)
        parameters = FloatBuffer(count: layout.count)
    }

    /// Number of trainable values.
    public var parameterCount: Int { layout.count }

    /// Must be called after the weights change (optimizer step, load), before the next pass.
    /// Passes already running keep the packed copies they started with.
    public func parametersDidChange() {
        packCache.withLock { $0 = (nil, nil) }
        roundedCache.withLock { $0 = nil }
    }

    /// Replaces one tensor's values.
    public func setTensor(_ name: String, values: [Float]) throws {
        guard let info = layout[name] else { throw NetworkError.missingTensor(name) }
        guard values.count == info.count else {
            throw NetworkError.shapeMismatch("\(name) needs \(info.count) values \(info.shape), got \(values.count)")
        }
        values.withUnsafeBufferPointer { src in
            parameters.at(info.offset, count: info.count).update(from: src.baseAddress!, count: info.count)
        }
        parametersDidChange()
    }

    /// One tensor's values.
    public func tensor(_ name: String) throws -> [Float] {
        guard let info = layout[name] else { throw NetworkError.missingTensor(name) }
        return Array(UnsafeBufferPointer(start: parameters.at(info.offset, count: info.count), count: info.count))
    }

    /// The packed weights for the current parameters; packs them if they changed.
    func packed() -> PackedWeights {
        packCache.withLock { cache in
            if let full = cache.full { return full }
            let fresh = PackedWeights(network: self, backward: true)
            cache.full = fresh
            return fresh
        }
    }

    /// The packed copies a forward pass needs (no backward layouts).
    func packedForward() -> PackedWeights {
        packCache.withLock { cache in
            if let packed = cache.full ?? cache.forward { return packed }
            let fresh = PackedWeights(network: self, backward: false)
            cache.forward = fresh
            return fresh
        }
    }
}

/// Copies of the weights laid out for the kernels, made once per optimizer step. Recurrent
/// weights are per unit (`layer * directions + direction`); a matrix that reads both
/// directions of the layer below (or feeds the output from both) is packed as one block per
/// direction: the columns that read direction d's H outputs.
final class PackedWeights: @unchecked Sendable {
    /// Per unit: W_hh for h * W_hh^T (K = H, N = G) and, for training, for dG * W_hh (K = G, N = H).
    let hhForward: [PackedMatrix], hhBackward: [PackedMatrix]
    /// Per unit: W_ih the same two ways, one block per direction of the input (H columns each),
    /// or one block for an embedded first layer; none for a one-hot first layer.
    let ihForward: [[PackedMatrix]], ihBackward: [[PackedMatrix]]
    /// One-hot inputs, per direction: the first layer's W_ih transposed, (vocab, G), row v being
    /// W_ih · onehot(v). With an embedding, none: the first layer's W_ih is packed like the others.
    let inputTables: [FloatBuffer]
    /// E zeros: the bias of the embedding gather.
    let zeros: FloatBuffer
    /// Per unit: the bias added to the input projection (b_ih + b_hh, or b_ih alone for GRU).
    let inputBias: [FloatBuffer]
    /// Output layer, one block per direction: for y * W_out^T (K = H, N = V) and for
    /// dlogits * W_out (K = V, N = H).
    let outForward: [PackedMatrix], outBackward: [PackedMatrix]

    init(network: Network, backward: Bool) {
        let c = network.config, layout = network.layout
        let h = c.hiddenSize, g = c.gateWidth, v = c.vocabularySize, directions = c.directions
        let p = network.parameters
        let isa = ck_isa()
        func pack(k: Int, n: Int, _ base: UnsafeMutablePointer<Float>, rowStride: Int, colStride: Int) -> PackedMatrix {
            PackedMatrix(k: k, n: n, base, rowStride: rowStride, colStride: colStride, isa: isa)
        }
        var hhF: [PackedMatrix] = [], hhB: [PackedMatrix] = [], ihF: [[PackedMatrix]] = [], ihB: [[PackedMatrix]] = []
        var biases: [FloatBuffer] = [], tables: [FloatBuffer] = []
        for l in 0..<c.layers {
            for d in 0..<directions {
                let u = l * directions + d
                let whh = p.at(layout.weightHH[u], count: g * h)
                hhF.append(pack(k: h, n: g, whh, rowStride: 1, colStride: h))
                if backward { hhB.append(pack(k: g, n: h, whh, rowStride: h, colStride: 1)) }
                let inputs = c.inputSize(layer: l)
                let wih = p.at(layout.weightIH[u], count: g * inputs)
                if l == 0 && c.embeddingSize == nil {
                    let table = FloatBuffer(count: v * g)
                    ck_transpose_add(Int32(g), Int32(v), wih, table.pointer)
                    tables.append(table)
                    ihF.append([])
                    ihB.append([])
                } else {
                    // Column blocks of `width` inputs: one per direction below, or the whole embedding.
                    let width = l == 0 ? inputs : h
                    let blocks = stride(from: 0, to: inputs, by: width)
                    ihF.append(blocks.map { pack(k: width, n: g, wih + $0, rowStride: 1, colStride: inputs) })
                    ihB.append(
                        backward ? blocks.map { pack(k: g, n: width, wih + $0, rowStride: inputs, colStride: 1) } : [])
                }
                let bias = FloatBuffer(count: g)
                bias.pointer.update(from: p.at(layout.biasIH[u], count: g), count: g)
                if c.cell != .gru { ck_add(g, p.at(layout.biasHH[u], count: g), bias.pointer) }
                biases.append(bias)
            }
        }
        zeros = FloatBuffer(count: c.embeddingSize ?? 1)
        let width = c.outputWidth
        let wout = p.at(layout.outWeight, count: v * width)
        let outBlocks = stride(from: 0, to: width, by: h)
        outForward = outBlocks.map { pack(k: h, n: v, wout + $0, rowStride: 1, colStride: width) }
        outBackward = backward ? outBlocks.map { pack(k: v, n: h, wout + $0, rowStride: width, colStride: 1) } : []
        hhForward = hhF
        hhBackward = hhB
        ihForward = ihF
        ihBackward = ihB
        inputBias = biases
        inputTables = tables
    }
}
