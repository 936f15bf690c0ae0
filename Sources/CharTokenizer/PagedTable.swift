/// A lookup table over all Unicode scalars (0…0x10FFFF), stored as 256-entry pages so that
/// pages holding only the default value share one copy.
struct PagedTable<Value: BitwiseCopyable & Sendable & Equatable>: Sendable, Equatable {
    static var pageCount: Int { 0x1100 }

    /// Offset of each page in `storage`; 0 is the shared default page.
    private(set) var offsets: [Int32]
    /// Page contents, page after page; the first page holds only the default value.
    private(set) var storage: [Value]

    init(defaultValue: Value) {
        offsets = [Int32](repeating: 0, count: Self.pageCount)
        storage = [Value](repeating: defaultValue, count: 256)
    }

    /// The value for `scalar`; the default value for anything outside the Unicode range.
    subscript(scalar: UInt32) -> Value {
        get {
            guard scalar < 0x110000 else { return storage[0] }
            return storage[Int(offsets[Int(scalar >> 8)]) + Int(scalar & 0xFF)]
        }
        set {
            guard scalar < 0x110000 else { return }
            let page = Int(scalar >> 8)
            if offsets[page] == 0 {
                if newValue == storage[0] { return }
                offsets[page] = Int32(storage.count)
                storage.append(contentsOf: storage[0..<256])
            }
            storage[Int(offsets[page]) + Int(scalar & 0xFF)] = newValue
        }
    }

    /// Runs `body` with an unchecked lookup for hot loops.
    func withLookup<R>(_ body: (PagedLookup<Value>) throws -> R) rethrows -> R {
        try offsets.withUnsafeBufferPointer { offsets in
            try storage.withUnsafeBufferPointer { storage in
                try body(PagedLookup(offsets: offsets.baseAddress!, storage: storage.baseAddress!))
            }
        }
    }
}

/// Unchecked view of a `PagedTable`, valid inside `withLookup`. Callers pass scalars
/// below 0x110000 only (the UTF-8 decoder guarantees it).
struct PagedLookup<Value: BitwiseCopyable> {
    let offsets: UnsafePointer<Int32>
    let storage: UnsafePointer<Value>

    @inline(__always)
    func callAsFunction(_ scalar: UInt32) -> Value {
        storage[Int(offsets[Int(scalar &>> 8)]) &+ Int(scalar & 0xFF)]
    }
}
