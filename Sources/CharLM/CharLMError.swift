import CharIO
import CharNN
import CharTokenizer
import Foundation

/// Errors of CharLM, each a message a user can act on.
public enum CharLMError: Error, Equatable, LocalizedError, CustomStringConvertible {
    /// A file that should hold something else, or is damaged.
    case invalidFile(path: String, reason: String)
    case missingFile(path: String, hint: String)
    case unwritable(path: String, reason: String)
    /// A training corpus that cannot be used.
    case badCorpus(path: String, reason: String)
    /// Options that contradict each other or the run being resumed.
    case invalidOptions(String)
    /// A prompt the tokenizer cannot encode.
    case badPrompt(String)
    /// A run directory that already exists.
    case runExists(path: String)
    /// A run directory that another process is writing.
    case runInUse(path: String, pid: Int32?)
    /// Stopped on request (a signal) before there was anything to save.
    case interrupted(String)
    /// The ranks of a distributed job disagree, or MPI failed.
    case distributed(String)

    public var description: String {
        switch self {
        case .invalidFile(let path, let reason): "\(path): \(reason)"
        case .missingFile(let path, let hint): "\(path) does not exist\(hint.isEmpty ? "" : "; \(hint)")"
        case .unwritable(let path, let reason): "cannot write \(path): \(reason)"
        case .badCorpus(let path, let reason): "corpus \(path): \(reason)"
        case .invalidOptions(let message): message
        case .badPrompt(let message): message
        case .runExists(let path):
            "run directory \(path) already exists; pass --resume \(path) to continue it or --overwrite to replace it"
        case .runInUse(let path, let pid):
            "\(path) is in use by \(pid.map { "process \($0)" } ?? "another process") (one training at a time per run)"
        case .interrupted(let message): message
        case .distributed(let message): message
        }
    }

    public var errorDescription: String? { description }
}

extension CharLMError {
    init(_ error: DurableFileError) {
        self = .unwritable(path: error.path, reason: error.reason)
    }
}

/// Writes `data` to `url` atomically (`DurableFile`), failing with `CharLMError.unwritable`.
func writeDurably(_ data: Data, to url: URL) throws {
    do { try DurableFile.write(data, to: url) } catch let error as DurableFileError { throw CharLMError(error) }
}

/// Creates a directory and its parents, failing with `CharLMError.unwritable`.
func makeDirectory(_ url: URL) throws {
    do { try DurableFile.makeDirectory(url) } catch let error as DurableFileError { throw CharLMError(error) }
}
