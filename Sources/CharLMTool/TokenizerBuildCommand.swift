import ArgumentParser
import CharLM
import CharTokenizer
import Foundation

/// `charlm tokenizer build CORPUS -o tokenizer.json`
struct TokenizerBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a tokenizer.json from a corpus.",
        discussion: "The corpus is read in chunks, so it may be larger than memory."
    )

    @Argument(help: "The corpus: a UTF-8 text file.")
    var corpus: String

    @Option(name: [.short, .customLong("output")], help: "Where to write the tokenizer file.")
    var output: String = "tokenizer.json"

    @OptionGroup var options: TokenizerOptions

    func run() throws {
        try Console.run { try build() }
    }

    private func build() throws {
        if sameFile(corpus, output) {
            throw CharLMError.invalidOptions("the output \(output) is the corpus \(corpus); write to another file")
        }
        let tokenizer = try Tokenizer.build(corpusFile: URL(fileURLWithPath: corpus), config: options.tokenizerConfig)
        // Through CommandOutput: atomically to a file, in place to a device, "-" to stdout.
        var out = try CommandOutput(path: output, inputs: [corpus])
        try out.write(Array(tokenizer.jsonData()))
        try out.finish()
        let units = tokenizer.vocabulary.filter { entry in
            switch entry.kind {
            case .unit: return true
            case .byte: return tokenizer.config.unit == .byte
            case .unknown: return false
            }
        }.count
        let reserved = tokenizer.vocabularySize - units
        let summary =
            "wrote \(output): \(tokenizer.vocabularySize) tokens (\(units) units"
            + (reserved > 0 ? " + \(reserved) reserved" : "") + ")"
        if output == "-" { Console.note(summary) } else { Console.out(summary + "\n") }
    }
}
