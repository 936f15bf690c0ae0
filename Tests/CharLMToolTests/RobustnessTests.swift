import Foundation
import Testing
@testable import CharLMTool

/// What users do to a command line tool that it must survive: closed pipes, signals at any
/// moment, two trainings on one run, full disks, an output that is also an input.
@Suite(.serialized) struct RobustnessTests {
    typealias CLI = CommandLineTests
    static let small = CLI.small

    /// Starts charlm with stdout and stderr piped.
    static func spawn(_ arguments: [String], in directory: URL, prefix: [String] = []) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        if prefix.isEmpty {
            process.executableURL = try CLI.binary
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [try CLI.binary.path] + arguments
        }
        process.environment = CLI.childEnvironment()
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out, err)
    }

    /// Runs charlm under `prlimit --fsize=BYTES`: a write past that size fails as on a full disk.
    static func withFileSizeLimit(_ bytes: Int, _ arguments: [String], in directory: URL) throws -> CLI.Result {
        let (process, out, err) = try spawn(
            arguments, in: directory, prefix: ["/usr/bin/prlimit", "--fsize=\(bytes)", "--"])
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLI.Result(
            status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }

    static func temporaryFiles(in directory: URL) -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: directory.path)) ?? []).filter { $0.contains(".tmp-") }
    }

    // MARK: - Closed pipes

    @Test func generationIntoAClosedPipeEndsQuietly() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try CLI.charlm(["train", CLI.corpus, "--max-steps", "4"] + Self.small, in: dir).status == 0)
        let (process, out, err) = try Self.spawn(
            ["generate", "runs/brackets", "--length", "200000", "--seed", "3"], in: dir)
        let head = out.fileHandleForReading.readData(ofLength: 100)
        #expect(head.count == 100)
        try out.fileHandleForReading.close()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(
            process.terminationReason == .exit && process.terminationStatus == 0,
            "`charlm generate | head -c 100` exits 0, not 141 (SIGPIPE): \(process.terminationStatus)"
        )
        #expect(!String(decoding: errors, as: UTF8.self).contains("error"))
    }

    @Test func trainingIntoAClosedPipeSavesAndStops() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (process, out, _) = try Self.spawn(
            ["train", CLI.corpus, "--max-steps", "100000", "--json", "--log-every", "1", "--patience", "0"]
                + Self.small, in: dir)
        var seen = ""
        while !seen.contains("\"step\":15,") {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            seen += String(decoding: data, as: UTF8.self)
        }
        try out.fileHandleForReading.close()
        process.waitUntilExit()
        #expect(
            process.terminationReason == .exit && process.terminationStatus == 0,
            "`charlm train --json | head` stops cleanly")
        let state =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: dir.appendingPathComponent("runs/brackets/trainer_state.json")))
            as? [String: Any]
        let step = try #require(state?["step"] as? Int)
        #expect(step >= 15, "the final checkpoint holds the step training reached, \(step)")
        #expect(
            try CLI.charlm(["train", "--resume", "runs/brackets", "--max-steps", String(step + 3)], in: dir).status == 0
        )
    }

    // MARK: - Signals

    /// Moments of start-up, each found by watching the run's parent directory (fixed delays
    /// would land at different moments on faster and slower machines).
    enum StartUpMoment: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// At once: before the run's directory exists.
        case atLaunch
        /// As the staging directory `.brackets.tmp-…` appears (config, tokenizer and first
        /// checkpoint being written into it), or as soon after as it is seen.
        case staging
        /// 2 ms after the staging directory appears.
        case stagingPlus2ms
        /// As the run's directory appears (renamed from the staging one).
        case renamed
        /// 20 ms after the run's directory appears: the first steps of training.
        case renamedPlus20ms

        var testDescription: String { rawValue }
    }

    /// A signal at any moment of start-up leaves either no run directory or a complete one,
    /// never one that needs --overwrite.
    @Test(arguments: StartUpMoment.allCases)
    func aSignalDuringStartUpNeverLeavesABrokenRun(moment: StartUpMoment) throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let runs = dir.appendingPathComponent("runs")
        let run = runs.appendingPathComponent("brackets")
        let (process, _, err) = try Self.spawn(["train", CLI.corpus, "--max-steps", "100000"] + Self.small, in: dir)
        func waitFor(_ seen: () -> Bool) throws {
            let end = Date().addingTimeInterval(60)
            while !seen() {
                try #require(process.isRunning && Date() < end, "start-up did not reach \(moment)")
                usleep(300)
            }
        }
        let staged = {
            ((try? FileManager.default.contentsOfDirectory(atPath: runs.path)) ?? []).contains {
                $0.hasPrefix(".brackets.tmp-")
            } || FileManager.default.fileExists(atPath: run.path)
        }
        switch moment {
        case .atLaunch: break
        case .staging: try waitFor(staged)
        case .stagingPlus2ms:
            try waitFor(staged)
            usleep(2000)
        case .renamed: try waitFor { FileManager.default.fileExists(atPath: run.path) }
        case .renamedPlus20ms:
            try waitFor { FileManager.default.fileExists(atPath: run.path) }
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGINT)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(
            process.terminationStatus == 130 || process.terminationReason == .uncaughtSignal,
            "\(process.terminationStatus): \(errors)")
        let exists = FileManager.default.fileExists(atPath: run.path)
        if moment == .renamed || moment == .renamedPlus20ms {
            #expect(exists, "a run renamed into place stays")
        }
        if exists {
            let resumed = try CLI.charlm(["train", "--resume", "runs/brackets", "--max-steps", "3"], in: dir)
            #expect(resumed.status == 0, "a run that exists is complete: \(resumed.stderr)")
        } else {
            let fresh = try CLI.charlm(["train", CLI.corpus, "--max-steps", "3"] + Self.small, in: dir)
            #expect(fresh.status == 0, "no run: a new one starts without --overwrite: \(fresh.stderr)")
        }
        #expect(Self.temporaryFiles(in: dir).isEmpty, "nothing half-written is left: \(Self.temporaryFiles(in: dir))")
    }

    // MARK: - One training per run

    @Test func aSecondTrainingOfTheSameRunIsRefused() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (first, out) = try CLI.startTraining(["--patience", "0"] + Self.small, in: dir) {
            $0.contains("\"event\":\"progress\"")
        }
        for arguments in [["train", "--resume", "runs/brackets"], ["train", CLI.corpus, "--overwrite"] + Self.small] {
            let second = try CLI.charlm(arguments, in: dir)
            #expect(second.status == 1, "\(arguments): \(second.stderr)")
            #expect(second.stderr.contains("in use by process \(first.processIdentifier)"), "\(second.stderr)")
        }
        kill(first.processIdentifier, SIGINT)
        _ = out.readDataToEndOfFile()
        first.waitUntilExit()
        #expect(first.terminationStatus == 130)
        let after = try CLI.charlm(
            ["train", "--resume", "runs/brackets", "--max-steps", "100000", "--time", "1s"], in: dir)
        #expect(after.status == 0, "the lock goes with the process: \(after.stderr)")
    }

    // MARK: - Full disks

    @Test func aFullDiskDuringACheckpointLeavesThePreviousOneLoadable() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try CLI.charlm(["train", CLI.corpus, "--max-steps", "10"] + Self.small, in: dir).status == 0)
        let run = dir.appendingPathComponent("runs/brackets")
        let before = try Data(contentsOf: run.appendingPathComponent("model.safetensors"))
        let optimizer =
            try FileManager.default.attributesOfItem(atPath: run.appendingPathComponent("optimizer.safetensors").path)[
                .size] as! Int
        let full = try Self.withFileSizeLimit(
            optimizer / 2, ["train", "--resume", "runs/brackets", "--max-steps", "20"], in: dir)
        #expect(full.status == 1, "\(full.stderr)")
        #expect(full.stderr.contains("cannot write") && full.stderr.contains("File too large"), "\(full.stderr)")
        #expect(
            try Data(contentsOf: run.appendingPathComponent("model.safetensors")) == before,
            "the previous model file is untouched")
        #expect(Self.temporaryFiles(in: dir).isEmpty, "no temporary files left behind")
        let generate = try CLI.charlm(
            ["generate", "runs/brackets", "--checkpoint", "latest", "--length", "5", "--seed", "1"], in: dir)
        #expect(generate.status == 0, "\(generate.stderr)")
        #expect(try CLI.charlm(["train", "--resume", "runs/brackets", "--max-steps", "12"], in: dir).status == 0)

        let fresh = try Self.withFileSizeLimit(
            optimizer / 2, ["train", CLI.corpus, "--out", "runs/new", "--max-steps", "5"] + Self.small, in: dir)
        #expect(fresh.status == 1)
        #expect(
            !FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/new").path),
            "a run that could not be created does not exist")
    }

    @Test func tokenizerOutputsAppearWholeOrNotAtAll() throws {
        let dir = CLI.temporary()
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = dir.appendingPathComponent("corpus.txt")
        try FileManager.default.copyItem(atPath: CLI.corpus, toPath: corpus.path)
        let original = try Data(contentsOf: corpus)
        #expect(try CLI.charlm(["tokenizer", "build", "corpus.txt", "-o", "tok.json"], in: dir).status == 0)
        try Data("keep me\n".utf8).write(to: dir.appendingPathComponent("ids.txt"))

        let full = try Self.withFileSizeLimit(
            4096, ["tokenizer", "encode", "tok.json", "corpus.txt", "-o", "ids.txt"], in: dir)
        #expect(full.status == 1 && full.stderr.contains("charlm: error: cannot write"), "\(full.stderr)")
        #expect(
            try String(contentsOf: dir.appendingPathComponent("ids.txt"), encoding: .utf8) == "keep me\n",
            "a full disk leaves -o as it was")
        let missing = try CLI.charlm(["tokenizer", "encode", "tok.json", "nope.txt", "-o", "ids.txt"], in: dir)
        #expect(missing.status == 1)
        #expect(
            try String(contentsOf: dir.appendingPathComponent("ids.txt"), encoding: .utf8) == "keep me\n",
            "a missing input leaves -o as it was")
        for arguments in [
            ["tokenizer", "encode", "tok.json", "corpus.txt", "-o", "corpus.txt"],
            ["tokenizer", "encode", "tok.json", "corpus.txt", "-o", "tok.json"],
            ["tokenizer", "decode", "tok.json", "--ids", "1 2", "-o", "tok.json"],
            ["tokenizer", "stats", "corpus.txt", "-o", "corpus.txt"],
            ["tokenizer", "build", "corpus.txt", "-o", "corpus.txt"],
        ] {
            let refused = try CLI.charlm(arguments, in: dir)
            #expect(
                refused.status == 64
                    && (refused.stderr.contains("is the input") || refused.stderr.contains("is the corpus")),
                "\(arguments): \(refused.stderr)")
        }
        #expect(try Data(contentsOf: corpus) == original, "the corpus is untouched")
        let encoded = try CLI.charlm(["tokenizer", "encode", "tok.json", "corpus.txt", "-o", "ids.txt"], in: dir)
        #expect(encoded.status == 0)
        let decoded = try CLI.charlm(["tokenizer", "decode", "tok.json", "ids.txt"], in: dir)
        #expect(Data(decoded.stdout.utf8) == original, "and the file written is whole")
        #expect(Self.temporaryFiles(in: dir).isEmpty)
    }
}
