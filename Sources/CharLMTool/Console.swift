import ArgumentParser
import CharLM
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output conventions of every command: results on stdout, progress and errors on stderr,
/// exit code 0 on success, 1 on a runtime failure, 64 on a usage error.
enum Console {
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    /// Writes to stderr without buffering.
    static func note(_ text: String, newline: Bool = true) {
        write(text + (newline ? "\n" : ""), to: STDERR_FILENO)
    }

    /// Writes to stdout at once, so that pipes see text as it is produced.
    static func out(_ text: String) {
        write(text, to: STDOUT_FILENO)
    }

    /// A reader that went away (`charlm generate | head`) ends the command quietly; any other
    /// write error ends it with one line.
    private static func write(_ text: String, to fd: Int32) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { exit(0) }
                if fd != STDERR_FILENO {
                    let message = "charlm: error: cannot write the output: \(String(cString: strerror(errno)))\n"
                    _ = message.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                }
                exit(1)
            }
            offset += n
        }
        bytes.removeAll()
    }

    /// Runs `body`; an error becomes one line on stderr and the matching exit code.
    static func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            // A live progress line may still be open on the terminal.
            if stderrIsTerminal { note("\r\u{1B}[K", newline: false) }
            try report(error)
        }
    }

    private static func report(_ error: Error) throws {
        do {
            throw error
        } catch let exit as ExitCode {
            throw exit
        } catch let error as CharLMError {
            note("charlm: error: \(error.description)")
            switch error {
            case .invalidOptions, .runExists: throw ExitCode(64)
            default: throw ExitCode(1)
            }
        } catch let error as LocalizedError {
            note("charlm: error: \(error.errorDescription ?? "\(error)")")
            throw ExitCode(1)
        } catch {
            note("charlm: error: \(error)")
            throw ExitCode(1)
        }
    }

    /// "1h02m", "3m05s", "42s".
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// "41.2k", "980".
    static func rate(_ x: Double) -> String {
        x >= 10_000 ? String(format: "%.1fk", x / 1000) : String(format: "%.0f", x)
    }

    /// A JSON line from a dictionary of plain values; NaN and infinities become null.
    static func json(_ object: [String: Any]) -> String {
        func clean(_ value: Any) -> Any {
            switch value {
            case let d as Double: return d.isFinite ? d : NSNull()
            case let f as Float: return f.isFinite ? Double(f) : NSNull()
            case let a as [Any]: return a.map(clean)
            case let o as [String: Any]: return o.mapValues(clean)
            default: return value
            }
        }
        let data = (try? JSONSerialization.data(withJSONObject: clean(object), options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// Parses "10m", "90s", "1h30m", "2.5h" or a plain number of seconds.
struct Duration: ExpressibleByArgument {
    let seconds: Double

    init?(argument: String) {
        let text = argument.lowercased()
        if let plain = Double(text) {
            guard plain > 0 else { return nil }
            seconds = plain
            return
        }
        var total = 0.0
        var number = ""
        for ch in text {
            if ch.isNumber || ch == "." {
                number.append(ch)
                continue
            }
            guard let value = Double(number) else { return nil }
            switch ch {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            default: return nil
            }
            number = ""
        }
        guard number.isEmpty, total > 0 else { return nil }
        seconds = total
    }
}

/// SIGINT and SIGTERM ask a long command to stop at the next safe point; a second signal ends
/// the process at once (the last checkpoint on disk stays loadable either way).
enum StopSignal {
    private static let requested = Atomic<Int>(0)

    static func install() {
        let handler: @convention(c) (Int32) -> Void = { signal in
            if StopSignal.requested.add(1, ordering: .relaxed).newValue >= 2 {
                let message = "\ncharlm: stopped at once; the last checkpoint on disk is intact\n"
                _ = message.withCString { write(STDERR_FILENO, $0, strlen($0)) }
                _exit(128 + signal)
            }
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        // A parent may have started charlm with these signals blocked; take them back.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static var isRequested: Bool { requested.load(ordering: .relaxed) > 0 }
}
