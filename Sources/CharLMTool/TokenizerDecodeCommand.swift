import ArgumentParser
import CharLM
import CharTokenizer
import Foundation

/// `charlm tokenizer decode TOKENIZER [FILE|-]`
struct TokenizerDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode token ids to text (written to standard output).",
        discussion: "Ids are read as text or JSON (numbers separated by spaces, commas or newlines, "
            + "optionally in [ ]), or as binary with --format binary."
    )

    @Argument(help: "The tokenizer file (tokenizer.json).")
    var tokenizer: String

    @Argument(help: "A file of ids, or - for standard input.")
    var input: String = "-"

    @Option(help: "Decode these ids instead of a file, e.g. \"12 7 33\".")
    var ids: String?

    @Option(
        help: "Input format: text and json are both read as numbers; binary is little-endian, 1, 2 or 4 bytes per id.")
    var format: IDFormat = .text

    @Option(name: [.short, .long], help: "Write the text to this file instead of standard output.")
    var output: String?

    func validate() throws {
        if ids != nil && input != "-" {
            throw ValidationError("Give either a file or --ids, not both.")
        }
        if ids != nil && format == .binary {
            throw ValidationError("--ids takes numbers; --format binary is for files.")
        }
    }

    func run() throws {
        try Console.run { try decode() }
    }

    private func decode() throws {
        let tokenizer = try Tokenizer.load(from: URL(fileURLWithPath: self.tokenizer))
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        let source = ids == nil ? try openInput(input) : nil
        var output = try CommandOutput(path: self.output, inputs: [self.tokenizer, input])
        if let ids {
            var parser = IDTextParser()
            for id in try parser.parse(Array(ids.utf8), final: true) { try output.write(try decoder.push(id)) }
        } else if let (handle, name) = source {
            let width = EncodedCorpus.Width(vocabularySize: tokenizer.vocabularySize).rawValue
            var parser = IDTextParser()
            var carry: [UInt8] = []
            var offset = 0
            while true {
                let chunk = try readChunk(handle, name: name)
                if format == .binary {
                    carry += chunk
                    let whole = carry.count / width * width
                    for start in stride(from: 0, to: whole, by: width) {
                        var value: UInt32 = 0
                        for byte in 0..<width { value |= UInt32(carry[start + byte]) << (8 * byte) }
                        try output.write(try decoder.push(Int32(bitPattern: value)))
                    }
                    offset += whole
                    carry.removeFirst(whole)
                    if chunk.isEmpty && !carry.isEmpty {
                        throw TokenizerCommandError(
                            "binary input ends with \(carry.count) stray bytes after \(offset / width) ids of "
                                + "\(width) bytes; "
                                + "was it written with this tokenizer?")
                    }
                } else {
                    for id in try parser.parse(chunk, final: chunk.isEmpty) { try output.write(try decoder.push(id)) }
                }
                if chunk.isEmpty { break }
            }
        }
        try output.write(decoder.finish())
        try output.finish()
    }

    private func readChunk(_ handle: FileHandle, name: String) throws -> [UInt8] {
        do {
            return [UInt8](try handle.read(upToCount: 1 << 20) ?? Data())
        } catch {
            throw TokenizerError.unreadableFile(path: name, reason: error.localizedDescription)
        }
    }
}

/// Parses decimal ids separated by whitespace, commas and brackets, streaming.
struct IDTextParser {
    private var digits: [UInt8] = []
    private var offset = 0

    /// The ids completed by `bytes`; at the end (`final`), the last number too.
    mutating func parse(_ bytes: [UInt8], final: Bool) throws -> [Int32] {
        var ids: [Int32] = []
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                digits.append(byte)
            case UInt8(ascii: "-") where digits.isEmpty:
                digits.append(byte)
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"), UInt8(ascii: ","),
                UInt8(ascii: "["), UInt8(ascii: "]"):
                if let id = try takeNumber() { ids.append(id) }
            default:
                let shown =
                    byte >= 0x20 && byte < 0x7F
                    ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
                throw TokenizerCommandError(
                    "expected token ids (numbers separated by spaces or commas), found \(shown) at byte offset "
                        + "\(offset)"
                )
            }
            offset += 1
        }
        if final, let id = try takeNumber() { ids.append(id) }
        return ids
    }

    private mutating func takeNumber() throws -> Int32? {
        guard !digits.isEmpty else { return nil }
        defer { digits.removeAll() }
        let text = String(decoding: digits, as: UTF8.self)
        guard let value = Int64(text) else {
            throw TokenizerCommandError("'\(text)' before byte offset \(offset) is not a token id")
        }
        guard let id = Int32(exactly: value) else {
            throw TokenizerError.invalidTokenID(value, vocabularySize: Int(Int32.max))
        }
        return id
    }
}
