import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a UTF-8 stream may be cut so that segmenting the parts separately gives exactly the
/// units of the whole.
///
/// A cut between bytes `a` and `b` is safe
/// - right after an LF: LF never composes or reorders with what follows, a grapheme always ends
///   after it, and CRLF stays on one side;
/// - between two ASCII bytes when the first is not CR;
/// - between two scalars that are both fast for graphemes (see `NormalizationTables.Kind`).
/// LF and ASCII bytes never occur inside a multi-byte sequence, even an invalid one, so these
/// cuts never split a UTF-8 sequence or a maximal invalid subpart.
enum SafeCuts {
    /// The largest safe cut position in `1..<bytes.count`, or nil if there is none.
    static func lastCut(in bytes: UnsafeBufferPointer<UInt8>, kinds: PagedTable<UInt8>) -> Int? {
        guard let base = bytes.baseAddress, bytes.count > 1 else { return nil }
        var index = bytes.count - 1
        while index > 0 {
            if base[index - 1] == 0x0A { return index }
            index -= 1
        }
        index = bytes.count - 1
        while index > 0 {
            let before = base[index - 1]
            if before < 0x80 && before != 0x0D && base[index] < 0x80 { return index }
            index -= 1
        }
        let fast = NormalizationTables.Kind.fastGrapheme
        var lastCut: Int?
        var previousFast = false
        index = 0
        while index < bytes.count {
            let step = UTF8Decoding.decode(base, at: index, end: bytes.count)
            if step.status == .truncated { break }
            let isFast = step.status == .scalar && step.scalar != 0x0D && kinds[step.scalar] & fast == fast
            if isFast && previousFast { lastCut = index }
            previousFast = isFast
            index += step.length
        }
        return lastCut
    }
}

extension SafeCuts {
    /// Splits `bytes` into up to `parts` pieces of similar size at LF or ASCII-pair cuts found
    /// within 64 KiB before each ideal split point; fewer pieces when no cut is near.
    static func split(_ bytes: UnsafeBufferPointer<UInt8>, parts: Int) -> [Range<Int>] {
        guard parts > 1, let base = bytes.baseAddress, bytes.count >= parts * 4096 else { return [0..<bytes.count] }
        var ranges: [Range<Int>] = []
        var lower = 0
        for part in 1..<parts {
            let target = bytes.count / parts * part
            let floor = max(lower + 1, target - 65536)
            var cut: Int?
            var index = target
            while index > floor {
                let before = base[index - 1]
                if before == 0x0A || (before < 0x80 && before != 0x0D && base[index] < 0x80) {
                    cut = index
                    break
                }
                index -= 1
            }
            if let cut {
                ranges.append(lower..<cut)
                lower = cut
            }
        }
        ranges.append(lower..<bytes.count)
        return ranges
    }
}

/// Reads a file descriptor in chunks that end at safe cuts (or at the end of input), so that
/// arbitrarily large files are processed with a bounded buffer.
struct ChunkReader {
    /// Default chunk size: large enough to amortize per-chunk work, small enough for the cache.
    static let defaultChunkSize = 4 << 20

    let descriptor: Int32
    let path: String
    let kinds: PagedTable<UInt8>
    let chunkSize: Int

    init(descriptor: Int32, path: String, kinds: PagedTable<UInt8>, chunkSize: Int = defaultChunkSize) {
        self.descriptor = descriptor
        self.path = path
        self.kinds = kinds
        self.chunkSize = max(chunkSize, 2)
    }

    /// Calls `body` with consecutive chunks and their offsets in the stream; the last call has
    /// `isFinal` set (it may be empty).
    func forEachChunk(
        _ body: (_ chunk: UnsafeBufferPointer<UInt8>, _ offset: Int, _ isFinal: Bool) throws -> Void
    ) throws {
        var capacity = chunkSize
        var buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var filled = 0
        var offset = 0
        var atEnd = false
        while true {
            while filled < capacity && !atEnd {
                let result = read(descriptor, buffer + filled, capacity - filled)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw TokenizerError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
                }
                if result == 0 { atEnd = true } else { filled += result }
            }
            if atEnd {
                try body(UnsafeBufferPointer(start: buffer, count: filled), offset, true)
                return
            }
            let window = UnsafeBufferPointer(start: buffer, count: filled)
            if let cut = SafeCuts.lastCut(in: window, kinds: kinds) {
                try body(UnsafeBufferPointer(start: buffer, count: cut), offset, false)
                memmove(buffer, buffer + cut, filled - cut)
                filled -= cut
                offset += cut
            } else {
                // No safe cut anywhere (e.g. megabytes of combining marks): read more.
                let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
                grown.update(from: buffer, count: filled)
                buffer.deallocate()
                buffer = grown
                capacity *= 2
            }
        }
    }

    /// Opens `url` and calls `body` with a reader over it.
    static func withFile<R>(
        _ url: URL, kinds: PagedTable<UInt8>, chunkSize: Int = defaultChunkSize,
        _ body: (ChunkReader) throws -> R
    ) throws -> R {
        let path = url.path
        let descriptor = open(path, O_RDONLY)
        if descriptor < 0 {
            throw TokenizerError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var status = stat()
        if fstat(descriptor, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
            throw TokenizerError.unreadableFile(path: path, reason: "it is a directory")
        }
        return try body(ChunkReader(descriptor: descriptor, path: path, kinds: kinds, chunkSize: chunkSize))
    }

    /// The size of the file behind `descriptor`, if it is a regular file.
    var fileSize: Int? {
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(status.st_size)
    }
}
