#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Token ids of a whole corpus, stored compactly: one, two or four bytes per id depending on the
/// vocabulary size (the same idea as nanoGPT's `uint16` `.bin` files).
///
/// ```swift
/// let corpus = try tokenizer.encodeFile(URL(fileURLWithPath: "input.txt"))
/// let firstBatch = corpus.ids(0..<128)      // [Int32]
/// let id = corpus[42]                       // Int32
/// ```
public struct EncodedCorpus: Sendable {
    /// Bytes per stored id.
    public enum Width: Int, Sendable {
        case uint8 = 1
        case uint16 = 2
        case uint32 = 4

        /// The narrowest width that holds every id of a vocabulary of `vocabularySize` tokens.
        public init(vocabularySize: Int) {
            if vocabularySize <= 1 << 8 {
                self = .uint8
            } else if vocabularySize <= 1 << 16 {
                self = .uint16
            } else {
                self = .uint32
            }
        }
    }

    private let storage: CompactIDStorage
    /// Number of ids.
    public let count: Int
    /// Size of the vocabulary the ids index.
    public let vocabularySize: Int

    /// Bytes per stored id.
    public var width: Width { storage.width }

    /// Wraps ids already known to be in `0..<vocabularySize`.
    public init(ids: [Int32], vocabularySize: Int) throws {
        let storage = CompactIDStorage(width: Width(vocabularySize: vocabularySize), capacity: ids.count)
        for id in ids where id < 0 || Int(id) >= vocabularySize {
            throw TokenizerError.invalidTokenID(Int64(id), vocabularySize: vocabularySize)
        }
        ids.withUnsafeBufferPointer { storage.append($0) }
        storage.shrinkToFit()
        self.init(storage: storage, vocabularySize: vocabularySize)
    }

    init(storage: CompactIDStorage, vocabularySize: Int) {
        self.storage = storage
        self.count = storage.count
        self.vocabularySize = vocabularySize
    }

    /// The id at `index` (`0..<count`).
    public subscript(index: Int) -> Int32 {
        precondition(index >= 0 && index < count, "EncodedCorpus index \(index) out of range 0..<\(count)")
        return storage.id(at: index)
    }

    /// The ids in `range` (clamped to `0..<count`).
    public func ids(_ range: Range<Int>) -> [Int32] {
        let clamped = range.clamped(to: 0..<count)
        return storage.ids(clamped)
    }

    /// All ids.
    public var ids: [Int32] { storage.ids(0..<count) }

    /// The compact little-endian bytes (`count * width.rawValue` of them).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.base, count: count * storage.width.rawValue))
    }
}

extension EncodedCorpus: Equatable {
    public static func == (lhs: EncodedCorpus, rhs: EncodedCorpus) -> Bool {
        lhs.vocabularySize == rhs.vocabularySize && lhs.count == rhs.count && lhs.ids == rhs.ids
    }
}

/// The memory of an `EncodedCorpus`: one `malloc` block grown with `realloc`, so that growing a
/// gigabyte array remaps pages instead of copying them, and pages never written are never
/// resident. Mutated only while the corpus is being built, immutable once shared.
final class CompactIDStorage: @unchecked Sendable {
    let width: EncodedCorpus.Width
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var count = 0
    private var capacity = 0

    init(width: EncodedCorpus.Width, capacity: Int) {
        self.width = width
        reserve(max(capacity, 16))
    }

    deinit {
        free(base)
    }

    private func reserve(_ newCapacity: Int) {
        guard newCapacity > capacity else { return }
        guard let grown = realloc(base, newCapacity * width.rawValue) else {
            fatalError("out of memory: cannot hold \(newCapacity) token ids")
        }
        base = grown
        capacity = newCapacity
        adviseHugePages()
    }

    /// Asks Linux to back the (large) block with transparent huge pages: one page fault per
    /// 2 MiB instead of per 4 KiB while the ids are written.
    private func adviseHugePages() {
        #if os(Linux)
        let bytes = capacity * width.rawValue
        guard bytes >= 8 << 20, let base else { return }
        let huge = 2 << 20
        let start = (Int(bitPattern: base) + huge - 1) & ~(huge - 1)
        let end = (Int(bitPattern: base) + bytes) & ~(huge - 1)
        if end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) {
            _ = madvise(pointer, end - start, 14 /* MADV_HUGEPAGE */)
        }
        #endif
    }

    /// Makes room for `additional` more ids.
    func reserveAdditional(_ additional: Int) {
        if count + additional > capacity {
            reserve(max(count + additional, capacity + capacity / 2))
        }
    }

    /// Appends ids (each in range for `width`).
    func append(_ ids: UnsafeBufferPointer<Int32>) {
        reserveAdditional(ids.count)
        write(ids, at: count)
        count += ids.count
    }

    /// Writes ids at `index` within the reserved capacity, without changing `count`; several
    /// threads may write disjoint ranges at once. Call `commit` afterwards.
    func write(_ ids: UnsafeBufferPointer<Int32>, at index: Int) {
        precondition(
            index >= 0 && index + ids.count <= capacity,
            "ids written at \(index)..<\(index + ids.count), capacity \(capacity)")
        guard let base, let source = ids.baseAddress else { return }
        switch width {
        case .uint8:
            let destination = base.assumingMemoryBound(to: UInt8.self) + index
            for offset in 0..<ids.count { destination[offset] = UInt8(truncatingIfNeeded: source[offset]) }
        case .uint16:
            let destination = base.assumingMemoryBound(to: UInt16.self) + index
            for offset in 0..<ids.count {
                destination[offset] = UInt16(truncatingIfNeeded: source[offset]).littleEndian
            }
        case .uint32:
            let destination = base.assumingMemoryBound(to: UInt32.self) + index
            for offset in 0..<ids.count {
                destination[offset] = UInt32(bitPattern: source[offset]).littleEndian
            }
        }
    }

    /// Counts `written` ids written with `write(_:at:)` after the current end.
    func commit(_ written: Int) {
        count = min(count + written, capacity)
    }

    func shrinkToFit() {
        guard count < capacity, count > 0, let shrunk = realloc(base, count * width.rawValue) else { return }
        base = shrunk
        capacity = count
    }

    func id(at index: Int) -> Int32 {
        guard let base else { return 0 }
        switch width {
        case .uint8: return Int32(base.load(fromByteOffset: index, as: UInt8.self))
        case .uint16: return Int32(UInt16(littleEndian: base.load(fromByteOffset: index * 2, as: UInt16.self)))
        case .uint32:
            return Int32(bitPattern: UInt32(littleEndian: base.load(fromByteOffset: index * 4, as: UInt32.self)))
        }
    }

    func ids(_ range: Range<Int>) -> [Int32] {
        guard let base, !range.isEmpty else { return [] }
        return [Int32](unsafeUninitializedCapacity: range.count) { buffer, initialized in
            switch width {
            case .uint8:
                let source = base.assumingMemoryBound(to: UInt8.self) + range.lowerBound
                for index in 0..<range.count { buffer[index] = Int32(source[index]) }
            case .uint16:
                let source = base.assumingMemoryBound(to: UInt16.self) + range.lowerBound
                for index in 0..<range.count { buffer[index] = Int32(UInt16(littleEndian: source[index])) }
            case .uint32:
                let source = base.assumingMemoryBound(to: UInt32.self) + range.lowerBound
                for index in 0..<range.count {
                    buffer[index] = Int32(bitPattern: UInt32(littleEndian: source[index]))
                }
            }
            initialized = range.count
        }
    }
}
