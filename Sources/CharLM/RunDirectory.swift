import CharIO
import CharNN
import CharTokenizer
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A training run on disk, laid out like a Hugging Face model directory:
///
///     RUN/config.json            model shape, training options, format version
///     RUN/tokenizer.json         the tokenizer (loadable by CharTokenizer alone)
///     RUN/model.safetensors      latest weights, PyTorch state-dict names
///     RUN/optimizer.safetensors  optimizer moments, step count, carried hidden state
///     RUN/trainer_state.json     step, epoch, data cursor, RNG, learning rate, history
///     RUN/metrics.csv            one row per logged step
///     RUN/loss.svg               training and validation curves
///     RUN/best/                  config, tokenizer, weights and state of the best validation
///
/// Saving never leaves the run unloadable: each file is written beside its destination,
/// flushed, then renamed; before the latest checkpoint's files are replaced, hard links to the
/// previous ones are kept in `RUN/.previous/`, which a loader falls back to if a crash left
/// the three files from different steps.
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

    static let stateFiles = ["model.safetensors", "optimizer.safetensors", "trainer_state.json"]

    /// Whether `name` is something charlm itself puts in a run directory.
    static func isRunFile(_ name: String) -> Bool {
        let ours: Set<String> = ["config.json", "tokenizer.json", "metrics.csv", "loss.svg", "best", "best.tmp", "best.old",
                                 ".previous", ".previous.tmp", ".previous.old", DirectoryLock.fileName]
        return ours.contains(name) || stateFiles.contains(name) || DurableFile.isTemporary(name)
    }

    /// Removes what interrupted writes left behind, and puts back a best/ that a crash left
    /// half-swapped (only best.old present).
    func tidy() {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: url.path)) ?? [] where DurableFile.isTemporary(name) {
            try? fm.removeItem(at: url.appendingPathComponent(name))
        }
        try? fm.removeItem(at: url.appendingPathComponent("best.tmp"))
        try? fm.removeItem(at: url.appendingPathComponent(".previous.tmp"))
        let old = url.appendingPathComponent("best.old")
        if !fm.fileExists(atPath: bestURL.path) && fm.fileExists(atPath: old.path) {
            _ = rename(old.path, bestURL.path)
        }
    }

    /// Whether the directory exists.
    public var exists: Bool { FileManager.default.fileExists(atPath: url.path) }

    /// Takes the run's lock: one process at a time may write a run (`charlm train`, a resume).
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

    // MARK: - Creating

    /// Creates the run directory holding config.json, tokenizer.json and what `initialize`
    /// writes (the step-0 checkpoint). Everything is written into a hidden directory beside the
    /// run, which is then renamed into place whole: a run directory either does not exist or
    /// holds a complete checkpoint, whenever the process is stopped.
    /// - Parameter overwrite: remove an existing run at this path first (never a file, a
    ///   directory holding anything charlm did not write, or a run another process is using).
    /// - Returns: the lock on the new run, held until the caller lets it go.
    func create(config: RunConfig, tokenizer: Tokenizer, overwrite: Bool,
                initialize: (RunDirectory) throws -> Void) throws -> DirectoryLock {
        let fm = FileManager.default
        let parent = url.deletingLastPathComponent()
        try makeDirectory(parent)
        removeAbandonedCreations(in: parent)
        let staging = RunDirectory(parent.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"))
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
            throw CharLMError.invalidOptions("refusing to overwrite \(url.path): it holds '\(foreign)', which is not part of a charlm run")
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
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? [] where name.hasPrefix(prefix) {
            let candidate = parent.appendingPathComponent(name)
            guard let lock = try? DirectoryLock(candidate) else { continue }
            try? FileManager.default.removeItem(at: candidate)
            lock.release()
        }
    }

    // MARK: - Saving

    /// The weights as a safetensors file, named and shaped like PyTorch's state dict.
    static func modelFile(_ network: Network, step: Int) -> SafeTensors {
        var file = SafeTensors()
        file.metadata = ["format": "pt", "charlm_step": String(step), "cell": network.config.cell.rawValue]
        network.parameters.withUnsafeBufferPointer { all in
            for info in network.layout.tensors {
                file.add(info.name, shape: info.shape, values: UnsafeBufferPointer(rebasing: all[info.offset..<(info.offset + info.count)]))
            }
        }
        return file
    }

    static func optimizerFile(_ optimizer: Optimizer, hidden: RecurrentState, step: Int) -> SafeTensors {
        var file = SafeTensors()
        file.metadata = ["charlm_step": String(step), "optimizer": optimizer.config.kind.rawValue]
        file.add("step", shape: [1], int64: [Int64(optimizer.step)])
        for name in optimizer.stateNames {
            optimizer.stateBuffer(name)!.withUnsafeBufferPointer { file.add(name, shape: [$0.count], values: $0) }
        }
        let shape = [hidden.layers, hidden.batchSize, hidden.hiddenSize]
        hidden.h.withUnsafeBufferPointer { file.add("hidden.h", shape: shape, values: $0) }
        hidden.c?.withUnsafeBufferPointer { file.add("hidden.c", shape: shape, values: $0) }
        return file
    }

    /// Saves the latest checkpoint (weights, optimizer, hidden state, trainer state).
    func saveLatest(network: Network, optimizer: Optimizer, hidden: RecurrentState, trainer: TrainerState) throws {
        let contents = [
            Self.modelFile(network, step: trainer.step).encoded(),
            Self.optimizerFile(optimizer, hidden: hidden, step: trainer.step).encoded(),
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
        guard (try? Self.checkpointStep(in: url)) != nil else { return }
        let building = url.appendingPathComponent(".previous.tmp")
        try? fm.removeItem(at: building)
        try makeDirectory(building)
        for name in Self.stateFiles {
            try Self.linkOrCopy(url.appendingPathComponent(name), to: building.appendingPathComponent(name))
        }
        DurableFile.syncDirectory(building)
        try swapIn(building, as: previousURL)
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

    /// Saves the best checkpoint into best/ (swapped in as a whole directory).
    func saveBest(network: Network, trainer: TrainerState) throws {
        let fm = FileManager.default
        tidy()
        let building = url.appendingPathComponent("best.tmp")
        try? fm.removeItem(at: building)
        try makeDirectory(building)
        for name in ["config.json", "tokenizer.json"] {
            try Self.linkOrCopy(url.appendingPathComponent(name), to: building.appendingPathComponent(name))
        }
        try writeDurably(Self.modelFile(network, step: trainer.step).encoded(), to: building.appendingPathComponent("model.safetensors"))
        try writeDurably(trainer.jsonData(), to: building.appendingPathComponent("trainer_state.json"))
        try swapIn(building, as: bestURL)
    }

    // MARK: - Loading

    /// Reads weights into `network`, checking every name and shape.
    public static func loadWeights(_ file: SafeTensors, into network: Network, source: String) throws {
        let expected = Set(network.layout.tensors.map(\.name))
        if let extra = file.names.first(where: { !expected.contains($0) }) {
            throw CharLMError.invalidFile(path: source, reason: "holds tensor '\(extra)', which a \(network.config.cell.rawValue) model of this shape does not have")
        }
        try network.parameters.withUnsafeMutableBufferPointer { all in
            for info in network.layout.tensors {
                let slice = UnsafeMutableBufferPointer(rebasing: all[info.offset..<(info.offset + info.count)])
                guard try file.copyFloats(info.name, shape: info.shape, into: slice, source: source) else {
                    throw CharLMError.invalidFile(path: source, reason: "tensor '\(info.name)' holds NaN or infinite values")
                }
            }
        }
        network.parametersDidChange()
    }

    /// The checkpoint in `directory`, when its three files agree on one step.
    static func checkpoint(in directory: URL) throws -> (model: SafeTensors, optimizer: SafeTensors, trainer: TrainerState) {
        let model = try SafeTensors(contentsOf: directory.appendingPathComponent("model.safetensors"))
        let optimizer = try SafeTensors(contentsOf: directory.appendingPathComponent("optimizer.safetensors"))
        let trainer = try TrainerState.load(from: directory.appendingPathComponent("trainer_state.json"))
        let steps = [model.metadata["charlm_step"], optimizer.metadata["charlm_step"], String(trainer.step)]
        guard Set(steps).count == 1 else {
            throw CharLMError.invalidFile(path: directory.path, reason: "checkpoint files come from different steps (\(steps.map { $0 ?? "?" }.joined(separator: ", ")))")
        }
        return (model, optimizer, trainer)
    }

    /// The step of the checkpoint in `directory`, if its three files agree on one.
    static func checkpointStep(in directory: URL) throws -> Int {
        try checkpoint(in: directory).trainer.step
    }

    /// The latest checkpoint's three files, from the run directory or, if a crash left those
    /// inconsistent, from .previous.
    func latestCheckpointFiles() throws -> (model: SafeTensors, optimizer: SafeTensors, trainer: TrainerState, source: URL) {
        var firstError: Error?
        for directory in [url, previousURL] {
            do {
                let files = try Self.checkpoint(in: directory)
                return (files.model, files.optimizer, files.trainer, directory)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        throw CharLMError.invalidFile(path: url.path, reason: "no complete checkpoint to resume from (\(firstError.map { "\($0)" } ?? "none")); start again with --overwrite")
    }

    /// Restores optimizer state and the carried hidden state.
    static func loadOptimizer(_ file: SafeTensors, into optimizer: Optimizer, hidden: RecurrentState, source: String) throws {
        guard file.metadata["optimizer"] == optimizer.config.kind.rawValue else {
            throw CharLMError.invalidFile(path: source, reason: "holds the state of optimizer \(file.metadata["optimizer"] ?? "?"), but config.json says \(optimizer.config.kind.rawValue)")
        }
        let step = try file.int64s("step", source: source)
        guard step.count == 1, step[0] >= 0 else { throw CharLMError.invalidFile(path: source, reason: "bad optimizer step") }
        var buffers: [String: [Float]] = [:]
        for name in optimizer.stateNames {
            buffers[name] = try file.floats(name, shape: [optimizer.parameterCount], source: source)
        }
        do { try optimizer.restore(step: Int(step[0]), buffers: buffers) } catch {
            throw CharLMError.invalidFile(path: source, reason: "\(error)")
        }
        let shape = [hidden.layers, hidden.batchSize, hidden.hiddenSize]
        let h = try file.floats("hidden.h", shape: shape, source: source)
        hidden.h.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = h[i] } }
        if let c = hidden.c {
            let values = try file.floats("hidden.c", shape: shape, source: source)
            c.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = values[i] } }
        }
    }
}
