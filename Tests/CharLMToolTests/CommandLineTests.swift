import CharTokenizer
import Foundation
import Testing
@testable import CharLMTool

/// The `charlm` executable run as a user runs it: output, files and exit codes.
@Suite(.serialized) struct CommandLineTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let corpus = root.appendingPathComponent("corpora/brackets.txt").path

    /// The charlm binary built beside the test bundle.
    static var binary: URL {
        get throws {
            var dir = Bundle.main.bundleURL
            for _ in 0..<4 {
                let candidate = dir.appendingPathComponent("charlm")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
                dir = dir.deletingLastPathComponent()
            }
            let fallback = root.appendingPathComponent(".build/debug/charlm")
            if FileManager.default.isExecutableFile(atPath: fallback.path) { return fallback }
            throw CocoaError(
                .fileNoSuchFile, userInfo: [NSFilePathErrorKey: "charlm executable (run `swift build` first)"])
        }
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// The environment of every charlm these tests start: this process's, without the variables
    /// that change which kernels run (some machines set OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE,
    /// CI's among them), plus `overrides`.
    static func childEnvironment(_ overrides: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for name in environment.keys where name.hasPrefix("OPENBLAS_") || name.hasPrefix("CHARLM_") {
            environment[name] = nil
        }
        return environment.merging(overrides) { _, new in new }
    }

    @discardableResult
    static func charlm(
        _ arguments: [String], in directory: URL, stdin: String? = nil, environment: [String: String] = [:]
    ) throws -> Result {
        let process = Process()
        process.executableURL = try binary
        process.arguments = arguments
        process.environment = childEnvironment(environment)
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }

    /// Starts a long `charlm train --json` on the corpus and reads its stdout until `ready` holds.
    static func startTraining(_ arguments: [String], in directory: URL, until ready: (String) -> Bool) throws -> (
        Process, FileHandle
    ) {
        let process = Process()
        process.executableURL = try binary
        process.arguments = ["train", corpus, "--max-steps", "100000", "--json"] + arguments
        process.environment = childEnvironment()
        process.currentDirectoryURL = directory
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var seen = ""
        while !ready(seen) {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            seen += String(decoding: data, as: UTF8.self)
        }
        return (process, out.fileHandleForReading)
    }

    static func temporary() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "charlm-cli-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static let small = [
        "--hidden", "24", "--batch", "8", "--seq-length", "16", "--eval-every", "10", "--sample-every", "0",
    ]

    @Test func trainThenGenerateEvalAndInfo() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try Self.charlm(["train", Self.corpus, "--max-steps", "20", "--json"] + Self.small, in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        let events = train.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let finished = try #require(events.first { $0["event"] as? String == "finished" })
        let started = try #require(events.first { $0["event"] as? String == "started" })
        #expect((finished["run"] as? String)?.hasSuffix("/runs/brackets") == true, "says where the run went")
        for file in [
            "config.json", "tokenizer.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
            "metrics.csv", "loss.svg", "best/model.safetensors",
        ] {
            #expect(
                FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/brackets/\(file)").path),
                "\(file)")
        }
        let svg = try String(contentsOf: dir.appendingPathComponent("runs/brackets/loss.svg"), encoding: .utf8)
        #expect(
            svg.contains("training step") && svg.contains("loss (nats per char)"), "the plot's axes are labelled")

        let a = try Self.charlm(
            ["generate", "runs/brackets", "--prompt", "(lynx", "--length", "60", "--seed", "11"], in: dir)
        let b = try Self.charlm(
            ["generate", "runs/brackets", "--prompt", "(lynx", "--length", "60", "--seed", "11"], in: dir)
        #expect(a.status == 0 && a.stdout == b.stdout, "same seed, same text")
        #expect(a.stdout.hasPrefix("(lynx"), "the prompt is echoed")
        // The first generate saves the int8 weights beside best/'s; the second reads them.
        #expect(a.stderr.contains("saved the int8 weights") && !b.stderr.contains("saved the int8 weights"))
        #expect(
            FileManager.default.fileExists(
                atPath: dir.appendingPathComponent("runs/brackets/best/model.int8.safetensors").path))
        let quiet = try Self.charlm(
            ["generate", "runs/brackets", "--prompt", "(lynx", "--length", "60", "--seed", "11", "--no-echo"], in: dir)
        #expect("(lynx" + quiet.stdout == a.stdout)

        let json = try Self.charlm(
            [
                "generate", "runs/brackets", "--prompt", "-", "--length", "25", "--seed", "5", "--json",
                "--num-samples", "3",
            ],
            in: dir, stdin: "(ant")
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["prompt"] as? String == "(ant")
        #expect(object["seed"] as? Int == 5)
        let samples = try #require(object["samples"] as? [[String: Any]])
        #expect(samples.count == 3)
        #expect((samples[0]["tokens"] as? [Int])?.count == 25)

        let eval = try Self.charlm(["eval", "runs/brackets", Self.corpus, "--json"], in: dir)
        #expect(eval.status == 0, "\(eval.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        let nats = try #require(result["loss"] as? Double), bpc = try #require(result["bits"] as? Double)
        #expect(result["unit"] as? String == "char")
        #expect(abs(bpc - nats / log(2)) < 1e-9)
        #expect(result["chars"] as? Int == result["units"] as? Int, "one char per unit without a vocabulary limit")
        #expect(abs(try #require(result["char_bits"] as? Double) - bpc) < 1e-9)
        // On the run's own corpus: the held-out parts, as the trainer measured them.
        let testLoss = try #require(finished["test_loss"] as? Double)
        #expect(
            abs(try #require(result["test_loss"] as? Double) - testLoss) < 1e-6, "eval's test loss is the summary's")
        #expect(result["test_units"] as? Int == started["test_units"] as? Int)
        #expect(result["validation_units"] as? Int == started["val_units"] as? Int)
        let bestValidation = try #require(finished["best_val_loss"] as? Double)
        #expect(
            abs(try #require(result["validation_loss"] as? Double) - bestValidation) < 1e-6,
            "best/ on the validation part is the best validation loss")
        let text = try Self.charlm(["eval", "runs/brackets", Self.corpus], in: dir)
        #expect(
            text.stdout.contains("test split of the run's corpus: loss")
                && text.stdout.contains("validation split of the run's corpus"), "\(text.stdout)")
        let part = String(try String(contentsOfFile: Self.corpus, encoding: .utf8).prefix(3000))
        try Data(part.utf8).write(to: dir.appendingPathComponent("part.txt"))
        let other = try Self.charlm(["eval", "runs/brackets", "part.txt", "--json"], in: dir)
        #expect(other.status == 0 && !other.stdout.contains("test_loss"), "another text has no held-out parts")

        let info = try Self.charlm(["info", "runs/brackets"], in: dir)
        #expect(
            info.status == 0 && info.stdout.contains("OpenBLAS") && info.stdout.contains("2-layer LSTM"),
            "\(info.stdout)")
    }

    /// Generation reads int8 weights by default; `eval --precision int8` measures what that
    /// costs. On a trained model the held-out loss must stay within 0.002 nats of float32's.
    @Test func int8WeightsCostAtMostTwoThousandthsOfANat() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try Self.charlm(
            [
                "train", Self.corpus, "--max-steps", "120", "--hidden", "64", "--batch", "16", "--seq-length", "32",
                "--eval-every", "120", "--sample-every", "0", "--quiet",
            ], in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        func loss(_ precision: String) throws -> (Double, Int) {
            let r = try Self.charlm(
                ["eval", "runs/brackets", Self.corpus, "--precision", precision, "--json"], in: dir)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
            #expect(object["precision"] as? String == precision)
            return (try #require(object["loss"] as? Double), try #require(object["units"] as? Int))
        }
        let (exact, units) = try loss("f32")
        let (rounded, _) = try loss("int8")
        #expect(units > 1000)
        // Character frequencies alone give 3.12 nats on this text: the model has learned context.
        #expect(exact < 2.6, "the model has learned something (loss \(exact))")
        #expect(exact != rounded, "int8 is really in use")
        #expect(abs(rounded - exact) <= 0.002, "int8 \(rounded) vs float32 \(exact)")

        for precision in ["int8", "f32"] {
            let r = try Self.charlm(
                [
                    "generate", "runs/brackets", "--prompt", "(", "--length", "40", "--seed", "3", "--json",
                    "--precision", precision,
                ], in: dir)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
            #expect(object["precision"] as? String == precision)
            #expect((object["text"] as? String)?.count == 40)
        }
        let bad = try Self.charlm(["generate", "runs/brackets", "--precision", "int4"], in: dir)
        #expect(bad.status == 64 && bad.stderr.contains("int8"), "\(bad.stderr)")
    }

    /// The ordinary build has no MPI: it says so, and refuses to be started as several ranks
    /// (each would train alone into the same run) instead of training N separate models.
    @Test func theDefaultBuildSaysItCannotRunDistributed() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try Self.charlm(["train", Self.corpus, "--max-steps", "2"] + Self.small, in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        let info = try Self.charlm(["info", "runs/brackets", "--json"], in: dir)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        #expect(object["distributed"] as? Bool == false && object["ranks"] as? Int == 1)
        let text = try Self.charlm(["info", "runs/brackets"], in: dir)
        #expect(text.stdout.contains("distributed  not in this build"), "\(text.stdout)")
        let launched = try Self.charlm(
            ["train", Self.corpus, "--out", "runs/mpi", "--max-steps", "2"] + Self.small, in: dir,
            environment: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"])
        #expect(launched.status == 1 && launched.stderr.contains("built without MPI"), "\(launched.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/mpi").path))
    }

    /// `bench train` sizes may name their layers (`lstm:3x1024`) and take a dropout; a size it
    /// cannot read is a usage error naming both forms.
    @Test func benchSizesNameTheirLayers() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bench = try Self.charlm(
            [
                "bench", "train", "--configs", "gru:3x8,lstm:8", "--layers", "1", "--dropout", "0.25", "--steps", "1",
                "--repeats", "1", "--batch", "2", "--seq-length", "3", "--no-pytorch", "--json",
            ], in: dir)
        #expect(bench.status == 0, "\(bench.stderr)")
        let rows = bench.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(rows.map { $0["layers"] as? Int } == [3, 1])
        #expect(rows.map { $0["cell"] as? String } == ["gru", "lstm"])
        #expect(
            rows.allSatisfy { ($0["dropout"] as? Double) == 0.25 && ($0["charlm_chars_per_s"] as? Double ?? 0) > 0 })
        for bad in ["lstm:3x", "lstm:0x8", "lstm:2x2x8", "lstm"] {
            let refused = try Self.charlm(["bench", "train", "--configs", bad, "--no-pytorch"], in: dir)
            #expect(refused.status == 64 && refused.stderr.contains("CELL:LAYERSxHIDDEN"), "\(bad): \(refused.stderr)")
        }
    }

    /// OpenBLAS falls back to its generic "Prescott" table on CPUs newer than the build; charlm
    /// must move it to a tuned table unless the user chose one.
    @Test func aGenericOpenBLASKernelIsReplacedUnlessTheUserChoseOne() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(
            try Self.charlm(
                [
                    "train", Self.corpus, "--max-steps", "2", "--eval-every", "2", "--hidden", "8", "--batch", "4",
                    "--seq-length", "8", "--quiet",
                ], in: dir
            ).status == 0)
        func kernels(_ environment: [String: String]) throws -> [String: Any] {
            let r = try Self.charlm(["info", "runs/brackets", "--json"], in: dir, environment: environment)
            return try #require(
                try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        }
        let avx2 = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8).contains(" avx2 ")
        let fallback = try kernels(["CHARLM_OPENBLAS_START_CORE": "Prescott"])
        let summary = try #require(fallback["kernels"] as? String)
        if avx2 {
            #expect(["SkylakeX", "Haswell"].contains(fallback["openblas_core"] as? String), "\(summary)")
            #expect(summary.contains("replaced OpenBLAS's generic fallback Prescott"), "\(summary)")
        } else {
            #expect(fallback["openblas_core"] as? String == "Prescott", "no tuned table for this CPU: left alone")
        }
        let chosen = try kernels(["CHARLM_OPENBLAS_START_CORE": "Prescott", "OPENBLAS_CORETYPE": "Prescott"])
        #expect(chosen["openblas_core"] as? String == "Prescott", "the user's OPENBLAS_CORETYPE is left alone")
        #expect((chosen["kernels"] as? String)?.contains("set by OPENBLAS_CORETYPE") == true)
    }

    @Test func badInputIsOneLineAndTheRightExitCode() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = try Self.charlm(["train", "nope.txt"], in: dir)
        #expect(missing.status == 1)
        #expect(missing.stderr.split(separator: "\n").filter { $0.contains("error") }.count == 1, "\(missing.stderr)")
        #expect(!missing.stderr.contains("Fatal") && !missing.stderr.contains("Stack"))
        #expect(try Self.charlm(["train"], in: dir).status == 64)
        #expect(try Self.charlm(["train", Self.corpus, "--batch", "0"], in: dir).status == 64)
        #expect(try Self.charlm(["train", Self.corpus, "--time", "soon"], in: dir).status == 64)
        #expect(try Self.charlm(["train", Self.corpus, "--ema-decay", "1"], in: dir).status == 64)
        #expect(
            try Self.charlm(["train", Self.corpus, "--val-fraction", "0.5", "--test-fraction", "0.5"], in: dir).status
                == 64, "nothing left to train on")
        #expect(try Self.charlm(["generate", "no-such-run"], in: dir).status == 1)
        let train = try Self.charlm(["train", Self.corpus, "--max-steps", "10"] + Self.small, in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        let again = try Self.charlm(["train", Self.corpus, "--max-steps", "10"] + Self.small, in: dir)
        #expect(
            again.status == 64 && again.stderr.contains("--resume"),
            "an existing run is not overwritten: \(again.stderr)")
        let prompt = try Self.charlm(["generate", "runs/brackets", "--prompt", "é"], in: dir)
        #expect(prompt.status == 1 && prompt.stderr.contains("U+00E9"), "\(prompt.stderr)")
        let mismatch = try Self.charlm(["train", "--resume", "runs/brackets", "--hidden", "64"], in: dir)
        #expect(mismatch.status == 64 && mismatch.stderr.contains("--hidden 64"), "\(mismatch.stderr)")
    }

    @Test func aTaggerTrainsRestoresAndReportsAccuracy() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let paragraph =
            "Příliš žluťoučký kůň úpěl ďábelské ódy. Na dvoře stál velký kůň a čekal na svého pána.\n"
            + "Děti si hrály v trávě, pes štěkal a kočka spala na peci.\n"
        let corpus = dir.appendingPathComponent("czech.txt")
        try Data(String(repeating: paragraph, count: 60).utf8).write(to: corpus)
        let train = try Self.charlm(
            ["train", "czech.txt", "--task", "restore-marks", "--bidirectional", "--max-steps", "20"] + Self.small,
            in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stderr.contains("charlm restore"), "the summary says how to use a tagger: \(train.stderr)")

        let text = "Prilis zlutoucky kun upel dabelske ody. 漢字\n"
        let restored = try Self.charlm(["restore", "runs/czech"], in: dir, stdin: text)
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.count == text.count, "one character out for each in: \(restored.stdout)")
        #expect(
            Normalization(form: .nfc, stripMarks: true).apply(to: restored.stdout) == text,
            "only marks change: \(restored.stdout)")

        let eval = try Self.charlm(["eval", "runs/czech", "czech.txt", "--json"], in: dir)
        #expect(eval.status == 0, "\(eval.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        let test = try #require(report["test"] as? [String: Any], "the run's corpus: its test part")
        for key in ["char_accuracy", "word_accuracy", "baseline_word_accuracy", "ambiguous_error_rate"] {
            let value = try #require(test[key] as? Double, "\(key)")
            #expect(value >= 0 && value <= 1, "\(key) \(value)")
        }
        // The paragraph repeats: the baseline knows nearly every word (not those cut by the
        // edges of the held-out blocks).
        #expect((test["baseline_word_accuracy"] as? Double ?? 0) > 0.9)
        let info = try Self.charlm(["info", "runs/czech", "--json"], in: dir)
        let about = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        #expect(about["task"] as? String == "restore-marks" && about["bidirectional"] as? Bool == true)

        let generate = try Self.charlm(["generate", "runs/czech"], in: dir)
        #expect(generate.status == 64 && generate.stderr.contains("charlm restore"), "\(generate.stderr)")
        let noTask = try Self.charlm(
            ["train", "czech.txt", "--bidirectional", "--out", "runs/x"] + Self.small, in: dir)
        #expect(noTask.status == 64 && noTask.stderr.contains("--task"), "\(noTask.stderr)")
        let language = try Self.charlm(["train", Self.corpus, "--max-steps", "2"] + Self.small, in: dir)
        #expect(language.status == 0)
        let notATagger = try Self.charlm(["restore", "runs/brackets"], in: dir, stdin: "x")
        #expect(notATagger.status == 64 && notATagger.stderr.contains("--task"), "\(notATagger.stderr)")
        let missing = try Self.charlm(["restore", "runs/czech", "nope.txt"], in: dir)
        #expect(missing.status == 1 && missing.stderr.contains("nope.txt"), "\(missing.stderr)")
    }

    @Test func sigintSavesACheckpointAndSigkillLosesNothingSaved() throws {
        let dir = Self.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            let run = "runs/sig\(signal)"
            let (process, out) = try Self.startTraining(["--out", run, "--patience", "0"] + Self.small, in: dir) {
                $0.contains("\"step\":20,")
            }
            kill(process.processIdentifier, signal)
            let rest = out.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(
                process.terminationReason == .exit && process.terminationStatus == 128 + signal,
                "signal \(signal): saves, then exits with 128 + \(signal), got \(process.terminationStatus)")
            #expect(String(decoding: rest, as: UTF8.self).contains("interrupted"))
            let state =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: dir.appendingPathComponent("\(run)/trainer_state.json"))) as? [String: Any]
            let step = try #require(state?["step"] as? Int)
            #expect(step >= 20, "the checkpoint holds the step it stopped at")
            let resumed = try Self.charlm(["train", "--resume", run, "--max-steps", String(step + 5)], in: dir)
            #expect(resumed.status == 0, "\(resumed.stderr)")
        }

        let (process, _) = try Self.startTraining(
            ["--out", "runs/killed", "--eval-every", "3", "--patience", "0"]
                + Self.small.filter { $0 != "--eval-every" && $0 != "10" }, in: dir
        ) { $0.components(separatedBy: "\"event\":\"checkpoint\"").count >= 6 }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let generate = try Self.charlm(
            ["generate", "runs/killed", "--checkpoint", "latest", "--length", "10", "--seed", "1"], in: dir)
        #expect(generate.status == 0, "a killed run stays loadable: \(generate.stderr)")
        let resumed = try Self.charlm(["train", "--resume", "runs/killed", "--max-steps", "40"], in: dir)
        #expect(resumed.status == 0, "and resumable: \(resumed.stderr)")
    }
}
