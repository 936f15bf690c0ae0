import ArgumentParser
import CharLM
import CharNN
import CharTokenizer
import Foundation

/// `charlm train CORPUS`: train a model on a text file, into a run directory.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a character model on a UTF-8 text file.",
        discussion: """
            With no options, trains a 2-layer LSTM (hidden 384, dropout 0.25, batch 50, sequence 50, \
            Adam 2e-3, gradient clipping at 5) for up to 50 epochs with early stopping, into \
            runs/<corpus-name>/. Ctrl-C saves a checkpoint and exits with 130; `--resume RUN` continues \
            exactly where it stopped, and may change the limits, the learning rate, the patience, the \
            NaN policy, reporting and threads.
            """
    )

    @Argument(help: "The text file to train on (optional with --resume: the run remembers it).")
    var corpus: String?

    @Option(help: "Run directory to create (default: runs/<corpus name>).")
    var out: String?

    @Option(help: "Continue the run in this directory from its latest checkpoint.")
    var resume: String?

    @Flag(help: "Replace an existing run directory.")
    var overwrite = false

    @Option(
        help: ArgumentHelp(
            "Fine-tune: start from this model's weights (a run's best checkpoint), extending its vocabulary with the "
                + "corpus's characters.")
    )
    var initFrom: String?

    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Tokenizer") var tokenizer: TokenizerOptions
    @OptionGroup(title: "Optimization") var optimization: OptimizationOptions
    @OptionGroup(title: "Stopping") var limits: LimitOptions
    @OptionGroup(title: "Reporting") var reporting: ReportingOptions

    @Flag(help: "Print only the final summary.")
    var quiet = false

    @Flag(help: "Report progress as JSON lines on stdout.")
    var json = false

    func validate() throws {
        if resume == nil && corpus == nil { throw ValidationError("Give the corpus to train on, or --resume RUN.") }
        if resume != nil && initFrom != nil {
            throw ValidationError("--init-from starts a new run; it does not go with --resume.")
        }
        if resume != nil && (out != nil || overwrite) {
            throw ValidationError("--resume continues a run in place; --out and --overwrite do not apply.")
        }
        if quiet && json { throw ValidationError("--quiet and --json do not go together.") }
    }

    /// Every option given, in the library's terms.
    var options: RunOptions {
        var options = RunOptions()
        model.add(to: &options)
        tokenizer.add(to: &options)
        optimization.add(to: &options)
        limits.add(to: &options)
        reporting.add(to: &options)
        return options
    }

    /// runs/<corpus file name without extension>
    static func defaultRunDirectory(for corpus: String) -> String {
        let name = URL(fileURLWithPath: corpus).deletingPathExtension().lastPathComponent
        return "runs/" + (name.isEmpty ? "run" : name)
    }

    // MARK: Running

    func run() throws {
        // MPI first (under mpirun with more than one rank, in a build with the MPI trait),
        // before any thread starts; then, before anything is written, the signal handlers: a
        // signal from here on stops training cleanly.
        let world: Communicator?
        do { world = try Distributed.start() } catch {
            Console.note("charlm: error: \(error)")
            throw ExitCode(1)
        }
        defer { Distributed.finish() }
        StopSignal.install()
        Console.onClosedOutput = .stopTraining
        var options = options
        if world != nil && reporting.threads == nil {
            // Ranks sharing a machine share its cores.
            let threads = max(1, BatchRunner.defaultThreads / Distributed.localRanks)
            options.set(\.training.threads, to: threads, as: "--threads")
        }
        // Only rank 0 reports; the others train quietly beside it.
        let quiet = quiet || !(world?.isLeader ?? true)
        let json = json && (world?.isLeader ?? true)
        var status: Int32 = 0
        if let world {
            // An error on one rank (a run that exists, a full disk) must end the whole job: the
            // other ranks wait in a collective call that would never return, and MPI_Finalize
            // would wait for them. MPI_Abort stops every rank, after this one printed why.
            do {
                try Console.run { status = try train(quiet: quiet, json: json, options: options, world: world) }
            } catch let exit as ExitCode {
                Console.note("charlm: rank \(world.rank) of \(world.size) failed; ending the job")
                Distributed.abort(code: exit.rawValue)
            }
        } else {
            try Console.run { status = try train(quiet: quiet, json: json, options: options, world: nil) }
        }
        // Ends every rank alike (a diverged run, a signal): MPI finishes normally.
        if status != 0 { throw ExitCode(status) }
    }

    /// Trains; returns the exit status of a run that ended (1 when it diverged, the signal's
    /// when interrupted), and throws only on errors.
    private func train(quiet: Bool, json: Bool, options: RunOptions, world: Communicator?) throws -> Int32 {
        let trainer: Trainer
        if let resume {
            trainer = try Trainer.resume(
                runDirectory: URL(fileURLWithPath: resume), corpus: corpus.map { URL(fileURLWithPath: $0) },
                options: options)
        } else {
            let corpus = corpus!
            let directory = out ?? Self.defaultRunDirectory(for: corpus)
            if !quiet && !json { Console.note("charlm: reading \(corpus)") }
            // A fine-tuned model keeps its shape and tokenizer unless options say otherwise (which is refused).
            var base = RunConfig()
            if let initFrom {
                let source = try LanguageModel.load(URL(fileURLWithPath: initFrom))
                base.model = source.config.model
                base.tokenizer = source.config.tokenizer
            }
            trainer = try Trainer.start(
                corpus: URL(fileURLWithPath: corpus), runDirectory: URL(fileURLWithPath: directory),
                config: options.applied(to: base), overwrite: overwrite,
                initFrom: initFrom.map { URL(fileURLWithPath: $0) },
                shouldStop: { StopSignal.isRequested })
        }
        var display = TrainingDisplay(
            mode: json ? .json : quiet ? .quiet : Console.stderrIsTerminal ? .live : .lines, config: trainer.config,
            plot: LossPlotFile(run: trainer.run, config: trainer.config))
        let leader = world?.isLeader ?? true
        let summary = try trainer.train(
            shouldStop: { StopSignal.isRequested }, onEvent: { if leader { display.show($0) } })
        if leader { display.finish(summary) }
        if summary.reason == .diverged { return 1 }
        if summary.reason == .interrupted && StopSignal.exitCode != 0 { return StopSignal.exitCode }
        return 0
    }
}
