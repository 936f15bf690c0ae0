import CharNN
import CharTokenizer
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Measurements behind `charlm bench`: training and generation throughput on synthetic ids,
/// the machine's matrix-product peak, and memory use. Timing only; nothing here is a test.
public enum Benchmark {
    /// Matrix-product work per character of one training step (forward, backward).
    public static func trainingFlopsPerCharacter(_ c: NetworkConfig) -> Double {
        let g = Double(c.gateWidth), h = Double(c.hiddenSize), v = Double(c.vocabularySize)
        let width = Double(c.outputWidth), directions = Double(c.directions)
        var flops = 6 * width * v
        for l in 0..<c.layers { flops += directions * (6 * g * h + (l > 0 ? 6 * g * width : 0)) }
        return flops
    }

    public struct TrainingResult: Sendable {
        public let charactersPerSecond: [Double]
        public let flopsPerCharacter: Double
        /// Resident memory after the warm-up steps and after the last timed step, in bytes.
        public let residentAfterWarmup: Int
        public let residentAtEnd: Int
        public var median: Double { charactersPerSecond.sorted()[charactersPerSecond.count / 2] }
        public var gflops: Double { median * flopsPerCharacter / 1e9 }
    }

    /// Times full training steps (forward, backward, clipping at 5, an Adam update) on random
    /// ids: `repeats` timings of `steps` steps each.
    public static func training(
        config: NetworkConfig, batchSize: Int, seqLength: Int, steps: Int, repeats: Int,
        threads: Int
    ) throws -> TrainingResult {
        let network = try Network(config: config, seed: 1)
        let runner = BatchRunner(network: network, batchSize: batchSize, seqLength: seqLength, threads: threads)
        let optimizer = try Optimizer(
            config: OptimizerConfig(kind: .adam, learningRate: 2e-3), parameterCount: network.parameterCount)
        let gradients = FloatBuffer(count: network.parameterCount)
        let state = RecurrentState(config: config, batchSize: batchSize)
        var rng = SeededGenerator(seed: 7)
        let v = UInt64(config.vocabularySize)
        let ids = (0..<(batchSize * (seqLength + 1))).map { _ in Int32(rng.next() % v) }
        var inputs: [Int32] = [], targets: [Int32] = []
        for b in 0..<batchSize {
            let row = ids[(b * (seqLength + 1))..<((b + 1) * (seqLength + 1))]
            inputs += row.dropLast()
            targets += row.dropFirst()
        }
        func step() throws {
            _ = try runner.trainStep(inputs: inputs, targets: targets, state: state, gradients: gradients)
            GradientClipping.clip(gradients, maxNorm: 5)
            optimizer.update(parameters: network.parameters, gradients: gradients)
            network.parametersDidChange()
        }
        for _ in 0..<3 { try step() }
        let warm = residentBytes()
        var rates: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<steps { try step() }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            rates.append(Double(batchSize * seqLength * steps) / seconds)
        }
        return TrainingResult(
            charactersPerSecond: rates, flopsPerCharacter: trainingFlopsPerCharacter(config),
            residentAfterWarmup: warm, residentAtEnd: residentBytes())
    }

    public struct GenerationResult: Sendable {
        /// Characters per second per repeat (all samples together).
        public let charactersPerSecond: [Double]
        /// Seconds from the start of the prompt to the first sampled character.
        public let firstCharacterSeconds: Double
        public var median: Double { charactersPerSecond.sorted()[charactersPerSecond.count / 2] }
    }

    /// Times generation one unit at a time (sampling with temperature 1 included) for
    /// `samples` streams in one batch, after a 20-unit prompt.
    public static func generation(
        config: NetworkConfig, samples: Int, length: Int, repeats: Int, precision: WeightPrecision = .int8
    ) throws
        -> GenerationResult
    {
        let network = try Network(config: config, seed: 1)
        let v = config.vocabularySize
        var rates: [Double] = []
        var firstCharacter = Double.infinity
        for r in 0..<repeats {
            var rng = SeededGenerator(seed: UInt64(r))
            var sampler = StandardSampler(options: SamplingOptions(temperature: 1))
            let start = DispatchTime.now().uptimeNanoseconds
            let session = InferenceSession(network: network, batchSize: samples, precision: precision)
            let prompt = (0..<(20 * samples)).map { Int32($0 % v) }
            var logits = try session.feed(prompt)
            var next = [Int32](repeating: 0, count: samples)
            for i in 0..<length {
                for s in 0..<samples {
                    next[s] = sampler.sample(logits: Array(logits[(s * v)..<((s + 1) * v)]), recent: [], using: &rng)
                }
                if i == 0 {
                    firstCharacter = min(firstCharacter, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                logits = try session.feed(next)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            rates.append(Double(samples * length) / seconds)
        }
        return GenerationResult(charactersPerSecond: rates, firstCharacterSeconds: firstCharacter)
    }

    /// Seconds from opening a saved model (config, tokenizer, weights) to its first generated
    /// character after a 20-character prompt: what a user waits for, minus process start.
    /// Best of `repeats`. With `savedInt8` (and int8 precision) the int8 weights are saved
    /// first, as `charlm generate` does after its first sample.
    public static func firstCharacterFromDisk(
        config: NetworkConfig, repeats: Int, precision: WeightPrecision = .int8, savedInt8: Bool = true
    ) throws -> Double {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "charlm-bench-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let units = (0..<config.vocabularySize).map { (i: Int) -> String in
            let scalar = i < 95 ? UInt32(32 + i) : UInt32(0x4E00 + i)
            return String(Character(Unicode.Scalar(scalar)!))
        }
        let tokenizer = try Tokenizer(units: units)
        var shaped = config
        shaped.vocabularySize = tokenizer.vocabularySize
        let network = try Network(config: shaped, seed: 1)
        let run = RunDirectory(directory)
        let lock = try run.create(
            config: RunConfig(model: shaped, training: TrainingConfig(), corpus: nil), tokenizer: tokenizer,
            overwrite: false
        ) { staging in
            try writeDurably(CheckpointFiles.modelFile(network, step: 0).encoded(), to: staging.modelURL)
        }
        lock.release()
        let prompt = String(units.prefix(20).joined().prefix(20))
        if savedInt8 && precision == .int8 {
            try LanguageModel.load(directory, checkpoint: .latest).saveQuantizedWeights()
        }
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            let model = try LanguageModel.load(directory, checkpoint: .latest)
            let generation = try BatchGeneration(
                model: model, request: GenerationRequest(prompt: prompt, length: 1, seed: 1, precision: precision))
            try generation.step { _, _ in }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    /// Single-thread throughput of the matrix-product kernels at a 1024^3 product: OpenBLAS's
    /// sgemm and charlm's packed kernel, in GFLOP/s (best of 5).
    public static func productPeak() -> (openBLAS: Double, packed: Double) {
        BLAS.productPeak()
    }

    /// The CPU, its cores and the operating system, for benchmark reports.
    public static var machine: String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return
            "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores, "
            + "\(ProcessInfo.processInfo.operatingSystemVersionString)"
    }

    /// Resident memory now, in bytes (Linux: /proc/self/statm; elsewhere the peak).
    public static func residentBytes() -> Int {
        if let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = text.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) { return pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        return peakResidentBytes()
    }

    /// Peak resident memory of the process, in bytes.
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return usage.ru_maxrss
        #endif
    }
}
