import Foundation

/// Reader and writer of the safetensors format (huggingface/safetensors): an 8-byte
/// little-endian header length N, N bytes of JSON describing each tensor
/// (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
/// then the tensors' bytes, back to back, little-endian.
///
/// ```swift
/// var file = SafeTensors()
/// file.add("out.bias", shape: [65], values: bias)
/// try file.encoded().write(to: url)
/// let back = try SafeTensors(data: Data(contentsOf: url), source: url.path)
/// ```
public struct SafeTensors: Sendable {
    /// Element types this implementation reads and writes.
    public enum DType: String, Sendable, CaseIterable {
        case f32 = "F32", f64 = "F64", i64 = "I64", i32 = "I32", u8 = "U8", i8 = "I8"
        public var size: Int {
            switch self {
            case .f32, .i32: 4
            case .f64, .i64: 8
            case .u8, .i8: 1
            }
        }
    }

    public struct Tensor: Sendable, Equatable {
        public let dtype: DType
        public let shape: [Int]
        /// The raw little-endian bytes.
        public let bytes: Data
        public var count: Int { shape.reduce(1, *) }
    }

    /// Tensors in file order.
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: Tensor] = [:]
    /// The header's free-form string metadata.
    public var metadata: [String: String] = [:]

    public init() {}

    // MARK: - Building

    /// Adds (or replaces) a float32 tensor.
    public mutating func add(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
        precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) does not hold \(values.count) values")
        var data = Data(count: values.count * 4)
        data.withUnsafeMutableBytes { raw in
            let out = raw.bindMemory(to: UInt32.self)
            for i in 0..<values.count { out[i] = values[i].bitPattern.littleEndian }
        }
        add(name, Tensor(dtype: .f32, shape: shape, bytes: data))
    }

    public mutating func add(_ name: String, shape: [Int], values: [Float]) {
        values.withUnsafeBufferPointer { add(name, shape: shape, values: $0) }
    }

    /// Adds (or replaces) an int64 tensor.
    public mutating func add(_ name: String, shape: [Int], int64 values: [Int64]) {
        precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) does not hold \(values.count) values")
        var data = Data(count: values.count * 8)
        data.withUnsafeMutableBytes { raw in
            let out = raw.bindMemory(to: Int64.self)
            for i in 0..<values.count { out[i] = values[i].littleEndian }
        }
        add(name, Tensor(dtype: .i64, shape: shape, bytes: data))
    }

    /// Adds (or replaces) an int8 tensor.
    public mutating func add(_ name: String, shape: [Int], int8 values: UnsafeBufferPointer<Int8>) {
        precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) does not hold \(values.count) values")
        add(name, Tensor(dtype: .i8, shape: shape, bytes: Data(buffer: values)))
    }

    private mutating func add(_ name: String, _ tensor: Tensor) {
        if tensors[name] == nil { names.append(name) }
        tensors[name] = tensor
    }

    /// The file's bytes.
    public func encoded() -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for name in names {
            let t = tensors[name]!
            header[name] =
                ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
                as [String: Any]
            offset += t.bytes.count
        }
        var headerBytes = [UInt8](
            (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8))
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = Data(capacity: 8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for name in names { out.append(tensors[name]!.bytes) }
        return out
    }

    // MARK: - Reading

    /// Parses and validates a file's bytes.
    /// - Parameter source: the path, for error messages.
    /// - Throws: `CharLMError.invalidFile` saying what is wrong.
    public init(data: Data, source: String) throws {
        func bad(_ reason: String) -> CharLMError {
            .invalidFile(path: source, reason: "not a valid safetensors file: \(reason)")
        }
        guard data.count >= 8 else { throw bad("\(data.count) bytes is too short for a header (truncated?)") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        guard headerLength <= 100_000_000 else { throw bad("header length \(headerLength) is implausible") }
        guard headerLength <= UInt64(data.count - 8) else {
            throw bad("header of \(headerLength) bytes runs past the end of the \(data.count)-byte file (truncated?)")
        }
        let headerData = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(headerLength)))
        guard headerData.first == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        guard let object = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        let bodyStart = 8 + Int(headerLength)
        let bodyCount = data.count - bodyStart
        var spans: [(name: String, begin: Int, end: Int)] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v as? String else { throw bad("metadata value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw bad("entry '\(name)' is not an object") }
            guard let dtypeName = entry["dtype"] as? String else { throw bad("tensor '\(name)' has no dtype") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw bad("tensor '\(name)' has unsupported dtype \(dtypeName)")
            }
            guard let shapeValues = entry["shape"] as? [Any] else { throw bad("tensor '\(name)' has no shape") }
            let shape = try shapeValues.map { v -> Int in
                guard let n = Self.exactInteger(v), n >= 0 else { throw bad("tensor '\(name)' has a bad shape") }
                return n
            }
            guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2,
                let begin = Self.exactInteger(offsets[0]), let end = Self.exactInteger(offsets[1]),
                begin >= 0, begin <= end
            else { throw bad("tensor '\(name)' has bad data_offsets") }
            guard end <= bodyCount else {
                throw bad("tensor '\(name)' ends at byte \(end) of a \(bodyCount)-byte data section (truncated?)")
            }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw bad("tensor '\(name)' shape \(shape) overflows") }
                count = product
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow else { throw bad("tensor '\(name)' shape \(shape) overflows") }
            guard bytes == end - begin else {
                throw bad("tensor '\(name)' of shape \(shape) needs \(bytes) bytes, its offsets span \(end - begin)")
            }
            spans.append((name, begin, end))
            tensors[name] = Tensor(
                dtype: dtype, shape: shape,
                bytes: data[(data.startIndex + bodyStart + begin)..<(data.startIndex + bodyStart + end)])
        }
        spans.sort { $0.begin < $1.begin || ($0.begin == $1.begin && $0.end < $1.end) }
        var position = 0
        for span in spans {
            guard span.begin == position else {
                throw bad(
                    span.begin < position
                        ? "tensor '\(span.name)' overlaps another" : "gap before tensor '\(span.name)'")
            }
            position = span.end
        }
        guard position == bodyCount else { throw bad("\(bodyCount - position) bytes after the last tensor") }
        names = spans.map(\.name)
    }

    /// A JSON number that is exactly an integer (not a Bool, a fraction, or out of Int's range).
    private static func exactInteger(_ value: Any) -> Int? {
        // JSON's true and false come back as NSNumbers of type "c" (char); numbers as "i", "q" or "d".
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        return Int(number.stringValue)
    }

    /// Reads and validates a file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Self.mapped(url) ?? Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) {
                throw CharLMError.missingFile(path: url.path, hint: "")
            }
            throw CharLMError.invalidFile(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, source: url.path)
    }

    /// The file mapped read-only with its pages populated up front (one system call instead of
    /// a page fault per few pages while the weights are copied), or nil where that is not
    /// available (then Foundation maps it).
    private static func mapped(_ url: URL) -> Data? {
        #if os(Linux)
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return nil }
        let length = Int(info.st_size)
        let base = mmap(nil, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0)
        guard let base, base != MAP_FAILED else { return nil }
        return Data(bytesNoCopy: base, count: length, deallocator: .custom { pointer, count in munmap(pointer, count) })
        #else
        return nil
        #endif
    }

    /// Tensor `name`, checked to be float32 of `shape`.
    public func floatTensor(_ name: String, shape: [Int], source: String) throws -> Tensor {
        guard let t = tensors[name] else {
            throw CharLMError.invalidFile(path: source, reason: "has no tensor '\(name)'")
        }
        guard t.dtype == .f32 else {
            throw CharLMError.invalidFile(path: source, reason: "tensor '\(name)' is \(t.dtype.rawValue), expected F32")
        }
        guard shape == t.shape else {
            throw CharLMError.invalidFile(
                path: source, reason: "tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return t
    }

    /// The float32 values of tensor `name`, checked against `shape` when given.
    public func floats(_ name: String, shape: [Int]? = nil, source: String) throws -> [Float] {
        guard let t = tensors[name] else {
            throw CharLMError.invalidFile(path: source, reason: "has no tensor '\(name)'")
        }
        guard t.dtype == .f32 else {
            throw CharLMError.invalidFile(path: source, reason: "tensor '\(name)' is \(t.dtype.rawValue), expected F32")
        }
        if let shape, shape != t.shape {
            throw CharLMError.invalidFile(
                path: source, reason: "tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return [Float](unsafeUninitializedCapacity: t.count) { out, initialized in
            t.bytes.withUnsafeBytes { raw in
                for i in 0..<t.count {
                    out[i] = Float(
                        bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
            }
            initialized = t.count
        }
    }

    /// Copies the float32 values of tensor `name` (of exactly `shape`) into `destination`.
    /// - Returns: whether every value is finite.
    public func copyFloats(
        _ name: String, shape: [Int], into destination: UnsafeMutableBufferPointer<Float>, source: String
    ) throws -> Bool {
        let t = try floatTensor(name, shape: shape, source: source)
        guard destination.count == t.count else {
            throw CharLMError.invalidFile(
                path: source, reason: "tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        guard let base = destination.baseAddress, t.count > 0 else { return true }
        t.bytes.withUnsafeBytes { raw in
            #if _endian(little)
            UnsafeMutableRawPointer(base).copyMemory(from: raw.baseAddress!, byteCount: t.count * 4)
            #else
            for i in 0..<t.count {
                destination[i] = Float(
                    bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
            #endif
        }
        // A float is NaN or infinite when its exponent bits are all ones; OR-ing the test over
        // the whole tensor (no early exit) lets the loop run in vector registers.
        return UnsafeRawPointer(base).withMemoryRebound(to: UInt32.self, capacity: t.count) { bits in
            var nonFinite: UInt32 = 0
            for i in 0..<t.count { nonFinite |= (bits[i] & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
            return nonFinite == 0
        }
    }

    /// The int64 values of tensor `name`.
    public func int64s(_ name: String, source: String) throws -> [Int64] {
        guard let t = tensors[name] else {
            throw CharLMError.invalidFile(path: source, reason: "has no tensor '\(name)'")
        }
        guard t.dtype == .i64 else {
            throw CharLMError.invalidFile(path: source, reason: "tensor '\(name)' is \(t.dtype.rawValue), expected I64")
        }
        return t.bytes.withUnsafeBytes { raw in
            (0..<t.count).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        }
    }
}
