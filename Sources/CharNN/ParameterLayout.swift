/// Name, shape and position of one tensor inside a flat parameter buffer.
public struct TensorInfo: Sendable, Equatable, Codable {
    public let name: String
    public let shape: [Int]
    /// Index of the first element in the flat buffer.
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Where every tensor of a network lives in its flat buffers, named and shaped as PyTorch's
/// state dict of `embedding = nn.Embedding(vocab, E)` (when there is one),
/// `rnn = nn.LSTM/GRU/RNN(input, hidden, layers, bidirectional=...)` and
/// `out = nn.Linear(hidden x directions, vocab)`.
///
/// The recurrent tensors are indexed by *unit*: unit `layer * directions + direction` is one
/// direction of one layer (direction 1 runs backward in time; its tensors end in `_reverse`).
public struct ParameterLayout: Sendable, Equatable {
    public let tensors: [TensorInfo]
    /// Total number of floats.
    public let count: Int

    let embedding: Int?
    /// Per unit.
    let weightIH: [Int], weightHH: [Int], biasIH: [Int], biasHH: [Int]
    let outWeight: Int, outBias: Int
    /// The span of each recurrent layer's tensors (weights and biases of both directions,
    /// contiguous), and of the output layer's.
    public let layerRanges: [Range<Int>]
    public let outputRange: Range<Int>

    public init(config: NetworkConfig) {
        var tensors: [TensorInfo] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let info = TensorInfo(name: name, shape: shape, offset: offset)
            tensors.append(info)
            offset += info.count
            return info.offset
        }
        embedding = config.embeddingSize.map { add("embedding.weight", [config.vocabularySize, $0]) }
        var wih: [Int] = [], whh: [Int] = [], bih: [Int] = [], bhh: [Int] = []
        var ranges: [Range<Int>] = []
        let g = config.gateWidth
        for l in 0..<config.layers {
            let start = offset
            defer { ranges.append(start..<offset) }
            for direction in 0..<config.directions {
                let suffix = direction == 0 ? "" : "_reverse"
                wih.append(add("rnn.weight_ih_l\(l)\(suffix)", [g, config.inputSize(layer: l)]))
                whh.append(add("rnn.weight_hh_l\(l)\(suffix)", [g, config.hiddenSize]))
                bih.append(add("rnn.bias_ih_l\(l)\(suffix)", [g]))
                bhh.append(add("rnn.bias_hh_l\(l)\(suffix)", [g]))
            }
        }
        let outputStart = offset
        outWeight = add("out.weight", [config.vocabularySize, config.outputWidth])
        outBias = add("out.bias", [config.vocabularySize])
        outputRange = outputStart..<offset
        layerRanges = ranges
        self.tensors = tensors
        self.count = offset
        weightIH = wih
        weightHH = whh
        biasIH = bih
        biasHH = bhh
    }

    /// The axis of tensor `name` that runs over the vocabulary (rows of the embedding and of
    /// the output layer, columns of a one-hot first layer), if it has one.
    public func vocabularyAxis(of name: String, config: NetworkConfig) -> Int? {
        switch name {
        case "embedding.weight", "out.weight", "out.bias": 0
        case "rnn.weight_ih_l0" where config.embeddingSize == nil: 1
        case "rnn.weight_ih_l0_reverse" where config.embeddingSize == nil: 1
        default: nil
        }
    }

    /// The tensor called `name`, if any.
    public subscript(name: String) -> TensorInfo? {
        tensors.first { $0.name == name }
    }
}
