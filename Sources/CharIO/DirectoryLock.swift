import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a directory, held by one process at a time: an advisory `flock` on the
/// file `.lock` inside it, which also records the holder's process id. The operating system
/// releases the lock when the holder exits, however it exits (kill -9 included), so a lock is
/// never left stale.
///
/// ```swift
/// let lock = try DirectoryLock(runDirectory)   // throws .inUse(pid:) if another process holds it
/// defer { lock.release() }
/// ```
public final class DirectoryLock {
    public let directory: URL
    private var descriptor: Int32

    /// Name of the lock file inside the directory.
    public static let fileName = ".lock"

    /// Takes the lock, or throws at once if another process holds it.
    public init(_ directory: URL) throws {
        self.directory = directory
        let path = directory.appendingPathComponent(Self.fileName).path
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw DirectoryLockError.unavailable(path: directory.path, reason: String(cString: strerror(errno)))
        }
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            let holder = Self.holder(of: descriptor)
            close(descriptor)
            descriptor = -1
            throw busy
                ? DirectoryLockError.inUse(path: directory.path, pid: holder)
                : DirectoryLockError.unavailable(path: directory.path, reason: reason)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress!, $0.count, 0) }
    }

    deinit {
        release()
    }

    /// Gives the lock up (also done when the object goes away or the process ends).
    public func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    /// The process id written in an open lock file, if it holds one.
    private static func holder(of descriptor: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// Why a directory could not be locked.
public enum DirectoryLockError: Error, Equatable, CustomStringConvertible {
    /// Another process holds the lock.
    case inUse(path: String, pid: Int32?)
    /// The lock file cannot be created or locked (permissions, a read-only file system).
    case unavailable(path: String, reason: String)

    public var description: String {
        switch self {
        case .inUse(let path, let pid): "\(path) is in use by \(pid.map { "process \($0)" } ?? "another process")"
        case .unavailable(let path, let reason): "cannot lock \(path): \(reason)"
        }
    }
}
