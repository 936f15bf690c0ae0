/// A time-major buffer seen one time step at a time: step t holds `rows` rows of `width`
/// floats, contiguous, at `base + t * rows * width` (llm.c's named slices, so that the
/// forward and backward passes never spell out that arithmetic).
struct Steps {
    let buffer: FloatBuffer
    /// Floats per step: rows x width.
    let stride: Int

    init(_ buffer: FloatBuffer, rows: Int, width: Int) {
        self.buffer = buffer
        stride = rows * width
    }

    /// Step t, (rows, width).
    @inline(__always)
    subscript(t: Int) -> UnsafeMutablePointer<Float> { buffer.at(t * stride, count: stride) }

    /// Steps t ..< t + count, (count * rows, width): for products over a whole chunk.
    @inline(__always)
    func from(_ t: Int, count: Int) -> UnsafeMutablePointer<Float> { buffer.at(t * stride, count: count * stride) }
}

/// Buffers of one unit (one direction of one layer) for a shard of `rows` streams over up to `steps` time steps, time-major.
/// H is the hidden size, G the gate width (4H for LSTM, 3H for GRU, H for a tanh RNN).
final class LayerBuffers {
    /// Hidden states, steps + 1 slots of (rows, H): h[0] is the initial state, h[t + 1] the
    /// output of step t (for a reverse unit, h[steps] is the initial state and h[t] step t's
    /// output: see `Direction`).
    let h: Steps
    /// LSTM cell states, laid out like `h`, and tanh of each step's new cell state (steps, rows, H).
    let c: Steps?, tanhC: Steps?
    /// Gate pre-activations, replaced by the activations: (steps, rows, G).
    let gates: Steps
    /// GRU only: W_hh h + b_hh, (steps, rows, 3H).
    let gh: Steps?
    /// Dropout mask and the dropped output (steps, rows, H), when dropout is on.
    let mask: Steps?, dropped: Steps?
    /// Backward: gradients of the output (steps, rows, H), of the gate pre-activations
    /// (steps, rows, G), of GRU's recurrent sum (steps, rows, 3H); of the cell state carried
    /// back through time, and of the initial state, (rows, H).
    let dH: Steps?, dGates: Steps?, dGh: Steps?
    let dc: FloatBuffer?, dh0: FloatBuffer?

    init(config: NetworkConfig, rows: Int, steps: Int, training: Bool) {
        let H = config.hiddenSize, G = config.gateWidth
        let lstm = config.cell == .lstm, gru = config.cell == .gru
        let dropout = training && config.dropout > 0
        func buffer(_ count: Int, width: Int) -> Steps {
            Steps(FloatBuffer(count: count * rows * width), rows: rows, width: width)
        }
        h = buffer(steps + 1, width: H)
        c = lstm ? buffer(steps + 1, width: H) : nil
        tanhC = lstm ? buffer(steps, width: H) : nil
        gates = buffer(steps, width: G)
        gh = gru ? buffer(steps, width: G) : nil
        mask = dropout ? buffer(steps, width: H) : nil
        dropped = dropout ? buffer(steps, width: H) : nil
        dH = training ? buffer(steps, width: H) : nil
        dGates = training ? buffer(steps, width: G) : nil
        dGh = training && gru ? buffer(steps, width: G) : nil
        dc = training && lstm ? FloatBuffer(count: rows * H) : nil
        dh0 = training ? FloatBuffer(count: rows * H) : nil
    }
}

/// Everything one shard needs for a forward and backward pass: per-unit buffers, the ids,
/// the logits, and its own gradient accumulator.
final class Workspace: @unchecked Sendable {
    let rows: Int
    let steps: Int
    let training: Bool
    /// Per unit (`layer * directions + direction`).
    let layers: [LayerBuffers]
    let directions: Int
    /// Input and target ids, time-major (steps, rows).
    var inputs: [Int32]
    var targets: [Int32]
    /// Logits (steps, rows, V); replaced by their gradient in training.
    let logits: Steps
    /// With an embedding: the embedded inputs (steps, rows, E), and in training their gradient.
    let embedded: Steps?, dEmbedded: Steps?
    /// Gradient of every parameter (layout order), and, for one-hot inputs, of the first layer's
    /// W_ih transposed (V, G).
    let gradients: FloatBuffer?
    let embeddingGradient: FloatBuffer?
    /// Training: scratch of the weight-gradient products.
    let gradientScratch: GradientScratch?
    /// Threads that share the columns of each forward product (1: the caller's thread alone).
    var columnThreads = 1
    /// Below this many weights (n × k) a product is not worth splitting: waking a thread costs
    /// more than it saves.
    static let minimumSplitProduct = 1 << 18

    init(config: NetworkConfig, parameterCount: Int, rows: Int, steps: Int, training: Bool) {
        self.rows = rows
        self.steps = steps
        self.training = training
        directions = config.directions
        layers = (0..<(config.layers * config.directions)).map { _ in
            LayerBuffers(config: config, rows: rows, steps: steps, training: training)
        }
        inputs = Array(repeating: 0, count: rows * steps)
        targets = Array(repeating: 0, count: rows * steps)
        logits = Steps(
            FloatBuffer(count: rows * steps * config.vocabularySize), rows: rows, width: config.vocabularySize)
        gradients = training ? FloatBuffer(count: parameterCount) : nil
        gradientScratch = training ? GradientScratch(config: config, rows: rows, steps: steps) : nil
        let oneHot = config.embeddingSize == nil
        embeddingGradient = training && oneHot ? FloatBuffer(count: config.vocabularySize * config.gateWidth) : nil
        embedded = config.embeddingSize.map { Steps(FloatBuffer(count: steps * rows * $0), rows: rows, width: $0) }
        dEmbedded =
            training
            ? config.embeddingSize.map { Steps(FloatBuffer(count: steps * rows * $0), rows: rows, width: $0) } : nil
    }
}

extension Workspace {
    /// The direction unit `unit` runs in.
    @inline(__always) func direction(_ unit: Int) -> Direction { Direction(reverse: unit % directions == 1) }

    /// Copies rows rowStart ..< rowStart + rows of `state` into every unit's initial slot for a
    /// pass of `steps` steps.
    func loadState(_ state: RecurrentState, rowStart: Int, steps: Int) {
        for (u, L) in layers.enumerated() {
            let slot = direction(u).initial(steps: steps)
            L.h[slot].update(from: state.h(layer: u, row: rowStart, rows: rows), count: L.h.stride)
            if let c = L.c, let stateC = state.c(layer: u, row: rowStart, rows: rows) {
                c[slot].update(from: stateC, count: c.stride)
            }
        }
    }

    /// Copies every unit's state after `steps` steps into rows rowStart ..< rowStart + rows of
    /// `state` (for a reverse unit, the state after it reached the first step).
    func storeState(_ state: RecurrentState, rowStart: Int, afterSteps steps: Int) {
        for (u, L) in layers.enumerated() {
            let slot = direction(u).final(steps: steps)
            state.h(layer: u, row: rowStart, rows: rows).update(from: L.h[slot], count: L.h.stride)
            if let c = L.c, let stateC = state.c(layer: u, row: rowStart, rows: rows) {
                stateC.update(from: c[slot], count: c.stride)
            }
        }
    }

    /// Copies every layer's initial-state gradient into rows rowStart ..< rowStart + rows of `gradient`.
    func storeInitialStateGradient(_ gradient: RecurrentState, rowStart: Int) {
        for (l, L) in layers.enumerated() {
            gradient.h(layer: l, row: rowStart, rows: rows).update(from: L.dh0!.pointer, count: L.h.stride)
            if let dc = L.dc, let c = gradient.c(layer: l, row: rowStart, rows: rows) {
                c.update(from: dc.pointer, count: L.h.stride)
            }
        }
    }
}
