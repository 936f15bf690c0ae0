import CKernels

/// A network's weights as the int8 generation path reads them: every dense matrix (the
/// recurrent ones, the input ones above the first layer, the output layer) as int8 with one
/// float scale per row, rounded exactly as a session rounds them at load (`ck_quantize_rows`);
/// the other tensors (biases, the one-hot input weights, the embedding) float32.
///
/// Made from a network (which quantizes), or over memory that already holds those tensors (a
/// file mapped by CharLM, which then skips both the float32 weights and the quantization).
/// A one-stream `InferenceSession` made from it computes what one made from the network at
/// `.int8` computes, bit for bit, and copies what it reads, so it does not keep this object.
///
/// ```swift
/// let weights = QuantizedWeights(network: net)
/// let session = InferenceSession(quantized: weights)
/// ```
public final class QuantizedWeights: @unchecked Sendable {
    /// One tensor's values.
    public enum Tensor {
        case float32(UnsafeBufferPointer<Float>)
        /// Row-major values and one scale per row.
        case int8(UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>)
    }

    public let config: NetworkConfig
    public let layout: ParameterLayout
    /// One per tensor of `layout`, in its order.
    public let tensors: [Tensor]
    /// What keeps the memory of `tensors` alive.
    private let owner: AnyObject?
    private var allocations: [UnsafeMutableRawPointer] = []

    /// The names of the tensors stored as int8, with their (rows, columns).
    public static func int8Tensors(_ config: NetworkConfig) -> [String: (rows: Int, columns: Int)] {
        let layout = ParameterLayout(config: config)
        let byOffset = Dictionary(uniqueKeysWithValues: layout.tensors.map { ($0.offset, $0.name) })
        var names: [String: (rows: Int, columns: Int)] = [:]
        for (rows, columns, offset) in layout.denseMatrices(config) { names[byOffset[offset]!] = (rows, columns) }
        return names
    }

    /// Quantizes the dense matrices of `network` and copies the rest.
    public init(network: Network) {
        config = network.config
        layout = network.layout
        owner = nil
        let int8 = Self.int8Tensors(config)
        let source = network.parameters.pointer
        var tensors: [Tensor] = []
        for info in layout.tensors {
            if let (rows, columns) = int8[info.name] {
                let q = UnsafeMutablePointer<Int8>.allocate(capacity: max(1, rows * columns))
                let s = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows))
                allocations += [UnsafeMutableRawPointer(q), UnsafeMutableRawPointer(s)]
                ck_quantize_rows(Int32(rows), Int32(columns), source + info.offset, columns, q, columns, s)
                tensors.append(
                    .int8(
                        UnsafeBufferPointer(start: q, count: rows * columns),
                        scales: UnsafeBufferPointer(start: s, count: rows)))
            } else {
                let f = UnsafeMutablePointer<Float>.allocate(capacity: max(1, info.count))
                f.update(from: source + info.offset, count: info.count)
                allocations.append(UnsafeMutableRawPointer(f))
                tensors.append(.float32(UnsafeBufferPointer(start: f, count: info.count)))
            }
        }
        self.tensors = tensors
    }

    /// Weights over memory that `owner` keeps alive: every tensor of `config`'s layout by name,
    /// int8 exactly where `int8Tensors` says, with its shape.
    /// - Throws: `NetworkError.missingTensor` or `.shapeMismatch`.
    public init(config: NetworkConfig, tensors byName: [String: Tensor], owner: AnyObject) throws {
        try config.validate()
        let layout = ParameterLayout(config: config)
        self.config = config
        self.layout = layout
        self.owner = owner
        let int8 = Self.int8Tensors(config)
        let names = Set(layout.tensors.map(\.name))
        if let extra = byName.keys.sorted().first(where: { !names.contains($0) }) {
            throw NetworkError.shapeMismatch("tensor '\(extra)' is not part of this network")
        }
        var tensors: [Tensor] = []
        for info in layout.tensors {
            guard let tensor = byName[info.name] else { throw NetworkError.missingTensor(info.name) }
            switch (tensor, int8[info.name]) {
            case (.int8(let q, let scales), .some(let (rows, columns))):
                guard q.count == rows * columns, scales.count == rows else {
                    throw NetworkError.shapeMismatch(
                        "tensor '\(info.name)' holds \(q.count) values and \(scales.count) scales, expected "
                            + "\(rows) x \(columns) and \(rows)")
                }
            case (.float32(let values), .none):
                guard values.count == info.count else {
                    throw NetworkError.shapeMismatch(
                        "tensor '\(info.name)' holds \(values.count) values, expected \(info.count)")
                }
            case (.float32, .some):
                throw NetworkError.shapeMismatch("tensor '\(info.name)' should be int8")
            case (.int8, .none):
                throw NetworkError.shapeMismatch("tensor '\(info.name)' should be float32")
            }
            tensors.append(tensor)
        }
        self.tensors = tensors
    }

    deinit {
        for allocation in allocations { allocation.deallocate() }
    }

    /// The float32 values at layout offset `offset` (nil for an int8 tensor).
    func floats(at offset: Int) -> UnsafePointer<Float>? {
        guard let index = layout.tensors.firstIndex(where: { $0.offset == offset }),
            case .float32(let values) = tensors[index]
        else { return nil }
        return values.baseAddress
    }

    /// The int8 values and scales at layout offset `offset` (nil for a float32 tensor).
    func int8(at offset: Int) -> (UnsafePointer<Int8>, UnsafePointer<Float>)? {
        guard let index = layout.tensors.firstIndex(where: { $0.offset == offset }),
            case .int8(let q, let scales) = tensors[index], let qBase = q.baseAddress, let sBase = scales.baseAddress
        else { return nil }
        return (qBase, sBase)
    }
}

extension ParameterLayout {
    /// (rows, columns, offset) of every matrix the int8 path quantizes.
    func denseMatrices(_ config: NetworkConfig) -> [(Int, Int, Int)] {
        var matrices: [(Int, Int, Int)] = []
        let g = config.gateWidth, h = config.hiddenSize
        for u in 0..<(config.layers * config.directions) {
            let l = u / config.directions
            if l > 0 || config.embeddingSize != nil {
                matrices.append((g, config.inputSize(layer: l), weightIH[u]))
            }
            matrices.append((g, h, weightHH[u]))
        }
        matrices.append((config.vocabularySize, config.outputWidth, outWeight))
        return matrices
    }
}
