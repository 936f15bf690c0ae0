import ArgumentParser
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

extension NormalizationForm: ExpressibleByArgument {}
extension TokenUnit: ExpressibleByArgument {}
extension Fallback: ExpressibleByArgument {}

/// The options that decide how a corpus becomes a vocabulary, shared by `build` and `stats`.
struct TokenizerConfigOptions: ParsableArguments {
    @Option(help: "Unicode normalization: nfc, nfd, nfkc, nfkd or none.")
    var normalization: NormalizationForm = .nfc

    @Option(help: "Token unit: grapheme (user-perceived character), scalar (code point) or byte.")
    var unit: TokenUnit = .grapheme

    @Option(help: "Units missing from the vocabulary: scalars (error if a character is new), bytes (lossless), unknown (<unk>).")
    var fallback: Fallback = .scalars

    @Flag(help: "Apply Unicode case folding (\"Straße\" → \"strasse\").")
    var caseFold = false

    @Flag(help: "Remove combining marks (accents): \"é\" → \"e\".")
    var stripMarks = false

    @Flag(help: "Keep CR and CRLF as they are instead of turning them into LF.")
    var keepNewlines = false

    @Option(help: "Leave out units seen fewer times than this.")
    var minCount = 1

    @Option(help: "Keep at most this many units, the most frequent (reserved tokens come on top).")
    var maxSize: Int?

    @Flag(help: "Replace invalid UTF-8 with U+FFFD instead of stopping with an error.")
    var replaceInvalid = false

    func validate() throws {
        if minCount < 1 { throw ValidationError("--min-count must be at least 1.") }
        if let maxSize, maxSize < 1 { throw ValidationError("--max-size must be at least 1.") }
    }

    var tokenizerConfig: TokenizerConfig {
        TokenizerConfig(
            normalization: Normalization(form: normalization, caseFold: caseFold, stripMarks: stripMarks,
                                         normalizeNewlines: !keepNewlines),
            unit: unit, fallback: fallback, minCount: minCount, maxSize: maxSize,
            invalidUTF8: replaceInvalid ? .replace : .error)
    }
}

/// Buffered writes to standard output (or to the file of an `--output` option), so that large
/// outputs stream without a system call per token.
struct StandardOutput {
    private var buffer: [UInt8] = []
    private let handle: FileHandle

    /// Writes to `path`, or to standard output when `path` is nil or "-".
    init(path: String? = nil) throws {
        if let path, path != "-" {
            self.handle = try createOutputFile(path)
        } else {
            self.handle = FileHandle.standardOutput
        }
        buffer.reserveCapacity(1 << 16)
    }

    mutating func write(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func write(_ text: String) {
        write(text.utf8)
    }

    mutating func flush() {
        guard !buffer.isEmpty else { return }
        let descriptor = handle.fileDescriptor
        buffer.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let result = systemWrite(descriptor, bytes.baseAddress! + written, bytes.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    // A closed pipe (e.g. `| head`) or a full disk: stop writing, like other tools.
                    return
                }
                written += result
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

/// Creates (or truncates) a file for writing.
func createOutputFile(_ path: String) throws -> FileHandle {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else {
        throw TokenizerError.unwritableFile(path: path, reason: String(cString: strerror(errno)))
    }
    return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
}

/// Opens a path argument for reading; "-" is standard input.
func openInput(_ path: String) throws -> (handle: FileHandle, name: String) {
    if path == "-" { return (FileHandle.standardInput, "<stdin>") }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw TokenizerError.unreadableFile(path: path, reason: "no such file")
    }
    guard !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: path) else {
        throw TokenizerError.unreadableFile(path: path, reason: isDirectory.boolValue ? "it is a directory" : "permission denied")
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
