/// For a labelling network, the outputs each input id may become: the loss's softmax runs over
/// those alone (the others get probability and gradient 0), so that a model restoring marks
/// can never turn one letter into another.
///
/// ```swift
/// // id 2 ("e") may stay "e" or become "é" (3) or "è" (4); every other id stays as it is.
/// let mask = try CandidateMask(vocabularySize: 5, candidates: [[0], [1], [2, 3, 4], [3], [4]])
/// ```
public struct CandidateMask: Sendable, Equatable {
    public let vocabularySize: Int
    /// Row i (V bytes): 1 where input i may become that output.
    let allowed: [UInt8]

    /// - Parameter candidates: per input id, the output ids it may become.
    /// - Throws: `NetworkError.invalidInput` for an id outside the vocabulary or an input with
    ///   no candidate.
    public init(vocabularySize: Int, candidates: [[Int32]]) throws {
        guard candidates.count == vocabularySize else {
            throw NetworkError.invalidInput("\(candidates.count) candidate lists for a vocabulary of \(vocabularySize)")
        }
        var allowed = [UInt8](repeating: 0, count: vocabularySize * vocabularySize)
        for (input, outputs) in candidates.enumerated() {
            guard !outputs.isEmpty else { throw NetworkError.invalidInput("input id \(input) has no candidate") }
            for output in outputs {
                guard output >= 0 && Int(output) < vocabularySize else {
                    throw NetworkError.invalidInput("candidate \(output) outside the vocabulary 0..<\(vocabularySize)")
                }
                allowed[input * vocabularySize + Int(output)] = 1
            }
        }
        self.vocabularySize = vocabularySize
        self.allowed = allowed
    }

    /// Whether `input` may become `output`.
    public func allows(_ output: Int32, for input: Int32) -> Bool {
        allowed[Int(input) * vocabularySize + Int(output)] != 0
    }

    /// The allowed output of `input` with the largest of `logits` (one row of V values).
    public func best(_ logits: UnsafeBufferPointer<Float>, for input: Int32) -> Int32 {
        let row = Int(input) * vocabularySize
        var best = -1
        for j in 0..<vocabularySize where allowed[row + j] != 0 && (best < 0 || logits[j] > logits[best]) { best = j }
        return Int32(best)
    }
}
