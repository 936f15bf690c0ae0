import CharNN
import Foundation

#if MPI
import CMPI
#endif

/// Data-parallel training over MPI: the processes `mpirun` starts ("ranks") each hold the whole
/// model, train on their share of every batch's streams, and average their gradients.
///
/// Built only with the `MPI` package trait (`swift build -c release --traits MPI`); without it,
/// or without `mpirun`, every run is an ordinary single process (`Distributed.world` is nil).
public enum Distributed {
    /// Whether this build can run distributed.
    public static var isAvailable: Bool {
        #if MPI
        true
        #else
        false
        #endif
    }

    /// Ranks `mpirun` (or another MPI launcher) says this job has, from its environment,
    /// before MPI starts; 1 without a launcher.
    public static var launchedRanks: Int {
        let environment = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS"] {
            if let value = environment[key].flatMap(Int.init), value >= 1 { return value }
        }
        return 1
    }

    /// Ranks of this job on this machine (for the default thread count).
    public static var localRanks: Int {
        let environment = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"] {
            if let value = environment[key].flatMap(Int.init), value >= 1 { return value }
        }
        return launchedRanks
    }

    /// The job's communicator once `start()` ran under a launcher with more than one rank.
    public nonisolated(unsafe) private(set) static var world: Communicator?

    /// Starts MPI when this build has it and a launcher started more than one rank; otherwise
    /// does nothing (one process trains alone). Call once, before any thread is started.
    @discardableResult
    public static func start() throws -> Communicator? {
        #if MPI
        guard world == nil, launchedRanks > 1 else { return world }
        var funneled: Int32 = 0
        guard charlm_mpi_init(&funneled) == charlm_mpi_success() else {
            throw CharLMError.distributed("MPI did not start (MPI_Init_thread failed)")
        }
        guard funneled != 0 else {
            charlm_mpi_finalize()
            throw CharLMError.distributed(
                "this MPI library does not allow MPI calls in a threaded process (MPI_THREAD_FUNNELED)")
        }
        let size = Int(charlm_mpi_size())
        // A launcher variable seen in a single-process context (a batch script's environment):
        // MPI says one rank, so this is an ordinary run.
        guard size > 1 else {
            charlm_mpi_finalize()
            return nil
        }
        let communicator = Communicator(rank: Int(charlm_mpi_rank()), size: size)
        world = communicator
        return communicator
        #else
        if launchedRanks > 1 {
            throw CharLMError.distributed(
                "mpirun started \(launchedRanks) copies of a charlm built without MPI, which would each train alone; "
                    + "build it with `swift build -c release --traits MPI` to train them together")
        }
        return nil
        #endif
    }

    /// A fingerprint of the running executable's bytes (ranks compare it at start, so that a
    /// job whose machines run different charlm builds stops with a clear error).
    public static let buildIdentifier: String = {
        guard
            let data = FileManager.default.contents(atPath: "/proc/self/exe")
                ?? CommandLine.arguments.first.flatMap({
                    FileManager.default.contents(atPath: $0)
                })
        else { return "unknown" }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        data.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words {
                hash = (hash ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01B3
                hash ^= hash >> 29
            }
            for i in (words * 8)..<raw.count { hash = (hash ^ UInt64(raw[i])) &* 0x100_0000_01B3 }
        }
        return "\(data.count)-" + String(hash, radix: 16)
    }()

    /// One line for `charlm info` and `charlm train`.
    public static var summary: String {
        guard isAvailable else {
            return "not in this build (build with `swift build -c release --traits MPI` to train under mpirun)"
        }
        if let world { return "MPI, \(world.size) ranks (this is rank \(world.rank))" }
        return "MPI build, 1 rank (start it with `mpirun -np N charlm train ...` to train on several)"
    }

    /// Ends MPI cleanly (call when the job's work is done, on every rank).
    public static func finish() {
        #if MPI
        if world != nil && charlm_mpi_initialized() != 0 { charlm_mpi_finalize() }
        world = nil
        #endif
    }

    /// Stops every rank of the job (an error on one rank that the others cannot know of).
    public static func abort(code: Int32) -> Never {
        #if MPI
        if world != nil { charlm_mpi_abort(code) }
        #endif
        exit(code)
    }
}

/// The ranks of a distributed job and the collective operations the trainer uses. Every rank
/// must make the same calls in the same order.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int

    init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    /// Rank 0 writes the run directory and reports.
    public var isLeader: Bool { rank == 0 }

    /// The streams `rank` trains on, of a batch of `batchSize`: contiguous, the first
    /// `batchSize % size` ranks one more (as threads split a batch in one process).
    public static func rows(of rank: Int, ranks: Int, batchSize: Int) -> Range<Int> {
        let base = batchSize / ranks, extra = batchSize % ranks
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    public func rows(batchSize: Int) -> Range<Int> { Self.rows(of: rank, ranks: size, batchSize: batchSize) }

    private func check(_ code: Int32, _ what: String) throws {
        #if MPI
        if code != charlm_mpi_success() { throw CharLMError.distributed("\(what) failed on rank \(rank)") }
        #endif
    }

    /// Sums `count` floats at `values` over every rank, in place.
    func sum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        #if MPI
        // One call for the whole buffer up to 2^31 - 1 floats; larger buffers go in pieces.
        var offset = 0
        while offset < count {
            let piece = min(count - offset, Int(Int32.max))
            try check(charlm_mpi_allreduce_sum_float(values + offset, piece), "MPI_Allreduce")
            offset += piece
        }
        #endif
    }

    /// Sums doubles over every rank.
    func sum(_ values: [Double]) throws -> [Double] {
        var values = values
        #if MPI
        try check(charlm_mpi_allreduce_sum_double(&values, Int32(values.count)), "MPI_Allreduce")
        #endif
        return values
    }

    /// The largest of each flag over every rank.
    func max(_ values: [Int32]) throws -> [Int32] {
        var values = values
        #if MPI
        try check(charlm_mpi_allreduce_max_int(&values, Int32(values.count)), "MPI_Allreduce")
        #endif
        return values
    }

    /// The smallest and largest of `value` over every rank.
    func range(of value: UInt64) throws -> (min: UInt64, max: UInt64) {
        var low = value, high = value
        #if MPI
        try check(charlm_mpi_allreduce_minmax_u64(value, &low, &high), "MPI_Allreduce")
        #endif
        return (low, high)
    }

    /// Every rank's `mine`, concatenated in rank order; `counts[r]` is rank r's count.
    func gather(_ mine: [Float], counts: [Int]) throws -> [Float] {
        precondition(counts.count == size && counts[rank] == mine.count, "gather counts disagree")
        var all = [Float](repeating: 0, count: counts.reduce(0, +))
        #if MPI
        let counts32 = counts.map { Int32($0) }
        var displacements: [Int32] = []
        var offset: Int32 = 0
        for c in counts32 {
            displacements.append(offset)
            offset += c
        }
        try check(
            charlm_mpi_allgatherv_float(mine, Int32(mine.count), &all, counts32, displacements), "MPI_Allgatherv")
        #else
        all = mine
        #endif
        return all
    }

    func barrier() throws {
        #if MPI
        try check(charlm_mpi_barrier(), "MPI_Barrier")
        #endif
    }
}
