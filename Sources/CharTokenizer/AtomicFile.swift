import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe file replacement: a reader sees either the old file or the complete new one.
enum AtomicFile {
    /// Writes `data` to a temporary file next to `url`, flushes it to disk, renames it over
    /// `url` and flushes the directory.
    /// - Throws: `TokenizerError.unwritableFile`.
    static func write(_ data: Data, to url: URL) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func failure(_ what: String) -> TokenizerError {
            .unwritableFile(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw failure("cannot create a temporary file in '\(directory)'") }
        var closed = false
        defer {
            if !closed { close(descriptor) }
        }
        do {
            try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                var written = 0
                while written < bytes.count {
                    let result = systemWrite(descriptor, bytes.baseAddress! + written, bytes.count - written)
                    if result < 0 {
                        if errno == EINTR { continue }
                        throw failure("write failed")
                    }
                    written += result
                }
            }
            guard fsync(descriptor) == 0 else { throw failure("fsync failed") }
            closed = true
            guard close(descriptor) == 0 else { throw failure("close failed") }
            guard rename(temporary, path) == 0 else { throw failure("rename failed") }
        } catch {
            unlink(temporary)
            throw error
        }
        let directoryDescriptor = open(directory, O_RDONLY)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Musl)
private let systemWrite = Musl.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif
