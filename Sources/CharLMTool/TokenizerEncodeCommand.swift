import ArgumentParser
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

    @Option(help: "Output format: text (ids separated by spaces), json (an array) or binary (little-endian, 1, 2 or 4 bytes per id).")
    var format: IDFormat = .text

    @Option(name: [.short, .long], help: "Write the ids to this file instead of standard output.")
    var output: String?

    func validate() throws {
        if text != nil && input != "-" {
            throw ValidationError("Give either a file or --text, not both.")
        }
    }

    func run() throws {
        let tokenizer = try Tokenizer.load(from: URL(fileURLWithPath: self.tokenizer))
        var writer = IDWriter(format: format, vocabularySize: tokenizer.vocabularySize, output: try StandardOutput(path: output))
        if let text {
            writer.write(try tokenizer.encode(text))
        } else {
            let (handle, name) = try openInput(input)
            try tokenizer.encode(contentsOf: handle, name: name) { writer.write($0) }
        }
        writer.finish()
    }
}

/// Writes ids in one of the `IDFormat`s, streaming.
struct IDWriter {
    let format: IDFormat
    let width: EncodedCorpus.Width
    private var output: StandardOutput
    private var first = true

    init(format: IDFormat, vocabularySize: Int, output: StandardOutput) {
        self.format = format
        self.output = output
        self.width = EncodedCorpus.Width(vocabularySize: vocabularySize)
        if format == .json { self.output.write("[") }
    }

    mutating func write(_ ids: [Int32]) {
        switch format {
        case .text, .json:
            let separator = format == .text ? " " : ", "
            for id in ids {
                if !first { output.write(separator) }
                first = false
                output.write(String(id))
            }
        case .binary:
            switch width {
            case .uint8: output.write(ids.map { UInt8(truncatingIfNeeded: $0) })
            case .uint16: ids.map { UInt16(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes { output.write($0) }
            case .uint32: ids.map { UInt32(bitPattern: $0).littleEndian }.withUnsafeBytes { output.write($0) }
            }
        }
    }

    mutating func finish() {
        switch format {
        case .text: output.write("\n")
        case .json: output.write("]\n")
        case .binary: break
        }
        output.flush()
    }
}
