import ArgumentParser
import CharIO
import CharLM
import CharTokenizer
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `charlm tokenizer …`: build, use and inspect character tokenizers.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Build, use and inspect character tokenizers.",
        subcommands: [TokenizerBuild.self, TokenizerEncode.self, TokenizerDecode.self, TokenizerStats.self]
    )
}

/// Where a command's results go: standard output, or the file of an `-o` option, which appears
/// only when the command succeeds (written beside it under a temporary name, then renamed), so
/// that a failing command, a full disk or Ctrl-C never leaves a truncated file or destroys the
/// one that was there. Writes are buffered, so that large outputs stream without a system call
/// per token.
struct CommandOutput {
    private var buffer: [UInt8] = []
    private let file: DurableFile.Writer?
    /// An existing output that is not a regular file (/dev/null, a FIFO, a terminal): written in
    /// place, since replacing it by renaming a file over it would destroy it.
    private let device: (descriptor: Int32, path: String)?

    /// Writes to `path`, or to standard output when `path` is nil or "-".
    /// - Parameter inputs: the files the command reads; an output that is one of them is refused.
    init(path: String?, inputs: [String]) throws {
        if let path, path != "-" {
            if let input = inputs.first(where: { sameFile($0, path) }) {
                throw CharLMError.invalidOptions("the output \(path) is the input \(input); write to another file")
            }
            var status = stat()
            if stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
                let descriptor = open(path, O_WRONLY | O_CLOEXEC)
                guard descriptor >= 0 else {
                    throw CharLMError.unwritable(path: path, reason: String(cString: strerror(errno)))
                }
                device = (descriptor, path)
                file = nil
            } else {
                device = nil
                do { file = try DurableFile.Writer(for: URL(fileURLWithPath: path)) } catch let error
                    as DurableFileError
                {
                    throw CharLMError.unwritable(path: path, reason: error.reason)
                }
            }
        } else {
            file = nil
            device = nil
        }
        buffer.reserveCapacity(1 << 16)
    }

    mutating func write(_ bytes: some Sequence<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func write(_ text: String) throws {
        try write(text.utf8)
    }

    private mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        if let file {
            do { try file.write(buffer) } catch let error as DurableFileError {
                throw CharLMError.unwritable(path: error.path, reason: error.reason)
            }
        } else if let device {
            var written = 0
            while written < buffer.count {
                let n = buffer.withUnsafeBytes {
                    Glibc.write(device.descriptor, $0.baseAddress! + written, $0.count - written)
                }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw CharLMError.unwritable(path: device.path, reason: String(cString: strerror(errno)))
                }
                written += n
            }
        } else {
            Console.out(buffer)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered and, for a file, puts it in place.
    mutating func finish() throws {
        try flush()
        if let device { close(device.descriptor) }
        do { try file?.commit() } catch let error as DurableFileError {
            throw CharLMError.unwritable(path: error.path, reason: error.reason)
        }
    }
}

/// Whether two paths name the same existing file (symbolic and hard links included).
func sameFile(_ a: String, _ b: String) -> Bool {
    guard a != "-", b != "-" else { return false }
    var sa = stat(), sb = stat()
    guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
}

/// Opens a path argument for reading; "-" is standard input.
func openInput(_ path: String) throws -> (handle: FileHandle, name: String) {
    if path == "-" { return (FileHandle.standardInput, "<stdin>") }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw TokenizerError.unreadableFile(path: path, reason: "no such file")
    }
    guard !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: path) else {
        throw TokenizerError.unreadableFile(
            path: path, reason: isDirectory.boolValue ? "it is a directory" : "permission denied")
    }
    return (handle, path)
}

/// A runtime failure of a tokenizer command, reported as one line on standard error (exit code 1).
struct TokenizerCommandError: Error, LocalizedError {
    let message: String

    init(_ message: String) {
        self.message = message
    }

    var errorDescription: String? { message }
}

/// A unit shown on one line: quoted, with invisible characters escaped.
func displayUnit(_ text: String) -> String {
    var shown = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": shown += "\\n"
        case "\r": shown += "\\r"
        case "\t": shown += "\\t"
        case "\"": shown += "\\\""
        case "\\": shown += "\\\\"
        default:
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .unassigned, .surrogate, .privateUse:
                shown += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            case .nonspacingMark, .enclosingMark, .spacingMark:
                if shown.isEmpty { shown += "\u{25CC}" }
                shown.unicodeScalars.append(scalar)
            default:
                shown.unicodeScalars.append(scalar)
            }
        }
    }
    return "\"" + shown + "\""
}
