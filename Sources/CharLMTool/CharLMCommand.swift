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
        subcommands: [
            Train.self, Generate.self, Eval.self, Restore.self, Serve.self, Explain.self, Info.self,
            TokenizerCommand.self,
            Bench.self,
        ]
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
            exit(reporting: error)
        }
    }

    /// Ends the process for `error`: help and version go to stdout as ArgumentParser prints
    /// them; a usage error is reported like every other error, `charlm: error: …` on one line,
    /// then the usage, and exits with 64; errors already reported (`ExitCode`) just exit.
    static func exit(reporting error: Error) -> Never {
        let code = exitCode(for: error)
        if code == .success || error is ExitCode { exit(withError: error) }
        let message = self.message(for: error)
        let usage = fullMessage(for: error).split(separator: "\n").filter {
            $0.hasPrefix("Usage:") || $0.hasPrefix("  See")
        }
        Console.note("charlm: error: " + message.split(separator: "\n").joined(separator: " "))
        for line in usage { Console.note(String(line)) }
        Foundation.exit(code == .validationFailure ? 64 : code.rawValue)
    }
}
