import ArgumentParser
import CharLM
import CharNN
import Foundation

/// `charlm bench …`: throughput measurements for the README's tables.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Measure training, generation and tokenizer throughput (side by side with PyTorch/Python references).",
        subcommands: [BenchTrain.self, BenchGenerate.self, BenchTokenizer.self],
        defaultSubcommand: BenchTrain.self
    )
}

/// A "cell:hidden" pair such as "lstm:256".
struct ModelSize: ExpressibleByArgument, CustomStringConvertible {
    let cell: CellKind
    let hidden: Int
    /// Layers given in the size (`lstm:3x1024`), or nil for the command's `--layers`.
    let layers: Int?

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: ":")
        guard parts.count == 2, let cell = CellKind(rawValue: String(parts[0])) else { return nil }
        let shape = parts[1].split(separator: "x", omittingEmptySubsequences: false)
        guard let hidden = shape.last.flatMap({ Int($0) }), hidden >= 1, shape.count <= 2 else { return nil }
        if shape.count == 2 {
            guard let layers = Int(shape[0]), layers >= 1 else { return nil }
            self.layers = layers
        } else {
            self.layers = nil
        }
        self.cell = cell
        self.hidden = hidden
    }

    var description: String { "\(cell.rawValue):\(layers.map { "\($0)x" } ?? "")\(hidden)" }

    /// The size's layers, or `fallback` when it names none.
    func layers(or fallback: Int) -> Int { layers ?? fallback }

    static func parseList(_ text: String) throws -> [ModelSize] {
        try text.split(separator: ",").map {
            guard let size = ModelSize(argument: String($0)) else {
                throw ValidationError("'\($0)' is not CELL:HIDDEN or CELL:LAYERSxHIDDEN (e.g. lstm:256, gru:3x1024).")
            }
            return size
        }
    }
}

/// Options of the reference runs, shared by the benchmarks.
struct ReferenceOptions: ParsableArguments {
    @Flag(help: "Skip the PyTorch reference.") var noPytorch = false
    @Option(help: "Python interpreter with torch installed.") var python = "python3"
    @Option(help: "Directory holding the reference scripts.") var scripts = "scripts"
    @Flag(help: "Print JSON lines instead of a table.") var json = false

    /// Runs `script` and returns the first JSON object it prints and its error, if any.
    func first(_ script: String, _ arguments: [String]) -> (result: [String: Any]?, error: String?) {
        do {
            return (try ReferenceScripts(python: python, directory: scripts).results(script, arguments).first, nil)
        } catch {
            return (nil, "\(error)")
        }
    }
}

/// `charlm bench train`: training throughput against PyTorch.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training throughput (forward, backward, clip, Adam) against torch.nn.LSTM/GRU.",
        discussion: """
            For each configuration (2 layers, batch 50, sequence 50, vocabulary 65 by default) charlm and \
            then the PyTorch reference (scripts/bench_pytorch_train.py, same model, one-hot input, Adam, \
            clip 5, the same thread count) are timed one after the other, so that both see the same \
            machine. Reports the median of --repeats timings of --steps steps, the ratio, GFLOP/s \
            against the measured peak of the matrix kernels, the kernels in use and memory.
            """
    )

    @Option(help: "Configurations as CELL:HIDDEN or CELL:LAYERSxHIDDEN, comma-separated.")
    var configs = "lstm:128,lstm:256,lstm:512,lstm:3x1024,gru:128,gru:256,gru:512,gru:3x1024"

    @Option(help: "Layers of a configuration that names none.") var layers = 2
    @Option(help: "Dropout between layers and before the output layer (charlm's default is 0.25).")
    var dropout: Float = 0
    @Flag(help: "Bidirectional layers (PyTorch's bidirectional=True), as a tagger trains them.")
    var bidirectional = false
    @Option(help: "Batch size.") var batch = 50
    @Option(help: "Sequence length.") var seqLength = 50
    @Option(help: "Vocabulary size.") var vocab = 65
    @Option(help: "Steps per timing.") var steps = 20
    @Option(help: "Timings per configuration (the median is reported).") var repeats = 5
    @Option(help: "Threads for charlm and PyTorch.") var threads = BatchRunner.defaultThreads
    @OptionGroup var reference: ReferenceOptions

    func validate() throws {
        _ = try ModelSize.parseList(configs)
        if layers < 1 || batch < 1 || seqLength < 1 || vocab < 2 || steps < 1 || repeats < 1 || threads < 1 {
            throw ValidationError(
                "--layers, --batch, --seq-length, --steps, --repeats and --threads must be positive, --vocab at least "
                    + "2."
            )
        }
        if !(dropout >= 0 && dropout < 1) { throw ValidationError("--dropout must be in [0, 1).") }
    }

    func run() throws {
        try Console.run {
            let sizes = try ModelSize.parseList(configs)
            let peak = Benchmark.productPeak()
            let machinePeak = peak.packed * Double(threads)
            let json = reference.json
            if !json {
                Console.out("kernels: \(BLAS.info.summary)\n")
                Console.out(
                    String(
                        format:
                            "matrix-product peak, 1 thread: charlm packed kernel %.0f GFLOP/s, OpenBLAS sgemm %.0f "
                            + "GFLOP/s; x%d threads = %.0f GFLOP/s\n",
                        peak.packed, peak.openBLAS, threads, machinePeak))
                Console.out(
                    "batch \(batch), sequence \(seqLength), vocabulary \(vocab), dropout \(dropout), \(threads) "
                        + "threads\(bidirectional ? ", bidirectional" : ""); median of \(repeats) x \(steps) steps\n\n"
                )
                Console.out(
                    "| model | charlm chars/s | PyTorch chars/s | ratio | charlm GFLOP/s | % of peak | RSS after "
                        + "warm-up → end |\n"
                )
                Console.out("|---|---:|---:|---:|---:|---:|---:|\n")
            }
            for size in sizes {
                let layers = size.layers(or: layers)
                let config = NetworkConfig(
                    cell: size.cell, vocabularySize: vocab, hiddenSize: size.hidden, layers: layers, dropout: dropout,
                    bidirectional: bidirectional)
                let ours = try Benchmark.training(
                    config: config, batchSize: batch, seqLength: seqLength, steps: steps, repeats: repeats,
                    threads: threads)
                var pytorch: Double?
                var note = ""
                if !reference.noPytorch {
                    let r = reference.first(
                        "bench_pytorch_train.py",
                        [
                            "--configs", "\(size.cell.rawValue):\(size.hidden)", "--threads", String(threads),
                            "--batch", String(batch), "--seq", String(seqLength), "--vocab", String(vocab),
                            "--layers", String(layers), "--dropout", String(dropout), "--steps", String(steps),
                            "--repeats", String(repeats),
                        ] + (bidirectional ? ["--bidirectional"] : []))
                    pytorch = r.result?["median"] as? Double
                    if let e = r.error { note = e }
                }
                let ratio = pytorch.map { ours.median / $0 }
                if json {
                    var object: [String: Any] = [
                        "cell": size.cell.rawValue, "hidden": size.hidden, "layers": layers, "dropout": dropout,
                        "bidirectional": bidirectional,
                        "charlm_chars_per_s": ours.median,
                        "charlm_runs": ours.charactersPerSecond, "gflops": ours.gflops, "peak_gflops": machinePeak,
                        "rss_warm": ours.residentAfterWarmup, "rss_end": ours.residentAtEnd,
                        "kernels": BLAS.info.summary,
                    ]
                    if let pytorch { object["pytorch_chars_per_s"] = pytorch }
                    if let ratio { object["ratio"] = ratio }
                    if !note.isEmpty { object["note"] = note }
                    Console.out(Console.json(object) + "\n")
                } else {
                    let mb = { (b: Int) in String(format: "%.0f MB", Double(b) / 1e6) }
                    Console.out(
                        "| \(layers)x\(size.hidden) \(bidirectional ? "Bi" : "")\(size.cell.rawValue.uppercased()) | "
                            + "\(Int(ours.median).formatted()) | \(pytorch.map { Int($0).formatted() } ?? "–") | "
                            + "\(ratio.map { String(format: "%.2f×", $0) } ?? "–") | "
                            + "\(String(format: "%.0f", ours.gflops)) | "
                            + "\(String(format: "%.0f%%", 100 * ours.gflops / machinePeak)) | "
                            + "\(mb(ours.residentAfterWarmup)) → \(mb(ours.residentAtEnd)) |\n")
                    if !note.isEmpty { Console.note("charlm: PyTorch reference skipped: \(note)") }
                }
            }
        }
    }
}

/// `charlm bench generate`: generation throughput against an eager PyTorch loop.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generation throughput, one sample and a batch, against the strongest PyTorch sampling loop.",
        discussion: """
            Times sampling one character at a time (temperature 1) after a 20-character prompt, for one \
            sample and for --batch samples generated together, with the PyTorch reference run right \
            after each charlm measurement. The reference (scripts/bench_pytorch_generate.py) times three \
            loops and the ratio is to the fastest: nn.LSTM/GRU called per character, the same with \
            oneDNN off, and the cells written out with torch.mv (torch.mm for a batch). Also reports \
            the time to the first character: after the prompt, and from opening the saved model (with \
            the int8 weights file that generate saves after its first sample, and before there is one).
            """
    )

    @Option(help: "Configurations as CELL:HIDDEN or CELL:LAYERSxHIDDEN, comma-separated.")
    var configs = "lstm:128,lstm:256,lstm:512"

    @Option(help: "Layers of a configuration that names none.") var layers = 2
    @Option(help: "Vocabulary size.") var vocab = 65
    @Option(help: "Characters per sample.") var length = 2000
    @Option(help: "Samples in the batched measurement.") var batch = 32
    @Option(help: "Timings per configuration (the median is reported).") var repeats = 3
    @Option(help: "Threads for the PyTorch reference.") var threads = BatchRunner.defaultThreads
    @Option(help: "Characters per sample for the (slow) PyTorch loop.") var referenceLength = 300
    @Option(help: "Weight precision of charlm's generation: int8 (the default of generate) or f32.")
    var precision: WeightPrecision = .int8
    @OptionGroup var reference: ReferenceOptions

    func validate() throws {
        _ = try ModelSize.parseList(configs)
        if layers < 1 || vocab < 2 || length < 1 || batch < 1 || repeats < 1 || threads < 1 || referenceLength < 1 {
            throw ValidationError("sizes, counts and lengths must be positive.")
        }
    }

    func run() throws {
        try Console.run {
            let sizes = try ModelSize.parseList(configs)
            let json = reference.json
            if !json {
                Console.out(
                    "kernels: \(BLAS.info.summary)\ncharlm weights \(precision.rawValue), one sample on "
                        + "\(BatchRunner.defaultThreads) threads; vocabulary \(vocab); median of \(repeats) runs\n\n"
                )
                Console.out(
                    "| model | charlm 1 sample | PyTorch 1 sample, best loop | ratio | charlm \(batch) samples "
                        + "| PyTorch \(batch) samples, best loop | ratio | first character "
                        + "| first character, model load included | the same, no int8 file yet |\n"
                )
                Console.out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            }
            for size in sizes {
                let layers = size.layers(or: layers)
                let config = NetworkConfig(
                    cell: size.cell, vocabularySize: vocab, hiddenSize: size.hidden, layers: layers)
                let single = try Benchmark.generation(
                    config: config, samples: 1, length: length, repeats: repeats, precision: precision)
                let batched = try Benchmark.generation(
                    config: config, samples: batch, length: max(1, length / 4), repeats: repeats, precision: precision)
                let fromDisk = try Benchmark.firstCharacterFromDisk(
                    config: config, repeats: repeats, precision: precision)
                let fromDiskUnsaved =
                    precision == .int8
                    ? try Benchmark.firstCharacterFromDisk(
                        config: config, repeats: repeats, precision: precision, savedInt8: false) : fromDisk
                var refSingle: [String: Any]?, refBatch: [String: Any]?
                if !reference.noPytorch {
                    for (samples, slot) in [(1, 0), (batch, 1)] {
                        let r = reference.first(
                            "bench_pytorch_generate.py",
                            [
                                "--configs", "\(size.cell.rawValue):\(size.hidden)", "--threads", String(threads),
                                "--samples",
                                String(samples),
                                "--length", String(referenceLength), "--repeats", String(repeats), "--vocab",
                                String(vocab), "--layers", String(layers),
                            ])
                        if slot == 0 { refSingle = r.result } else { refBatch = r.result }
                        if let e = r.error { Console.note("charlm: PyTorch reference skipped: \(e)") }
                    }
                }
                if json {
                    var object: [String: Any] = [
                        "cell": size.cell.rawValue, "hidden": size.hidden, "layers": layers,
                        "charlm_single": single.median,
                        "charlm_batch": batched.median, "batch": batch, "precision": precision.rawValue,
                        "first_char_ms": single.firstCharacterSeconds * 1000,
                        "first_char_with_load_ms": fromDisk * 1000,
                        "first_char_with_load_no_int8_file_ms": fromDiskUnsaved * 1000,
                    ]
                    for (name, charlm, ref) in [
                        ("single", single.median, refSingle), ("batch", batched.median, refBatch),
                    ] {
                        guard let ref, let best = ref["median"] as? Double else { continue }
                        object["pytorch_\(name)"] = best
                        object["pytorch_\(name)_loop"] = ref["best"]
                        object["pytorch_\(name)_loops"] = ref["loops"]
                        object["ratio_\(name)"] = charlm / best
                    }
                    Console.out(Console.json(object) + "\n")
                } else {
                    let fmt = { (x: Double?) in x.map { Int($0).formatted() } ?? "–" }
                    let reference = { (ref: [String: Any]?, charlm: Double) -> String in
                        guard let ref, let best = ref["median"] as? Double else { return "– | –" }
                        return "\(fmt(best)) (\(ref["best"] as? String ?? "?")) | "
                            + String(format: "%.1f×", charlm / best)
                    }
                    Console.out(
                        "| \(layers)x\(size.hidden) \(size.cell.rawValue.uppercased()) | \(fmt(single.median)) | "
                            + "\(reference(refSingle, single.median)) | \(fmt(batched.median)) | "
                            + "\(reference(refBatch, batched.median)) | "
                            + String(
                                format: "%.1f ms | %.1f ms | %.1f ms |\n", single.firstCharacterSeconds * 1000,
                                fromDisk * 1000, fromDiskUnsaved * 1000))
                    if let loops = refSingle?["loops"] as? [String: Double] {
                        let each = loops.sorted { $0.value > $1.value }.map { "\($0.key) \(fmt($0.value))" }
                        Console.note("PyTorch loops, 1 sample, chars/s: " + each.joined(separator: ", "))
                    }
                }
            }
        }
    }
}
