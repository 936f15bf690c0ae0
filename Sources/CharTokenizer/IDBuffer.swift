/// A growable buffer of `Int32` that the hot encoding loop writes through a raw pointer.
/// All pointer arithmetic of the encoder lives here and in `Segmenter.process`.
final class IDBuffer {
    private(set) var base: UnsafeMutablePointer<Int32>
    private(set) var capacity: Int
    /// Number of initialized elements; the encoder moves it directly when writing through `base`.
    var count: Int = 0

    init(capacity: Int = 1024) {
        self.capacity = max(capacity, 16)
        base = UnsafeMutablePointer<Int32>.allocate(capacity: self.capacity)
    }

    deinit {
        base.deallocate()
    }

    /// Makes room for at least `free` more elements.
    @inline(__always)
    func reserveFree(_ free: Int) {
        if capacity - count < free { grow(to: count + free) }
    }

    private func grow(to minimum: Int) {
        let newCapacity = max(minimum, capacity * 2)
        let newBase = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    func append(_ value: Int32) {
        if count == capacity { grow(to: count + 1) }
        base[count] = value
        count += 1
    }

    func removeAll() {
        count = 0
    }

    var elements: UnsafeBufferPointer<Int32> {
        UnsafeBufferPointer(start: base, count: count)
    }

    var array: [Int32] {
        Array(elements)
    }
}
