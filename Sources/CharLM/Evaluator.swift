import CharNN
import Foundation

/// Cross-entropy of a network on a span of text.
public struct EvaluationResult: Sendable, Equatable {
    /// Summed loss in nats.
    public let totalNats: Double
    /// Number of predicted units.
    public let count: Int

    /// Mean loss in nats per unit.
    public var nats: Double { count > 0 ? totalNats / Double(count) : .nan }
    /// Mean loss in bits per unit.
    public var bitsPerCharacter: Double { nats / log(2) }
    public var perplexity: Double { exp(nats) }
}

public enum Evaluator {
    /// Evaluates every unit of `span` after the first: the span is cut into up to `batchSize`
    /// contiguous streams read `seqLength` units at a time with the state carried (as in
    /// training); the few units left over when the streams are cut continue the last stream.
    /// The trainer's validation and `charlm eval` both use this, so they agree.
    ///
    /// - Parameters:
    ///   - communicator: the ranks of a distributed run, which share the streams (each
    ///     evaluates its own and the sums are added); every rank gets the whole result.
    ///   - progress: called with the fraction done (of this rank's part).
    public static func evaluate(
        network: Network, span: TokenSpan, batchSize: Int, seqLength: Int, threads: Int,
        communicator: Communicator? = nil, progress: (Double) -> Void = { _ in }
    ) throws -> EvaluationResult {
        let targets = span.count - 1
        guard targets >= 1 else { return EvaluationResult(totalNats: 0, count: 0) }
        let streams = max(1, min(batchSize, targets / seqLength))
        let streamLength = targets / streams
        let mine = communicator?.rows(batchSize: streams) ?? 0..<streams
        var total = 0.0
        if !mine.isEmpty {
            let runner = BatchRunner(
                network: network, batchSize: mine.count, seqLength: min(seqLength, streamLength), threads: threads,
                training: false)
            let state = RecurrentState(config: network.config, batchSize: mine.count)
            var position = 0
            while position < streamLength {
                let steps = min(runner.seqLength, streamLength - position)
                var inputs: [Int32] = [], outputs: [Int32] = []
                inputs.reserveCapacity(mine.count * steps)
                outputs.reserveCapacity(mine.count * steps)
                for b in mine {
                    let ids = span.ids((b * streamLength + position)..<(b * streamLength + position + steps + 1))
                    inputs += ids.dropLast()
                    outputs += ids.dropFirst()
                }
                total += try runner.evaluate(inputs: inputs, targets: outputs, state: state)
                position += steps
                progress(Double(position * mine.count) / Double(targets))
            }
            // The last stream's owner reads on to the end of the span.
            if mine.contains(streams - 1) {
                total += try evaluateLeftover(
                    network: network, span: span, from: streams * streamLength, seqLength: seqLength,
                    state: state, row: mine.count - 1)
            }
        }
        if let communicator { total = try communicator.sum([total])[0] }
        progress(1)
        return EvaluationResult(totalNats: total, count: targets)
    }

    /// The units after the streams' end, read on from the state of the last stream (`row` of
    /// `state`).
    private static func evaluateLeftover(
        network: Network, span: TokenSpan, from first: Int, seqLength: Int, state: RecurrentState, row: Int
    ) throws -> Double {
        let targets = span.count - 1
        var total = 0.0
        let leftover = targets - first
        if leftover > 0 {
            let tail = BatchRunner(
                network: network, batchSize: 1, seqLength: min(seqLength, leftover), threads: 1, training: false)
            let last = RecurrentState(config: network.config, batchSize: 1)
            last.copy(row: 0, from: state, row: row)
            var start = first
            while start < targets {
                let steps = min(tail.seqLength, targets - start)
                let ids = span.ids(start..<(start + steps + 1))
                total += try tail.evaluate(inputs: Array(ids.dropLast()), targets: Array(ids.dropFirst()), state: last)
                start += steps
            }
        }
        return total
    }
}
