import ArgumentParser
import CharLM
import CharTokenizer
import Foundation

/// How token ids are written and read on the command line.
enum IDFormat: String, ExpressibleByArgument, CaseIterable {
    /// Decimal ids separated by spaces, then a newline.
    case text
    /// A JSON array of ids.
    case json
    /// Little-endian unsigned integers, 1, 2 or 4 bytes each by vocabulary size (like nanoGPT's .bin).
    case binary
}

/// `charlm tokenizer encode TOKENIZER [FILE|-]`
struct TokenizerEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode text to token ids (written to standard output).",
        discussion: "Input is streamed: files of any size are encoded with bounded memory."
    )

    @Argument(help: "The tokenizer file (tokenizer.json).")
    var tokenizer: String

    @Argument(help: "The UTF-8 text to encode, or - for standard input.")
    var input: String = "-"

    @Option(help: "Encode this text instead of a file.")
    var text: String?

    @Option(help: "Output format: text (ids separated by spaces), json (an array) or binary (1, 2 or 4 bytes per id).")
    var format: IDFormat = .text

    @Option(name: [.short, .long], help: "Write the ids to this file instead of standard output.")
    var output: String?

    func validate() throws {
        if text != nil && input != "-" {
            throw ValidationError("Give either a file or --text, not both.")
        }
    }

    func run() throws {
        try Console.run {
            let tokenizer = try Tokenizer.load(from: URL(fileURLWithPath: self.tokenizer))
            let source = text == nil ? try openInput(input) : nil
            var writer = IDWriter(
                format: format, vocabularySize: tokenizer.vocabularySize,
                output: try CommandOutput(path: output, inputs: [self.tokenizer, input]))
            try writer.start()
            if let text {
                try writer.write(try tokenizer.encode(text))
            } else if let (handle, name) = source {
                try tokenizer.encode(contentsOf: handle, name: name) { try writer.write($0) }
            }
            try writer.finish()
        }
    }
}

/// Writes ids in one of the `IDFormat`s, streaming.
struct IDWriter {
    let format: IDFormat
    let width: EncodedCorpus.Width
    private var output: CommandOutput
    private var first = true

    init(format: IDFormat, vocabularySize: Int, output: CommandOutput) {
        self.format = format
        self.output = output
        self.width = EncodedCorpus.Width(vocabularySize: vocabularySize)
    }

    mutating func start() throws {
        if format == .json { try output.write("[") }
    }

    mutating func write(_ ids: [Int32]) throws {
        switch format {
        case .text, .json:
            let separator = format == .text ? " " : ", "
            for id in ids {
                if !first { try output.write(separator) }
                first = false
                try output.write(String(id))
            }
        case .binary:
            switch width {
            case .uint8: try output.write(ids.map { UInt8(truncatingIfNeeded: $0) })
            case .uint16:
                try ids.map { UInt16(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes { try output.write($0) }
            case .uint32: try ids.map { UInt32(bitPattern: $0).littleEndian }.withUnsafeBytes { try output.write($0) }
            }
        }
    }

    mutating func finish() throws {
        switch format {
        case .text: try output.write("\n")
        case .json: try output.write("]\n")
        case .binary: break
        }
        try output.finish()
    }
}
