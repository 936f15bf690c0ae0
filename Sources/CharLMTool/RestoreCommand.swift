import ArgumentParser
import CharLM
import CharNN
import Foundation

/// `charlm restore RUN [FILE|-]`: a tagger's restoration of a text, streamed to stdout.
struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore the diacritics or the letter case of a text with a tagger (a run trained with --task).",
        discussion:
            "Reads FILE (or standard input), strips what the model's task restores (marks, or case) and writes the "
            + "text as the model restores it to standard output, as it goes: a file of any size streams through. "
            + "A character the model's vocabulary lacks, stripped too, is copied as it is.\n\n"
            + "Example:\n  echo 'Prilis zlutoucky kun upel dabelske ody.' | charlm restore runs/czech"
    )

    @Argument(help: ArgumentHelp("Run directory or model.safetensors of a tagger.", valueName: "run"))
    var runPath: String

    @Argument(help: "UTF-8 text file to restore, or - for standard input (the default).")
    var file: String = "-"

    @Option(
        help: ArgumentHelp(
            "Characters read on either side of each block of decisions (default \(Tagger.defaultContext)).",
            valueName: "n"))
    var context = Tagger.defaultContext

    @Option(help: "Threads (default: all cores).")
    var threads = BatchRunner.defaultThreads

    @Option(help: "Which checkpoint of a run directory: best, latest, or step-N (kept with --keep-checkpoints).")
    var checkpoint: LanguageModel.Checkpoint = .best

    func validate() throws {
        if context < 0 || context > Tagger.maximumContext {
            throw ValidationError("--context must be between 0 and \(Tagger.maximumContext).")
        }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
    }

    func run() throws {
        try Console.run {
            let model = try LanguageModel.load(URL(fileURLWithPath: runPath), checkpoint: checkpoint)
            let tagger = try model.tagger(context: context, threads: threads)
            let input: FileHandle
            if file == "-" {
                input = FileHandle.standardInput
            } else {
                let url = URL(fileURLWithPath: file)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory),
                    !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: url.path)
                else {
                    throw CharLMError.badCorpus(path: file, reason: "no such file, or not a readable file")
                }
                input = handle
            }
            try tagger.restore(input, name: file == "-" ? "standard input" : file) { Console.out($0) }
        }
    }
}
