/// The recurrent cell of every layer.
public enum CellKind: String, Codable, Sendable, CaseIterable {
    /// `torch.nn.LSTM`: gates i, f, g, o.
    case lstm
    /// `torch.nn.GRU`: gates r, z, n.
    case gru
    /// `torch.nn.RNN` with tanh.
    case rnn

    /// Gate blocks per layer (the row count of a weight matrix is `gateCount * hiddenSize`).
    public var gateCount: Int {
        switch self {
        case .lstm: 4
        case .gru: 3
        case .rnn: 1
        }
    }
}

/// Shape of a stacked recurrent network over character ids: one-hot inputs, or a learned
/// embedding of each id, then the recurrent layers and an output projection to the vocabulary.
public struct NetworkConfig: Codable, Sendable, Equatable {
    public var cell: CellKind
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var layers: Int
    /// Dropout probability between layers and before the output layer (0 disables it).
    public var dropout: Float
    /// Width of a learned input embedding (`nn.Embedding(vocab, E)`, torch-rnn's `wordvec_size`),
    /// or nil: the first layer sees one-hot vectors of the vocabulary.
    public var embeddingSize: Int?
    /// PyTorch's `bidirectional=True`: every layer also runs backward in time, from the end of
    /// the chunk, with weights of its own (`..._reverse`), and the next layer and the output
    /// layer see both directions' outputs side by side (2H). At step t such a network has read
    /// the whole chunk, so it labels text (restoring marks or case); it cannot generate it.
    public var bidirectional: Bool

    public init(
        cell: CellKind = .lstm, vocabularySize: Int, hiddenSize: Int = 256, layers: Int = 2, dropout: Float = 0,
        embeddingSize: Int? = nil, bidirectional: Bool = false
    ) {
        self.cell = cell
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.dropout = dropout
        self.embeddingSize = embeddingSize
        self.bidirectional = bidirectional
    }

    /// Width of a layer's gate pre-activations.
    public var gateWidth: Int { cell.gateCount * hiddenSize }

    /// Directions each layer runs in: 1, or 2 when bidirectional.
    public var directions: Int { bidirectional ? 2 : 1 }

    /// Width of a layer's output: the hidden size, twice it when bidirectional.
    public var outputWidth: Int { directions * hiddenSize }

    /// Input width of `layer`: the vocabulary (or the embedding) for the first, the output
    /// width of the layer below above it.
    public func inputSize(layer: Int) -> Int { layer == 0 ? embeddingSize ?? vocabularySize : outputWidth }

    /// Checks the values; throws `NetworkError.invalidConfig` naming the first bad one.
    public func validate() throws {
        if vocabularySize < 1 {
            throw NetworkError.invalidConfig("vocabulary size must be at least 1, got \(vocabularySize)")
        }
        if hiddenSize < 1 { throw NetworkError.invalidConfig("hidden size must be at least 1, got \(hiddenSize)") }
        if layers < 1 { throw NetworkError.invalidConfig("layers must be at least 1, got \(layers)") }
        if !(dropout >= 0 && dropout < 1) {
            throw NetworkError.invalidConfig("dropout must be in [0, 1), got \(dropout)")
        }
        if let embeddingSize, !(embeddingSize >= 1 && embeddingSize <= 65536) {
            throw NetworkError.invalidConfig("the embedding size must be between 1 and 65536, got \(embeddingSize)")
        }
        if hiddenSize > 65536 || vocabularySize > 1 << 24 || layers > 1024 {
            throw NetworkError.invalidConfig(
                "network too large: hidden \(hiddenSize), vocabulary \(vocabularySize), \(layers) layers")
        }
        let parameters =
            directions * (layers * (gateWidth * (hiddenSize + 2)) + gateWidth * inputSize(layer: 0))
            + directions * (layers - 1) * gateWidth * outputWidth
            + vocabularySize * (embeddingSize ?? 0) + vocabularySize * (outputWidth + 1)
        if parameters > 1 << 31 {
            throw NetworkError.invalidConfig("network too large: \(parameters) parameters (the limit is 2^31)")
        }
    }
}

/// Errors of CharNN, with messages a user can act on.
public enum NetworkError: Error, Equatable, CustomStringConvertible {
    case invalidConfig(String)
    case shapeMismatch(String)
    case missingTensor(String)
    case invalidInput(String)

    public var description: String {
        switch self {
        case .invalidConfig(let m): "invalid network configuration: \(m)"
        case .shapeMismatch(let m): "shape mismatch: \(m)"
        case .missingTensor(let m): "missing tensor: \(m)"
        case .invalidInput(let m): "invalid input: \(m)"
        }
    }
}
