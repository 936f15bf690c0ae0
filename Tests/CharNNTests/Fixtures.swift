import Foundation
@testable import CharNN

/// A PyTorch parity fixture written by scripts/make_fixtures.py.
struct ModelFixture: Decodable {
    struct Tensor: Decodable { let shape: [Int]; let values: [Float] }
    struct Expected: Decodable {
        let logits: [Float]
        let loss: Double
        let gradients: [String: [Float]]
        let h0_grad: [Float]
        let c0_grad: [Float]?
        let final_h: [Float]
        let final_c: [Float]?
    }
    let cell: String
    let vocab: Int, hidden: Int, layers: Int, batch: Int, steps: Int
    /// The embedding width, for fixtures of a network with nn.Embedding (absent: one-hot).
    let embedding: Int?
    /// Whether the fixture's network is bidirectional (absent: it is not).
    let bidirectional: Bool?
    let tensors: [String: Tensor]
    let inputs: [Int32], targets: [Int32]
    let h0: [Float]
    let c0: [Float]?
    let expected: Expected

    static func load(_ name: String) throws -> ModelFixture {
        try JSONDecoder().decode(ModelFixture.self, from: fixtureData(name))
    }

    var config: NetworkConfig {
        NetworkConfig(
            cell: CellKind(rawValue: cell)!, vocabularySize: vocab, hiddenSize: hidden, layers: layers,
            embeddingSize: embedding, bidirectional: bidirectional ?? false)
    }

    /// A network holding the fixture's weights.
    func network() throws -> Network {
        let net = try Network(config: config, seed: 0)
        for (name, tensor) in tensors {
            guard let info = net.layout[name] else { throw NetworkError.missingTensor(name) }
            precondition(info.shape == tensor.shape, "\(name): \(info.shape) vs \(tensor.shape)")
            try net.setTensor(name, values: tensor.values)
        }
        return net
    }

    func initialState() -> RecurrentState {
        let state = RecurrentState(config: config, batchSize: batch)
        state.h.withUnsafeMutableBufferPointer { for i in 0..<h0.count { $0[i] = h0[i] } }
        if let c0, let c = state.c { c.withUnsafeMutableBufferPointer { for i in 0..<c0.count { $0[i] = c0[i] } } }
        return state
    }
}

struct OptimizerFixture: Decodable {
    struct Case: Decodable {
        let options: [String: OptionValue]
        let after_each_step: [[Float]]
    }
    enum OptionValue: Decodable {
        case number(Double), bool(Bool), pair([Double])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) {
                self = .bool(b)
            } else if let d = try? c.decode(Double.self) {
                self = .number(d)
            } else {
                self = .pair(try c.decode([Double].self))
            }
        }
    }
    let start: [Float]
    let gradients: [[Float]]
    let clip: Float
    let cases: [String: Case]

    static func load() throws -> OptimizerFixture {
        try JSONDecoder().decode(OptimizerFixture.self, from: fixtureData("optimizers"))
    }
}

func fixtureData(_ name: String) throws -> Data {
    guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures") else {
        throw NetworkError.missingTensor("fixture \(name).json")
    }
    return try Data(contentsOf: url)
}

/// Largest violation of |a - b| <= rtol * |b| + atol * max|b|, as a ratio (<= 1 passes).
func closeness(_ actual: [Float], _ expected: [Float], rtol: Double = 1e-5, atol: Double = 1e-6) -> Double {
    precondition(actual.count == expected.count, "sizes differ: \(actual.count) vs \(expected.count)")
    let scale = expected.map { abs(Double($0)) }.max() ?? 0
    var worst = 0.0
    for (a, b) in zip(actual, expected) {
        // NaN compares false with everything: it would slip through max().
        if a.isNaN || b.isNaN { return .infinity }
        let allowed = rtol * abs(Double(b)) + atol * scale + 1e-30
        worst = max(worst, abs(Double(a) - Double(b)) / allowed)
    }
    return worst
}
