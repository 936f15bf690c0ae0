import ArgumentParser
import CharNN
import Foundation

@main
struct CharLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "charlm",
        abstract: "Character-level language models: train on a text file, generate from a prompt.",
        discussion: """
            Quick start:
              charlm train corpus.txt                      trains into runs/corpus/
              charlm generate runs/corpus --prompt "The "  continues the prompt
            """,
        version: "0.1.0",
        subcommands: [Train.self, Generate.self, Eval.self, Info.self, TokenizerCommand.self, Bench.self]
    )

    static func main() {
        // A closed pipe is an EPIPE error where output is written, not a silent death; a file
        // size limit is an EFBIG error where a file is written (the write then fails cleanly).
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        BLAS.prepare()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
