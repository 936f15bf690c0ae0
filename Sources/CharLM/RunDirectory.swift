import CharIO
import CharNN
import CharTokenizer
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A training run on disk, laid out like a Hugging Face model directory, and the protocol that
/// keeps it loadable whatever happens to the process writing it.
///
///     RUN/config.json            model, training options, format version
///     RUN/tokenizer.json         the tokenizer (loadable by CharTokenizer alone)
///     RUN/model.safetensors      latest weights, PyTorch state-dict names       ┐ the latest
///     RUN/optimizer.safetensors  optimizer moments, step count, hidden state    │ checkpoint
///     RUN/trainer_state.json     step, epoch, data cursor, RNG, rate, history   ┘
///     RUN/metrics.csv            one row per logged step (a log, not state)
///     RUN/best/                  config, tokenizer, weights and state of the best validation
///     RUN/checkpoints/step-N/    weights and state kept at validations (--keep-checkpoints)
///     RUN/.previous/             hard links to the checkpoint before the latest
///     RUN/.lock                  held by the process training the run
///
/// ## Invariants
///
/// 1. **Files appear whole.** Every file is written through `DurableFile`: a temporary file
///    beside it, flushed, renamed over it, the directory flushed. A reader sees the old file or
///    the new one, never a mixture; a failed write (a full disk) leaves the old one.
/// 2. **A run directory is never half made.** `create` writes config, tokenizer and a step-0
///    checkpoint into a hidden directory beside the run and renames it into place: the run
///    either does not exist or holds a checkpoint.
/// 3. **A checkpoint is consistent when its three files name one step.** Each records its step
///    (`charlm_step` in the safetensors metadata, `step` in the JSON); `checkpoint(in:)`
///    accepts the three only when they agree.
/// 4. **The last consistent checkpoint is always on disk.** Before `saveLatest` renames new
///    files over a consistent checkpoint, it hard-links that checkpoint into `.previous/`
///    (built as `.previous.tmp/`, then swapped in). A crash between the three renames leaves
///    files from two steps: loaders then use `.previous/` (`loadLatest`, `loadModel`).
/// 5. **best/ is replaced whole.** It is built as `best.tmp/` and swapped in through
///    `best.old/`; if a crash interrupts the swap, loaders use `best.old/` and `tidy` puts it back.
/// 6. **One writer.** A process that writes a run (`charlm train`, a resume) holds `.lock`
///    (`DirectoryLock`); a second one is refused, naming the first.
/// 7. **Leftovers are harmless.** Temporary files, `best.tmp/`, `.previous.tmp/` and abandoned
///    creations are ignored by loaders and removed by `tidy` (on resume) and `create`.
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ url: URL) {
        self.url = url.standardizedFileURL
    }

    public var configURL: URL { url.appendingPathComponent("config.json") }
    public var tokenizerURL: URL { url.appendingPathComponent("tokenizer.json") }
    public var modelURL: URL { url.appendingPathComponent("model.safetensors") }
    public var optimizerURL: URL { url.appendingPathComponent("optimizer.safetensors") }
    public var trainerStateURL: URL { url.appendingPathComponent("trainer_state.json") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.csv") }
    public var plotURL: URL { url.appendingPathComponent("loss.svg") }
    public var bestURL: URL { url.appendingPathComponent("best") }
    var previousURL: URL { url.appendingPathComponent(".previous") }
    var bestOldURL: URL { url.appendingPathComponent("best.old") }

    /// The three files of a checkpoint.
    static let stateFiles = ["model.safetensors", "optimizer.safetensors", "trainer_state.json"]

    /// Whether `name` is something charlm itself puts in a run directory.
    static func isRunFile(_ name: String) -> Bool {
        let ours: Set<String> = [
            "config.json", "tokenizer.json", "metrics.csv", "loss.svg", "model.int8.safetensors", "best", "best.tmp",
            "best.old",
            ".previous", ".previous.tmp", ".previous.old", DirectoryLock.fileName,
        ]
        return ours.contains(name) || stateFiles.contains(name) || DurableFile.isTemporary(name)
    }

    /// Whether the directory exists.
    public var exists: Bool { FileManager.default.fileExists(atPath: url.path) }

    /// Takes the run's lock: one process at a time may write a run (invariant 6).
    /// - Throws: `CharLMError.runInUse` naming the process that holds it.
    func lock() throws -> DirectoryLock {
        do {
            return try DirectoryLock(url)
        } catch DirectoryLockError.inUse(_, let pid) {
            throw CharLMError.runInUse(path: url.path, pid: pid)
        } catch let error as DirectoryLockError {
            throw CharLMError.unwritable(path: url.path, reason: "\(error)")
        }
    }

    /// Removes what interrupted writes left behind, and puts back a best/ that a crash left
    /// half-swapped (invariants 5 and 7).
    func tidy() {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: url.path)) ?? [] where DurableFile.isTemporary(name) {
            try? fm.removeItem(at: url.appendingPathComponent(name))
        }
        try? fm.removeItem(at: url.appendingPathComponent("best.tmp"))
        try? fm.removeItem(at: url.appendingPathComponent(".previous.tmp"))
        if !fm.fileExists(atPath: bestURL.path) && fm.fileExists(atPath: bestOldURL.path) {
            _ = rename(bestOldURL.path, bestURL.path)
        }
    }

    // MARK: - Creating

    /// Creates the run directory holding config.json, tokenizer.json and what `initialize`
    /// writes (the step-0 checkpoint). Everything is written into a hidden directory beside the
    /// run, which is then renamed into place whole: a run directory either does not exist or
    /// holds a complete checkpoint, whenever the process is stopped.
    /// - Parameter overwrite: remove an existing run at this path first (never a file, a
    ///   directory holding anything charlm did not write, or a run another process is using).
    /// - Returns: the lock on the new run, held until the caller lets it go.
    func create(
        config: RunConfig, tokenizer: Tokenizer, overwrite: Bool,
        initialize: (RunDirectory) throws -> Void
    ) throws -> DirectoryLock {
        let fm = FileManager.default
        let parent = url.deletingLastPathComponent()
        try makeDirectory(parent)
        removeAbandonedCreations(in: parent)
        let staging = RunDirectory(
            parent.appendingPathComponent(
                ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"))
        try makeDirectory(staging.url)
        let lock: DirectoryLock
        do {
            lock = try staging.lock()
            try writeDurably(config.jsonData(), to: staging.configURL)
            try writeDurably(tokenizer.jsonData(), to: staging.tokenizerURL)
            try initialize(staging)
            if exists {
                guard overwrite else { throw CharLMError.runExists(path: url.path) }
                try removeForOverwrite()
            }
            guard rename(staging.url.path, url.path) == 0 else {
                if errno == EEXIST || errno == ENOTEMPTY { throw CharLMError.runExists(path: url.path) }
                throw CharLMError.unwritable(path: url.path, reason: String(cString: strerror(errno)))
            }
        } catch {
            try? fm.removeItem(at: staging.url)
            throw error
        }
        DurableFile.syncDirectory(parent)
        return lock
    }

    /// Removes this run for `--overwrite`, after checking that it is a run no one is using.
    private func removeForOverwrite() throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        _ = fm.fileExists(atPath: url.path, isDirectory: &isDirectory)
        guard isDirectory.boolValue else {
            throw CharLMError.invalidOptions("refusing to overwrite \(url.path): it is a file, not a run directory")
        }
        let contents: [String]
        do { contents = try fm.contentsOfDirectory(atPath: url.path) } catch {
            throw CharLMError.unwritable(path: url.path, reason: error.localizedDescription)
        }
        if let foreign = contents.first(where: { !Self.isRunFile($0) }) {
            throw CharLMError.invalidOptions(
                "refusing to overwrite \(url.path): it holds '\(foreign)', which is not part of a charlm run")
        }
        let existing = try lock()
        defer { existing.release() }
        do { try fm.removeItem(at: url) } catch {
            throw CharLMError.unwritable(path: url.path, reason: error.localizedDescription)
        }
    }

    /// Removes hidden directories that creations of this run left when they were killed
    /// (`.NAME.tmp-…` beside it, whose lock no process holds).
    private func removeAbandonedCreations(in parent: URL) {
        let prefix = ".\(url.lastPathComponent).tmp-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
        where name.hasPrefix(prefix) {
            let candidate = parent.appendingPathComponent(name)
            guard let lock = try? DirectoryLock(candidate) else { continue }
            try? FileManager.default.removeItem(at: candidate)
            lock.release()
        }
    }

    // MARK: - Saving

    /// Saves the latest checkpoint (weights, optimizer, hidden state, trainer state), keeping
    /// the one before it in .previous (invariants 1, 3 and 4).
    func saveLatest(
        network: Network, optimizer: Optimizer, hidden: RecurrentState, averaged: FloatBuffer?, trainer: TrainerState
    ) throws {
        let contents = [
            CheckpointFiles.modelFile(network, step: trainer.step).encoded(),
            CheckpointFiles.optimizerFile(optimizer, hidden: hidden, averaged: averaged, step: trainer.step).encoded(),
            try trainer.jsonData(),
        ]
        do {
            // Written (invisible) first, so that a full disk fails before anything is replaced.
            let writers = try zip(Self.stateFiles, contents).map { name, data throws in
                let writer = try DurableFile.Writer(for: url.appendingPathComponent(name))
                try data.withUnsafeBytes { bytes in try writer.write(bytes) }
                return writer
            }
            try keepPrevious()
            for writer in writers { try writer.commit() }
        } catch let error as DurableFileError {
            throw CharLMError(error)
        }
    }

    /// Hard-links the current checkpoint files into .previous (replacing it atomically), when
    /// they form a consistent checkpoint; otherwise .previous, the last consistent one, stays.
    private func keepPrevious() throws {
        let fm = FileManager.default
        guard (try? Self.checkpoint(in: url)) != nil else { return }
        let building = url.appendingPathComponent(".previous.tmp")
        try? fm.removeItem(at: building)
        try makeDirectory(building)
        for name in Self.stateFiles {
            try Self.linkOrCopy(url.appendingPathComponent(name), to: building.appendingPathComponent(name))
        }
        DurableFile.syncDirectory(building)
        try swapIn(building, as: previousURL)
    }

    /// Saves the best checkpoint into best/, swapped in as a whole directory (invariant 5).
    func saveBest(network: Network, trainer: TrainerState) throws {
        let fm = FileManager.default
        tidy()
        let building = url.appendingPathComponent("best.tmp")
        try? fm.removeItem(at: building)
        try makeDirectory(building)
        for name in ["config.json", "tokenizer.json"] {
            try Self.linkOrCopy(url.appendingPathComponent(name), to: building.appendingPathComponent(name))
        }
        try writeDurably(
            CheckpointFiles.modelFile(network, step: trainer.step).encoded(),
            to: building.appendingPathComponent("model.safetensors"))
        try writeDurably(trainer.jsonData(), to: building.appendingPathComponent("trainer_state.json"))
        try swapIn(building, as: bestURL)
    }

    /// Replaces the directory `destination` by the finished directory `building`: the old one
    /// is renamed to `<destination>.old`, the new one renamed into place, then the old removed.
    private func swapIn(_ building: URL, as destination: URL) throws {
        let fm = FileManager.default
        let old = url.appendingPathComponent(destination.lastPathComponent + ".old")
        try? fm.removeItem(at: old)
        if fm.fileExists(atPath: destination.path) { _ = rename(destination.path, old.path) }
        guard rename(building.path, destination.path) == 0 else {
            throw CharLMError.unwritable(path: destination.path, reason: String(cString: strerror(errno)))
        }
        DurableFile.syncDirectory(url)
        try? fm.removeItem(at: old)
    }

    /// A hard link to `source` at `target` (files are only ever replaced by rename, never
    /// rewritten in place, so a link is a snapshot); a copy where links are not supported.
    private static func linkOrCopy(_ source: URL, to target: URL) throws {
        guard link(source.path, target.path) != 0 else { return }
        do { try FileManager.default.copyItem(at: source, to: target) } catch {
            throw CharLMError.unwritable(path: target.path, reason: error.localizedDescription)
        }
    }

    // MARK: - Kept checkpoints

    /// Where the weights of `step` are kept: RUN/checkpoints/step-N.
    func keptCheckpointURL(step: Int) -> URL {
        url.appendingPathComponent("checkpoints").appendingPathComponent("step-\(step)")
    }

    /// The steps whose checkpoints are kept, in order.
    func keptCheckpointSteps() -> [Int] {
        let names =
            (try? FileManager.default.contentsOfDirectory(atPath: url.appendingPathComponent("checkpoints").path)) ?? []
        return names.compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.sorted()
    }

    /// Keeps the latest checkpoint's weights (and its config, tokenizer and trainer state) as
    /// checkpoints/step-N, as hard links to the files just saved (files are only ever replaced by
    /// rename, so a link is a snapshot), built beside it and renamed into place; then removes
    /// all but the `keep` most recent.
    func keepCheckpoint(step: Int, keep: Int) throws {
        let fm = FileManager.default
        let directory = url.appendingPathComponent("checkpoints")
        let building = directory.appendingPathComponent(".step-\(step).tmp")
        try? fm.removeItem(at: building)
        try makeDirectory(building)
        for name in ["config.json", "tokenizer.json", "model.safetensors", "trainer_state.json"] {
            try Self.linkOrCopy(url.appendingPathComponent(name), to: building.appendingPathComponent(name))
        }
        DurableFile.syncDirectory(building)
        let destination = keptCheckpointURL(step: step)
        try? fm.removeItem(at: destination)
        guard rename(building.path, destination.path) == 0 else {
            throw CharLMError.unwritable(path: destination.path, reason: String(cString: strerror(errno)))
        }
        for old in keptCheckpointSteps().dropLast(keep) { try? fm.removeItem(at: keptCheckpointURL(step: old)) }
        DurableFile.syncDirectory(directory)
    }

    // MARK: - Loading

    /// config.json and tokenizer.json, checked against each other.
    func loadConfig() throws -> (RunConfig, Tokenizer) {
        try Self.loadConfig(in: url)
    }

    static func loadConfig(in directory: URL) throws -> (RunConfig, Tokenizer) {
        var config = try RunConfig.load(from: directory.appendingPathComponent("config.json"))
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.load(from: tokenizerURL) } catch let error as TokenizerError {
            throw CharLMError.invalidFile(path: tokenizerURL.path, reason: error.localizedDescription)
        }
        guard tokenizer.vocabularySize == config.model.vocabularySize else {
            throw CharLMError.invalidFile(
                path: directory.path,
                reason:
                    "tokenizer.json has \(tokenizer.vocabularySize) tokens but config.json says "
                    + "\(config.model.vocabularySize)"
            )
        }
        config.tokenizer = tokenizer.config
        return (config, tokenizer)
    }

    /// The checkpoint in `directory`, when its three files agree on one step (invariant 3).
    static func checkpoint(in directory: URL) throws -> (
        model: SafeTensors, optimizer: SafeTensors, state: TrainerState
    ) {
        let model = try SafeTensors(contentsOf: directory.appendingPathComponent("model.safetensors"))
        let optimizer = try SafeTensors(contentsOf: directory.appendingPathComponent("optimizer.safetensors"))
        let state = try TrainerState.load(from: directory.appendingPathComponent("trainer_state.json"))
        let steps = [CheckpointFiles.step(of: model), CheckpointFiles.step(of: optimizer), String(state.step)]
        guard Set(steps).count == 1 else {
            throw CharLMError.invalidFile(
                path: directory.path,
                reason:
                    "checkpoint files come from different steps (\(steps.map { $0 ?? "?" }.joined(separator: ", ")))")
        }
        return (model, optimizer, state)
    }

    /// The latest consistent checkpoint: the run's own, or, if a crash left those from
    /// different steps, .previous (invariant 4).
    /// - Returns: its files, the directory they are in, and why the run's own were not used.
    func latestCheckpoint() throws -> (
        model: SafeTensors, optimizer: SafeTensors, state: TrainerState, source: URL, skipped: Error?
    ) {
        var problem: Error?
        for directory in [url, previousURL] {
            do {
                let files = try Self.checkpoint(in: directory)
                return (files.model, files.optimizer, files.state, directory, problem)
            } catch {
                if problem == nil { problem = error }
            }
        }
        throw CharLMError.invalidFile(
            path: url.path,
            reason:
                "no complete checkpoint to resume from (\(problem.map { "\($0)" } ?? "none")); start again with "
                + "--overwrite"
        )
    }

    /// Loads the latest consistent checkpoint into `network`, `optimizer` and `hidden`.
    /// - Returns: the trainer state, and a sentence saying why .previous was used, if it was.
    func loadLatest(into network: Network, optimizer: Optimizer, hidden: RecurrentState, averaged: FloatBuffer?)
        throws -> (
            state: TrainerState, fallback: String?
        )
    {
        let latest = try latestCheckpoint()
        try CheckpointFiles.loadWeights(
            latest.model, into: network, source: latest.source.appendingPathComponent("model.safetensors").path)
        try CheckpointFiles.loadOptimizer(
            latest.optimizer, into: optimizer, hidden: hidden, averaged: averaged,
            source: latest.source.appendingPathComponent("optimizer.safetensors").path)
        let fallback = latest.skipped.map {
            "the latest checkpoint cannot be used (\($0)); resuming from the previous one, at step \(latest.state.step)"
        }
        return (latest.state, fallback)
    }

    /// The directory holding the weights a reader of `checkpoint` should load: best/ (or
    /// best.old/ after an interrupted swap), the run itself, or .previous when the run's latest
    /// files are missing (invariants 4 and 5).
    func weightsDirectory(_ checkpoint: LanguageModel.Checkpoint) throws -> URL {
        let fm = FileManager.default
        func hasWeights(_ directory: URL) -> Bool {
            fm.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path)
        }
        if case .step(let step) = checkpoint {
            let kept = keptCheckpointURL(step: step)
            guard hasWeights(kept) else {
                let steps = keptCheckpointSteps()
                throw CharLMError.missingFile(
                    path: kept.path,
                    hint: steps.isEmpty
                        ? "the run keeps no step checkpoints (train with --keep-checkpoints N)"
                        : "the run keeps " + steps.map { "step-\($0)" }.joined(separator: ", "))
            }
            return kept
        }
        if checkpoint == .best, let best = [bestURL, bestOldURL].first(where: hasWeights) { return best }
        if hasWeights(url) { return url }
        if hasWeights(previousURL) { return previousURL }
        throw CharLMError.missingFile(path: modelURL.path, hint: "the run has no saved checkpoint yet")
    }
}
