import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe writes: data goes to a temporary file beside its destination, is flushed to disk,
/// and only then renamed over the destination, so that a reader (or a resume after a crash or
/// a full disk) sees either the old file or the complete new one, never a mixture.
enum DurableFile {
    /// Test hook: writes of files under this directory fail with ENOSPC after their first 100
    /// bytes, as on a full disk.
    nonisolated(unsafe) static var simulateFullDiskUnder: String?

    /// Writes `data` to `url` atomically.
    static func write(_ data: Data, to url: URL) throws {
        let staged = try stage(data, for: url)
        try commit(staged, to: url)
    }

    /// Writes `data` to a hidden temporary file next to `url` and flushes it; nothing is
    /// replaced yet. Returns the temporary file, for `commit`.
    static func stage(_ data: Data, for url: URL) throws -> URL {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw CharLMError.unwritable(path: url.path, reason: String(cString: strerror(errno))) }
        var ok = false
        defer {
            if !ok { unlink(temporary.path) }
        }
        let full = simulateFullDiskUnder.map { url.path.hasPrefix($0) } ?? false
        let reason: String? = data.withUnsafeBytes { raw -> String? in
            var written = 0
            while written < raw.count {
                if full && written >= 100 { return String(cString: strerror(ENOSPC)) }
                let chunk = full ? min(raw.count - written, 100) : raw.count - written
                let n = Foundation.write(fd, raw.baseAddress! + written, chunk)
                if n < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                written += n
            }
            return fsync(fd) == 0 ? nil : String(cString: strerror(errno))
        }
        let closed = close(fd) == 0
        if let reason { throw CharLMError.unwritable(path: url.path, reason: reason) }
        guard closed else { throw CharLMError.unwritable(path: url.path, reason: String(cString: strerror(errno))) }
        ok = true
        return temporary
    }

    /// Renames a staged file over `url` and flushes the directory entry.
    static func commit(_ staged: URL, to url: URL) throws {
        guard rename(staged.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(staged.path)
            throw CharLMError.unwritable(path: url.path, reason: reason)
        }
        syncDirectory(url.deletingLastPathComponent())
    }

    /// Removes a staged file that will not be committed.
    static func discard(_ staged: URL) {
        unlink(staged.path)
    }

    /// Flushes a directory's entries (renames, creations) to disk.
    static func syncDirectory(_ directory: URL) {
        let fd = open(directory.path, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Creates `url` and its parents if missing.
    static func makeDirectory(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw CharLMError.unwritable(path: url.path, reason: error.localizedDescription)
        }
    }
}
