import ArgumentParser
import CharLM
import CharServe
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output conventions of every command: results on stdout, progress and errors on stderr,
/// exit code 0 on success, 1 on a runtime failure, 64 on a usage error, 128 + N when signal N
/// (Ctrl-C: 130) stopped a training after it saved.
enum Console {
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    /// Columns of the terminal on stderr (from the terminal, else $COLUMNS, else 80).
    static var terminalWidth: Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 {
            return columns
        }
        return 80
    }

    /// What a closed standard output (`charlm generate … | head`) does: end the command quietly
    /// with exit code 0 (the default), or, during training, ask it to save and stop.
    enum ClosedOutput { case exit, stopTraining }
    nonisolated(unsafe) static var onClosedOutput = ClosedOutput.exit
    private static let stdoutClosed = Atomic<Bool>(false)

    /// Writes to stderr without buffering.
    static func note(_ text: String, newline: Bool = true) {
        write(Array((text + (newline ? "\n" : "")).utf8), to: STDERR_FILENO)
    }

    /// Writes to stdout at once, so that pipes see text as it is produced.
    static func out(_ text: String) {
        write(Array(text.utf8), to: STDOUT_FILENO)
    }

    static func out(_ bytes: [UInt8]) {
        write(bytes, to: STDOUT_FILENO)
    }

    /// Whether standard output was closed by its reader.
    static var outputClosed: Bool { stdoutClosed.load(ordering: .relaxed) }

    /// A reader that went away ends the command quietly (SIGPIPE is ignored, so the write fails
    /// with EPIPE); any other write error on stdout ends it with one line.
    private static func write(_ bytes: [UInt8], to fd: Int32) {
        if fd == STDOUT_FILENO && outputClosed { return }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                if fd == STDERR_FILENO { return }
                if errno == EPIPE {
                    stdoutClosed.store(true, ordering: .relaxed)
                    switch onClosedOutput {
                    case .exit: exit(0)
                    case .stopTraining: StopSignal.request(signal: SIGPIPE)
                    }
                    return
                }
                let message = "charlm: error: cannot write the output: \(String(cString: strerror(errno)))\n"
                _ = message.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                exit(1)
            }
            offset += n
        }
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
            switch error {
            case .interrupted(let message):
                note("charlm: \(message)")
                throw ExitCode(StopSignal.exitCode == 0 ? 130 : StopSignal.exitCode)
            case .invalidOptions, .runExists:
                note("charlm: error: \(error.description)")
                throw ExitCode(64)
            default:
                note("charlm: error: \(error.description)")
                throw ExitCode(1)
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
    static func json(_ object: [String: Any]) -> String { JSON.encode(object) }
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

/// SIGINT, SIGTERM and SIGHUP ask a training to stop at the next safe point (it saves a
/// checkpoint and exits with 128 + the signal's number); a second signal ends the process at
/// once (the last checkpoint on disk stays loadable either way). A closed standard output asks
/// the same way.
enum StopSignal {
    private static let requested = Atomic<Int>(0)
    private static let firstSignal = Atomic<Int32>(0)

    /// Installs the handlers; call it before anything is written.
    static func install() {
        let handler: @convention(c) (Int32) -> Void = { signal in StopSignal.request(signal: signal) }
        for number in [SIGINT, SIGTERM, SIGHUP] { signal(number, handler) }
        // A parent may have started charlm with these signals blocked; take them back.
        var set = sigset_t()
        sigemptyset(&set)
        for number in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Records a stop request (async-signal-safe).
    static func request(signal: Int32) {
        _ = firstSignal.compareExchange(expected: 0, desired: signal, ordering: .relaxed)
        if requested.add(1, ordering: .relaxed).newValue >= 2 && signal != SIGPIPE {
            let message = "\ncharlm: stopped at once; the last checkpoint on disk is intact\n"
            _ = message.withCString { write(STDERR_FILENO, $0, strlen($0)) }
            _exit(128 + signal)
        }
    }

    static var isRequested: Bool { requested.load(ordering: .relaxed) > 0 }

    /// The exit code after stopping on request: 128 + the first signal, or 0 for a closed output.
    static var exitCode: Int32 {
        let signal = firstSignal.load(ordering: .relaxed)
        return signal == SIGPIPE || signal == 0 ? 0 : 128 + signal
    }
}
