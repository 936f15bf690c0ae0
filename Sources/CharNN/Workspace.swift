/// Buffers of one layer for a shard of `rows` streams over up to `steps` time steps.
/// Time-major: step t of every buffer starts at t * rows * width.
final class LayerBuffers {
    /// Hidden states (steps + 1, rows, H); slot 0 holds the initial state.
    let hs: FloatBuffer
    /// LSTM cell states (steps + 1, rows, H) and tanh of them (steps, rows, H).
    let cs: FloatBuffer?, tanhC: FloatBuffer?
    /// Gate pre-activations, replaced by the activations (steps, rows, G).
    let gates: FloatBuffer
    /// GRU only: W_hh h + b_hh (steps, rows, 3H).
    let gh: FloatBuffer?
    /// Dropout mask and the dropped output (steps, rows, H), when dropout is on.
    let mask: FloatBuffer?, dropped: FloatBuffer?
    /// Backward: gradient of the output (steps, rows, H), of the gate pre-activations
    /// (steps, rows, G), of GRU's recurrent sum, of the carried cell state, of the initial state.
    let dH: FloatBuffer?, dGates: FloatBuffer?, dGh: FloatBuffer?, dc: FloatBuffer?, dh0: FloatBuffer?

    init(config: NetworkConfig, rows: Int, steps: Int, training: Bool) {
        let h = config.hiddenSize, g = config.gateWidth
        let lstm = config.cell == .lstm, gru = config.cell == .gru
        hs = FloatBuffer(count: (steps + 1) * rows * h)
        cs = lstm ? FloatBuffer(count: (steps + 1) * rows * h) : nil
        tanhC = lstm ? FloatBuffer(count: steps * rows * h) : nil
        gates = FloatBuffer(count: steps * rows * g)
        gh = gru ? FloatBuffer(count: steps * rows * g) : nil
        let dropout = training && config.dropout > 0
        mask = dropout ? FloatBuffer(count: steps * rows * h) : nil
        dropped = dropout ? FloatBuffer(count: steps * rows * h) : nil
        dH = training ? FloatBuffer(count: steps * rows * h) : nil
        dGates = training ? FloatBuffer(count: steps * rows * g) : nil
        dGh = training && gru ? FloatBuffer(count: steps * rows * g) : nil
        dc = training && lstm ? FloatBuffer(count: rows * h) : nil
        dh0 = training ? FloatBuffer(count: rows * h) : nil
    }
}

/// Everything one shard needs for a forward and backward pass: per-layer buffers, the ids,
/// the logits, and its own gradient accumulator.
final class Workspace: @unchecked Sendable {
    let rows: Int
    let steps: Int
    let training: Bool
    let layers: [LayerBuffers]
    /// Input and target ids, time-major (steps, rows).
    var inputs: [Int32]
    var targets: [Int32]
    /// Logits (steps, rows, V); replaced by their gradient in training.
    let logits: FloatBuffer
    /// Gradient of every parameter (layout order), and of the first layer's W_ih transposed.
    let gradients: FloatBuffer?
    let embeddingGradient: FloatBuffer?

    init(config: NetworkConfig, parameterCount: Int, rows: Int, steps: Int, training: Bool) {
        self.rows = rows
        self.steps = steps
        self.training = training
        layers = (0..<config.layers).map { _ in LayerBuffers(config: config, rows: rows, steps: steps, training: training) }
        inputs = Array(repeating: 0, count: rows * steps)
        targets = Array(repeating: 0, count: rows * steps)
        logits = FloatBuffer(count: rows * steps * config.vocabularySize)
        gradients = training ? FloatBuffer(count: parameterCount) : nil
        embeddingGradient = training ? FloatBuffer(count: config.vocabularySize * config.gateWidth) : nil
    }
}
