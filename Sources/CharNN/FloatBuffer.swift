import Foundation

/// A fixed-size, 64-byte aligned buffer of `Float`: the one place where CharNN owns raw memory.
///
/// Buffers never move or grow, so the kernels can hold their base address for the length of a
/// call. Reach the memory through `withUnsafeMutableBufferPointer` from outside CharNN; inside,
/// the layers use `pointer` directly between kernel calls.
///
/// ```swift
/// let b = FloatBuffer(count: 4)
/// b.withUnsafeMutableBufferPointer { $0[0] = 1 }
/// ```
public final class FloatBuffer: @unchecked Sendable {
    /// Number of floats.
    public let count: Int
    let pointer: UnsafeMutablePointer<Float>
    private let allocation: UnsafeMutableRawPointer
    /// Bytes mapped for a large buffer (0: the buffer came from calloc).
    private let mappedBytes: Int

    /// Buffers this large are mapped on their own and asked to use 2 MB pages where the
    /// system offers them (Linux's transparent huge pages): a 13 MB model then costs a
    /// handful of page faults instead of thousands, and fewer TLB misses while it runs.
    static let hugePageThreshold = 4 << 20

    /// Allocates `count` floats set to zero. Large buffers come zeroed from the system
    /// (calloc or mmap), so untouched pages cost nothing.
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer count must not be negative")
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        #if os(Linux)
        if bytes >= Self.hugePageThreshold {
            let huge = 2 << 20
            // Room for a 2 MB-aligned start and a whole number of 2 MB pages after it.
            let length = bytes + 2 * huge
            let raw = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if let raw, raw != MAP_FAILED {
                let aligned = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: raw) + huge - 1) & ~(huge - 1))!
                _ = madvise(aligned, (bytes + huge - 1) & ~(huge - 1), MADV_HUGEPAGE)
                allocation = raw
                mappedBytes = length
                pointer = aligned.bindMemory(to: Float.self, capacity: max(count, 1))
                return
            }
        }
        #endif
        guard let raw = calloc(bytes + 64, 1) else {
            fatalError("out of memory allocating \(count) floats")
        }
        allocation = raw
        mappedBytes = 0
        let aligned = (Int(bitPattern: raw) + 63) & ~63
        pointer = UnsafeMutableRawPointer(bitPattern: aligned)!.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// A buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit {
        if mappedBytes > 0 {
            munmap(allocation, mappedBytes)
        } else {
            free(allocation)
        }
    }

    /// Calls `body` with the buffer's memory.
    @inlinable
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R
    {
        try body(UnsafeMutableBufferPointer(start: mutableBase, count: count))
    }

    /// Calls `body` with the buffer's memory, read-only.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: mutableBase, count: count))
    }

    @usableFromInline
    var mutableBase: UnsafeMutablePointer<Float> { pointer }

    /// A pointer to element `offset`, checked against the buffer's bounds in debug builds.
    @inline(__always)
    func at(_ offset: Int, count needed: Int = 0) -> UnsafeMutablePointer<Float> {
        #if DEBUG
        precondition(
            offset >= 0 && offset + needed <= count,
            "FloatBuffer access [\(offset), \(offset + needed)) outside 0..<\(count)")
        #endif
        return pointer + offset
    }

    /// Sets every element to zero.
    public func zero() {
        pointer.update(repeating: 0, count: count)
    }

    /// Copies every element of `other`, which must have the same count.
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer copy between different sizes")
        pointer.update(from: other.pointer, count: count)
    }

    /// Moves every element `weight` of the way toward `other`'s (same count): x += weight (o - x),
    /// one step of an exponential moving average.
    public func move(toward other: FloatBuffer, weight: Float) {
        precondition(other.count == count, "FloatBuffer average between different sizes")
        let x = pointer, o = UnsafePointer(other.pointer)
        for i in 0..<count { x[i] += weight * (o[i] - x[i]) }
    }

    /// The elements as an array.
    public var array: [Float] {
        Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// Element access, bounds-checked.
    public subscript(index: Int) -> Float {
        get {
            precondition(index >= 0 && index < count, "FloatBuffer index \(index) outside 0..<\(count)")
            return pointer[index]
        }
        set {
            precondition(index >= 0 && index < count, "FloatBuffer index \(index) outside 0..<\(count)")
            pointer[index] = newValue
        }
    }
}
