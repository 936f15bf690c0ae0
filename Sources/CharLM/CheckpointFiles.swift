import CharNN
import Foundation

/// The tensors of a checkpoint as safetensors files: the weights under PyTorch's state-dict
/// names (model.safetensors), and the optimizer's moments with the hidden state carried between
/// steps (optimizer.safetensors). Each file records the step it belongs to (`charlm_step`).
enum CheckpointFiles {
    // MARK: - Writing

    /// The weights, named and shaped like PyTorch's state dict.
    static func modelFile(_ network: Network, step: Int) -> SafeTensors {
        var file = SafeTensors()
        file.metadata = ["format": "pt", "charlm_step": String(step), "cell": network.config.cell.rawValue]
        network.parameters.withUnsafeBufferPointer { all in
            for info in network.layout.tensors {
                file.add(
                    info.name, shape: info.shape,
                    values: UnsafeBufferPointer(rebasing: all[info.offset..<(info.offset + info.count)]))
            }
        }
        return file
    }

    /// The optimizer's step count and moments (flat over the parameters, in layout order), the
    /// hidden state (layers, batch, hidden), and the averaged weights when the run keeps them.
    static func optimizerFile(_ optimizer: Optimizer, hidden: RecurrentState, averaged: FloatBuffer?, step: Int)
        -> SafeTensors
    {
        var file = SafeTensors()
        file.metadata = ["charlm_step": String(step), "optimizer": optimizer.config.kind.rawValue]
        file.add("step", shape: [1], int64: [Int64(optimizer.step)])
        for name in optimizer.stateNames {
            optimizer.stateBuffer(name)!.withUnsafeBufferPointer { file.add(name, shape: [$0.count], values: $0) }
        }
        let shape = [hidden.layers, hidden.batchSize, hidden.hiddenSize]
        hidden.h.withUnsafeBufferPointer { file.add("hidden.h", shape: shape, values: $0) }
        hidden.c?.withUnsafeBufferPointer { file.add("hidden.c", shape: shape, values: $0) }
        averaged?.withUnsafeBufferPointer { file.add(averagedWeightsName, shape: [$0.count], values: $0) }
        return file
    }

    /// The tensor of optimizer.safetensors that holds the averaged weights (flat, layout order).
    static let averagedWeightsName = "averaged_weights"

    /// The step a file records, if it records one.
    static func step(of file: SafeTensors) -> String? {
        file.metadata["charlm_step"]
    }

    // MARK: - Reading

    /// Checks that `file` holds exactly the tensors of `config`'s network, float32, with their
    /// shapes (not their values).
    static func checkWeights(_ file: SafeTensors, config: NetworkConfig, source: String) throws {
        let layout = ParameterLayout(config: config)
        let expected = Set(layout.tensors.map(\.name))
        if let extra = file.names.first(where: { !expected.contains($0) }) {
            throw CharLMError.invalidFile(
                path: source,
                reason: "holds tensor '\(extra)', which a \(config.cell.rawValue) model of this shape does not have"
            )
        }
        for info in layout.tensors { _ = try file.floatTensor(info.name, shape: info.shape, source: source) }
    }

    /// Reads weights into `network`, checking every name, shape and value.
    static func loadWeights(_ file: SafeTensors, into network: Network, source: String) throws {
        try checkWeights(file, config: network.config, source: source)
        try network.parameters.withUnsafeMutableBufferPointer { all in
            for info in network.layout.tensors {
                let slice = UnsafeMutableBufferPointer(rebasing: all[info.offset..<(info.offset + info.count)])
                guard try file.copyFloats(info.name, shape: info.shape, into: slice, source: source) else {
                    throw CharLMError.invalidFile(
                        path: source, reason: "tensor '\(info.name)' holds NaN or infinite values")
                }
            }
        }
        network.parametersDidChange()
    }

    /// Restores the optimizer's state, the carried hidden state and the averaged weights.
    static func loadOptimizer(
        _ file: SafeTensors, into optimizer: Optimizer, hidden: RecurrentState, averaged: FloatBuffer?, source: String
    ) throws {
        guard file.metadata["optimizer"] == optimizer.config.kind.rawValue else {
            throw CharLMError.invalidFile(
                path: source,
                reason:
                    "holds the state of optimizer \(file.metadata["optimizer"] ?? "?"), but config.json says "
                    + "\(optimizer.config.kind.rawValue)"
            )
        }
        let step = try file.int64s("step", source: source)
        guard step.count == 1, step[0] >= 0 else {
            throw CharLMError.invalidFile(path: source, reason: "bad optimizer step")
        }
        var buffers: [String: [Float]] = [:]
        for name in optimizer.stateNames {
            buffers[name] = try file.floats(name, shape: [optimizer.parameterCount], source: source)
        }
        do { try optimizer.restore(step: Int(step[0]), buffers: buffers) } catch {
            throw CharLMError.invalidFile(path: source, reason: "\(error)")
        }
        let shape = [hidden.layers, hidden.batchSize, hidden.hiddenSize]
        let h = try file.floats("hidden.h", shape: shape, source: source)
        hidden.h.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = h[i] } }
        if let c = hidden.c {
            let values = try file.floats("hidden.c", shape: shape, source: source)
            c.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = values[i] } }
        }
        if let averaged {
            guard file.names.contains(averagedWeightsName) else {
                throw CharLMError.invalidFile(
                    path: source, reason: "holds no averaged weights, but config.json asks for weight averaging")
            }
            let values = try file.floats(averagedWeightsName, shape: [averaged.count], source: source)
            averaged.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = values[i] } }
        }
    }
}

extension Network {
    /// Replaces the weights with those of a safetensors file (PyTorch's state-dict names),
    /// checking every name, shape and value.
    /// - Parameter source: how to name the file in error messages.
    public func loadWeights(_ file: SafeTensors, source: String) throws {
        try CheckpointFiles.loadWeights(file, into: self, source: source)
    }
}
