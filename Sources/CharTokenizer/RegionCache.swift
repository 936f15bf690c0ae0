#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Memoizes the output of the slow path for short regions of raw UTF-8.
///
/// A slow region always starts and ends where the segmenter is in a clean state (see
/// `Segmenter`), so its ids depend only on its bytes. Natural text repeats its decomposed
/// letters, conjuncts and emoji sequences constantly, so most regions are found here and
/// utf8proc runs once per distinct region rather than once per occurrence.
struct RegionCache {
    /// Regions longer than this are not cached.
    static let maxKeyLength = 64
    /// At most this many regions are kept; when full, the cache is cleared.
    static let maxEntries = 1 << 15

    private struct Entry {
        var hash: UInt64
        var keyOffset: Int32
        var keyLength: Int32
        var idsOffset: Int32
        var idsCount: Int32
    }

    private var slots: [Int32]
    private var entries: [Entry] = []
    private var keys: [UInt8] = []
    private var ids: [Int32] = []

    init() {
        slots = [Int32](repeating: -1, count: Self.maxEntries * 2)
    }

    /// FNV-1a over the region's bytes.
    @inline(__always)
    static func hash(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for index in 0..<count {
            hash = (hash ^ UInt64(bytes[index])) &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// Appends the cached ids of the region to `out`; false if the region is not cached.
    func lookup(_ bytes: UnsafePointer<UInt8>, _ count: Int, hash: UInt64, into out: IDBuffer) -> Bool {
        slots.withUnsafeBufferPointer { slots in
            entries.withUnsafeBufferPointer { entries in
                keys.withUnsafeBufferPointer { keys in
                    ids.withUnsafeBufferPointer { ids in
                        let mask = slots.count - 1
                        var slot = Int(truncatingIfNeeded: hash) & mask
                        while true {
                            let index = Int(slots[slot])
                            if index < 0 { return false }
                            let entry = entries[index]
                            if entry.hash == hash && Int(entry.keyLength) == count
                                && memcmp(keys.baseAddress! + Int(entry.keyOffset), bytes, count) == 0
                            {
                                let idsCount = Int(entry.idsCount)
                                out.reserveFree(idsCount)
                                (out.base + out.count).update(
                                    from: ids.baseAddress! + Int(entry.idsOffset), count: idsCount)
                                out.count += idsCount
                                return true
                            }
                            slot = (slot + 1) & mask
                        }
                    }
                }
            }
        }
    }

    /// Remembers the ids a region produced.
    mutating func insert(
        _ bytes: UnsafePointer<UInt8>, _ count: Int, hash: UInt64, ids produced: UnsafeBufferPointer<Int32>
    ) {
        if entries.count >= Self.maxEntries {
            entries.removeAll(keepingCapacity: true)
            keys.removeAll(keepingCapacity: true)
            ids.removeAll(keepingCapacity: true)
            for index in slots.indices { slots[index] = -1 }
        }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entries.count)
        entries.append(
            Entry(
                hash: hash, keyOffset: Int32(keys.count), keyLength: Int32(count),
                idsOffset: Int32(ids.count), idsCount: Int32(produced.count)))
        keys.append(contentsOf: UnsafeBufferPointer(start: bytes, count: count))
        ids.append(contentsOf: produced)
    }
}
