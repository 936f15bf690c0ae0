import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe file replacement, the one way charlm writes a file.
///
/// Data goes to a hidden temporary file beside its destination (`.NAME.tmp-PID-RANDOM`), is
/// flushed to disk, and only then renamed over the destination; the directory entry is flushed
/// too. A reader, or a resume after a crash or a full disk, sees either the old file or the
/// complete new one, never a mixture, and a failed write leaves the destination untouched and
/// no temporary file behind (a crash can leave one; `isTemporary` recognises it for cleaning).
///
/// ```swift
/// try DurableFile.write(data, to: url)                 // all at once
/// let writer = try DurableFile.Writer(for: url)         // or streaming
/// try writer.write(chunk)
/// try writer.commit()
/// ```
public enum DurableFile {
    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        let writer = try Writer(for: url)
        try data.withUnsafeBytes { bytes in try writer.write(bytes) }
        try writer.commit()
    }

    /// Whether `name` is the temporary file of an interrupted write.
    public static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".tmp-")
    }

    /// A file being written: invisible under its final name until `commit`.
    public final class Writer {
        /// Where the file will appear.
        public let destination: URL
        /// The temporary file the bytes go to.
        public let staged: URL
        private var descriptor: Int32
        private var finished = false

        /// Creates the temporary file beside `destination`.
        public init(for destination: URL) throws {
            self.destination = destination
            let directory = destination.deletingLastPathComponent()
            staged = directory.appendingPathComponent(
                ".\(destination.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            descriptor = open(staged.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw DurableFileError(path: destination.path, reason: DurableFile.lastError())
            }
        }

        deinit {
            discard()
        }

        /// Appends bytes; a write error (full disk, file too large) discards the file.
        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            precondition(!finished, "write after commit or discard")
            var written = 0
            while written < bytes.count {
                let n = systemWrite(descriptor, bytes.baseAddress! + written, bytes.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    let reason = DurableFile.lastError()
                    discard()
                    throw DurableFileError(path: destination.path, reason: reason)
                }
                written += n
            }
        }

        public func write(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try write($0) }
        }

        /// Flushes the file to disk and renames it over the destination.
        public func commit() throws {
            precondition(!finished, "commit after commit or discard")
            let synced = fsync(descriptor) == 0
            var reason = synced ? nil : DurableFile.lastError()
            if close(descriptor) != 0, reason == nil { reason = DurableFile.lastError() }
            descriptor = -1
            if reason == nil, rename(staged.path, destination.path) != 0 { reason = DurableFile.lastError() }
            if let reason {
                discard()
                throw DurableFileError(path: destination.path, reason: reason)
            }
            finished = true
            DurableFile.syncDirectory(destination.deletingLastPathComponent())
        }

        /// Abandons the file: the destination is left as it was.
        public func discard() {
            guard !finished else { return }
            finished = true
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
            unlink(staged.path)
        }
    }

    /// Flushes a directory's entries (renames, creations) to disk.
    public static func syncDirectory(_ directory: URL) {
        let fd = open(directory.path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Creates `url` and its parents if missing.
    public static func makeDirectory(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw DurableFileError(path: url.path, reason: error.localizedDescription)
        }
    }

    static func lastError() -> String {
        String(cString: strerror(errno))
    }
}

/// A file that could not be written, and why ("No space left on device", …).
public struct DurableFileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String

    public var description: String { "cannot write \(path): \(reason)" }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Musl)
private let systemWrite = Musl.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif
