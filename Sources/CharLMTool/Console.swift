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
        FileHandle.standardError.write(Data((text + (newline ? "\n" : "")).utf8))
    }

    /// Writes to stdout and flushes, so that pipes see text as it is produced.
    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Runs `body`; an error becomes one line on stderr and the matching exit code.
    static func run(_ body: () throws -> Void) throws {
        do {
            try body()
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
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// "41.2k", "980".
    static func rate(_ x: Double) -> String {
        x >= 10_000 ? String(format: "%.1fk", x / 1000) : String(format: "%.0f", x)
    }

    /// A JSON line from a dictionary of plain values.
    static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
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
