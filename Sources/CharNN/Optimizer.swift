import CKernels
import Foundation

/// Which update rule an `Optimizer` applies.
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    case adam, adamw, rmsprop, sgd
}

/// Hyper-parameters of an optimizer, with PyTorch's defaults and meanings.
public struct OptimizerConfig: Codable, Sendable, Equatable {
    public var kind: OptimizerKind
    public var learningRate: Float
    /// Adam/AdamW moment decay rates.
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    /// Added to the denominator (Adam, AdamW, RMSprop).
    public var epsilon: Float = 1e-8
    /// L2 penalty added to the gradient (Adam, RMSprop, SGD), or decoupled decay (AdamW).
    public var weightDecay: Float = 0
    /// Momentum (SGD, RMSprop).
    public var momentum: Float = 0
    /// SGD only.
    public var dampening: Float = 0
    public var nesterov: Bool = false
    /// RMSprop's smoothing constant, and whether it centres by the mean gradient.
    public var alpha: Float = 0.99
    public var centered: Bool = false

    public init(kind: OptimizerKind, learningRate: Float) {
        self.kind = kind
        self.learningRate = learningRate
        if kind == .adamw { weightDecay = 0.01 }
    }

    /// Checks the values; throws `NetworkError.invalidConfig` naming the first bad one.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw NetworkError.invalidConfig(message) } }
        try check(learningRate.isFinite && learningRate > 0, "learning rate must be positive, got \(learningRate)")
        try check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "betas must be in [0, 1), got \(beta1), \(beta2)")
        try check(epsilon.isFinite && epsilon >= 0, "epsilon must not be negative, got \(epsilon)")
        try check(weightDecay.isFinite && weightDecay >= 0, "weight decay must not be negative, got \(weightDecay)")
        try check(momentum >= 0 && momentum < 1, "momentum must be in [0, 1), got \(momentum)")
        try check(alpha >= 0 && alpha < 1, "alpha must be in [0, 1), got \(alpha)")
        try check(
            !nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum needs momentum > 0 and no dampening")
    }
}

/// A first-order optimizer over one flat parameter buffer, following PyTorch's update formulas.
/// Its whole state (step count and moment buffers) can be saved and restored exactly.
public final class Optimizer: @unchecked Sendable {
    public let config: OptimizerConfig
    public let parameterCount: Int
    /// Number of updates applied so far.
    public private(set) var step: Int = 0
    private var buffers: [String: FloatBuffer]

    public init(config: OptimizerConfig, parameterCount: Int) throws {
        try config.validate()
        self.config = config
        self.parameterCount = parameterCount
        var names: [String] = []
        switch config.kind {
        case .adam, .adamw: names = ["exp_avg", "exp_avg_sq"]
        case .rmsprop:
            names = ["square_avg"]
            if config.centered { names.append("grad_avg") }
            if config.momentum > 0 { names.append("momentum_buffer") }
        case .sgd:
            if config.momentum > 0 { names.append("momentum_buffer") }
        }
        buffers = Dictionary(uniqueKeysWithValues: names.map { ($0, FloatBuffer(count: parameterCount)) })
    }

    /// Applies one update to `parameters` from `gradients`, at `learningRate` (the configured
    /// rate unless a schedule passes another).
    public func update(parameters: FloatBuffer, gradients: FloatBuffer, learningRate: Float? = nil) {
        precondition(
            parameters.count == parameterCount && gradients.count == parameterCount, "optimizer buffers differ in size")
        let lr = learningRate ?? config.learningRate
        let c = config, n = parameterCount
        step += 1
        let p = parameters.pointer, g = gradients.pointer
        switch c.kind {
        case .adam, .adamw:
            let bc1 = 1 - pow(Double(c.beta1), Double(step))
            let bc2 = 1 - pow(Double(c.beta2), Double(step))
            ck_adam(
                n, p, g, buffers["exp_avg"]!.pointer, buffers["exp_avg_sq"]!.pointer,
                lr, c.beta1, c.beta2, c.epsilon, c.weightDecay, c.kind == .adamw ? 1 : 0,
                Float(Double(lr) / bc1), Float(bc2.squareRoot()))
        case .rmsprop:
            ck_rmsprop(
                n, p, g, buffers["square_avg"]!.pointer, buffers["grad_avg"]?.pointer,
                buffers["momentum_buffer"]?.pointer,
                lr, c.alpha, c.epsilon, c.weightDecay, c.momentum)
        case .sgd:
            ck_sgd(
                n, p, g, buffers["momentum_buffer"]?.pointer, lr, c.momentum, c.dampening, c.weightDecay,
                c.nesterov ? 1 : 0, step == 1 ? 1 : 0)
        }
    }

    // MARK: - State

    /// Names of the state buffers (PyTorch's names: exp_avg, exp_avg_sq, square_avg, …).
    public var stateNames: [String] { buffers.keys.sorted() }

    /// The state buffer called `name`.
    public func stateBuffer(_ name: String) -> FloatBuffer? { buffers[name] }

    /// Restores a saved state: the step count and every buffer named in `stateNames`.
    public func restore(step: Int, buffers saved: [String: [Float]]) throws {
        guard step >= 0 else { throw NetworkError.invalidInput("optimizer step must not be negative, got \(step)") }
        for name in stateNames {
            guard let values = saved[name] else { throw NetworkError.missingTensor("optimizer state '\(name)'") }
            guard values.count == parameterCount else {
                throw NetworkError.shapeMismatch(
                    "optimizer state '\(name)' has \(values.count) values, expected \(parameterCount)")
            }
        }
        for name in stateNames {
            let values = saved[name]!
            values.withUnsafeBufferPointer {
                buffers[name]!.pointer.update(from: $0.baseAddress!, count: parameterCount)
            }
        }
        self.step = step
    }
}

/// Global gradient norm and clipping, as `torch.nn.utils.clip_grad_norm_`.
public enum GradientClipping {
    /// The L2 norm of every gradient together.
    public static func norm(_ gradients: FloatBuffer) -> Double {
        ck_sumsq(gradients.count, gradients.pointer).squareRoot()
    }

    /// The L2 norm of `count` gradients starting at `offset`.
    public static func norm(_ gradients: FloatBuffer, offset: Int, count: Int) -> Double {
        ck_sumsq(count, gradients.at(offset, count: count)).squareRoot()
    }

    /// Scales the gradients so that their global norm is at most `maxNorm`.
    /// - Returns: the norm before clipping.
    @discardableResult
    public static func clip(_ gradients: FloatBuffer, maxNorm: Float) -> Double {
        let total = norm(gradients)
        let coefficient = Double(maxNorm) / (total + 1e-6)
        if coefficient < 1 { ck_scale(gradients.count, Float(coefficient), gradients.pointer) }
        return total
    }

    /// Whether every gradient is finite.
    public static func allFinite(_ buffer: FloatBuffer) -> Bool {
        ck_all_finite(buffer.count, buffer.pointer) != 0
    }
}
