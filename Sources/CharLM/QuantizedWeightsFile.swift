import CharNN
import Foundation

/// The int8 weights saved beside a float32 weights file (`model.safetensors` →
/// `model.int8.safetensors`), so that one-stream int8 generation starts without reading the
/// float32 weights or rounding them again: at 2x512 (vocabulary 65) that is 3.8 MB mapped
/// instead of 13.3 MB mapped, copied and quantized.
///
/// A safetensors file holding every tensor of the network's layout: the dense matrices as I8
/// with their per-row scales beside them (`NAME.scale`, F32), the rest F32 (float32 tensors
/// first, so that they stay 4-byte aligned in a mapped file). Its metadata names the float32
/// file it was made from by size, modification time, inode and device; a file made from other
/// weights, or one that fails any check, is ignored (and replaced when `generate` next saves
/// one). The values are what quantizing the float32 file gives, so a session on either
/// computes the same logits bit for bit.
enum QuantizedWeightsFile {
    static let format = "charlm-int8-1"

    /// `NAME.int8.safetensors` beside `NAME.safetensors`.
    static func url(besides weights: URL) -> URL {
        let name = weights.lastPathComponent
        let stem = name.hasSuffix(".safetensors") ? String(name.dropLast(".safetensors".count)) : name
        return weights.deletingLastPathComponent().appendingPathComponent(stem + ".int8.safetensors")
    }

    /// Size, modification time, inode and device of a file, or nil when it cannot be read.
    static func identity(of url: URL) -> String? {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        #if os(Linux)
        let seconds = info.st_mtim.tv_sec, nanoseconds = info.st_mtim.tv_nsec
        #else
        let seconds = info.st_mtimespec.tv_sec, nanoseconds = info.st_mtimespec.tv_nsec
        #endif
        return "\(info.st_size):\(seconds).\(nanoseconds):\(info.st_ino):\(info.st_dev)"
    }

    /// The file's bytes for `weights`, made from the float32 file with identity `source`.
    static func encoded(_ weights: QuantizedWeights, source: String, step: String?) -> Data {
        var file = SafeTensors()
        file.metadata = ["format": format, "charlm_source": source]
        if let step { file.metadata["charlm_step"] = step }
        let pairs = zip(weights.layout.tensors, weights.tensors)
        for (info, tensor) in pairs {
            if case .float32(let values) = tensor { file.add(info.name, shape: info.shape, values: values) }
        }
        for (info, tensor) in pairs {
            if case .int8(_, let scales) = tensor {
                file.add(info.name + ".scale", shape: [scales.count], values: scales)
            }
        }
        for (info, tensor) in pairs {
            if case .int8(let q, _) = tensor { file.add(info.name, shape: info.shape, int8: q) }
        }
        return file.encoded()
    }

    /// The int8 weights saved for the float32 file with identity `source`, or nil when there
    /// are none, they were made from other weights, or the file fails a check.
    static func load(_ url: URL, config: NetworkConfig, source: String) -> QuantizedWeights? {
        guard FileManager.default.fileExists(atPath: url.path), let file = try? SafeTensors(contentsOf: url) else {
            return nil
        }
        return file.quantizedWeights(config: config, source: source)
    }
}

extension SafeTensors {
    /// The int8 weights of `config`'s network that this file holds (the format of
    /// `model.int8.safetensors`), when it says it was made from the float32 file with identity
    /// `source`; nil when it was made from another, or fails any check. The weights point into
    /// this file's storage, which they keep alive.
    public func quantizedWeights(config: NetworkConfig, source: String) -> QuantizedWeights? {
        #if _endian(big)
        return nil
        #else
        let file = self
        guard file.metadata["format"] == QuantizedWeightsFile.format, file.metadata["charlm_source"] == source else {
            return nil
        }
        let owner = QuantizedWeightsFile.Owner(file)
        let int8 = QuantizedWeights.int8Tensors(config)
        var byName: [String: QuantizedWeights.Tensor] = [:]
        for name in file.names where !name.hasSuffix(".scale") || int8[String(name.dropLast(6))] == nil {
            guard let tensor = file.tensors[name] else { return nil }
            switch tensor.dtype {
            case .f32:
                guard let values = owner.pointer(tensor, as: Float.self) else { return nil }
                byName[name] = .float32(values)
            case .i8:
                guard let values = owner.pointer(tensor, as: Int8.self), let scale = file.tensors[name + ".scale"],
                    scale.dtype == .f32, let scales = owner.pointer(scale, as: Float.self)
                else { return nil }
                byName[name] = .int8(values, scales: scales)
            default: return nil
            }
        }
        guard byName.count + int8.count == file.names.count,
            let weights = try? QuantizedWeights(config: config, tensors: byName, owner: owner)
        else { return nil }
        // Float32 values (tensors and scales) are only read as floats when they are aligned.
        for tensor in weights.tensors {
            let floats: UnsafeBufferPointer<Float>
            switch tensor {
            case .float32(let values): floats = values
            case .int8(_, let scales): floats = scales
            }
            if let base = floats.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment != 0 { return nil }
        }
        return weights
        #endif
    }
}

extension QuantizedWeightsFile {
    /// Keeps a loaded file, and so the memory its tensors point into, alive.
    final class Owner {
        let file: SafeTensors
        init(_ file: SafeTensors) { self.file = file }

        /// The tensor's bytes as `T`s. The file's storage does not move while it is alive: a
        /// mapping, or one Data whose tensors are slices of it.
        func pointer<T>(_ tensor: SafeTensors.Tensor, as: T.Type) -> UnsafeBufferPointer<T>? {
            guard tensor.bytes.count == tensor.count * MemoryLayout<T>.stride else { return nil }
            let base = tensor.bytes.withUnsafeBytes { $0.baseAddress }
            guard let base else { return tensor.count == 0 ? UnsafeBufferPointer(start: nil, count: 0) : nil }
            return UnsafeBufferPointer(start: base.assumingMemoryBound(to: T.self), count: tensor.count)
        }
    }
}
