/// Hidden state of every layer for a batch of streams: `h` (and `c` for LSTM), each laid out
/// (layers, batch, hidden) like PyTorch's `(h_0, c_0)`; for a bidirectional network
/// (layers x 2, batch, hidden), each layer's forward then reverse direction, as PyTorch's.
public final class RecurrentState: @unchecked Sendable {
    /// Layers times directions.
    public let layers: Int
    public let batchSize: Int
    public let hiddenSize: Int
    public let h: FloatBuffer
    /// Cell state; nil unless the cell is an LSTM.
    public let c: FloatBuffer?

    /// An all-zero state.
    public init(config: NetworkConfig, batchSize: Int) {
        layers = config.layers * config.directions
        self.batchSize = batchSize
        hiddenSize = config.hiddenSize
        h = FloatBuffer(count: layers * batchSize * hiddenSize)
        c = config.cell == .lstm ? FloatBuffer(count: layers * batchSize * hiddenSize) : nil
    }

    /// Sets every value to zero.
    public func reset() {
        h.zero()
        c?.zero()
    }

    /// Sets stream `row` of every layer to zero.
    public func reset(row: Int) {
        precondition(row >= 0 && row < batchSize, "row \(row) outside 0..<\(batchSize)")
        for l in 0..<layers {
            h(layer: l, row: row, rows: 1).update(repeating: 0, count: hiddenSize)
            c(layer: l, row: row, rows: 1)?.update(repeating: 0, count: hiddenSize)
        }
    }

    /// Copies every value of `other`, which must have the same shape.
    public func copy(from other: RecurrentState) {
        h.copy(from: other.h)
        if let c, let oc = other.c { c.copy(from: oc) }
    }

    /// Sets stream `row` of every layer to stream `sourceRow` of `other` (same layers and size).
    public func copy(row: Int, from other: RecurrentState, row sourceRow: Int) {
        precondition(
            other.layers == layers && other.hiddenSize == hiddenSize && (other.c == nil) == (c == nil),
            "states of different shapes")
        for l in 0..<layers {
            h(layer: l, row: row, rows: 1).update(from: other.h(layer: l, row: sourceRow, rows: 1), count: hiddenSize)
            if let source = other.c(layer: l, row: sourceRow, rows: 1) {
                c(layer: l, row: row, rows: 1)!.update(from: source, count: hiddenSize)
            }
        }
    }

    /// A copy of this state.
    public func clone() -> RecurrentState {
        let copy = RecurrentState(layers: layers, batchSize: batchSize, hiddenSize: hiddenSize, hasCell: c != nil)
        copy.copy(from: self)
        return copy
    }

    init(layers: Int, batchSize: Int, hiddenSize: Int, hasCell: Bool) {
        self.layers = layers
        self.batchSize = batchSize
        self.hiddenSize = hiddenSize
        h = FloatBuffer(count: layers * batchSize * hiddenSize)
        c = hasCell ? FloatBuffer(count: layers * batchSize * hiddenSize) : nil
    }

    /// Rows row ..< row + rows of layer `layer`'s hidden state, (rows, hidden).
    func h(layer: Int, row: Int, rows: Int) -> UnsafeMutablePointer<Float> {
        h.at((layer * batchSize + row) * hiddenSize, count: rows * hiddenSize)
    }

    /// The same rows of the cell state, for an LSTM.
    func c(layer: Int, row: Int, rows: Int) -> UnsafeMutablePointer<Float>? {
        c?.at((layer * batchSize + row) * hiddenSize, count: rows * hiddenSize)
    }

    /// Whether this state fits `config` with `batchSize` streams.
    public func matches(_ config: NetworkConfig, batchSize: Int) -> Bool {
        layers == config.layers * config.directions && hiddenSize == config.hiddenSize && self.batchSize == batchSize
            && (c != nil) == (config.cell == .lstm)
    }
}
