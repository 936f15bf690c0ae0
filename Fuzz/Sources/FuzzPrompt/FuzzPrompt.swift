import CharLM
import CharNN
import CharTokenizer
import Foundation
import FuzzSupport

/// Prompts: any text against models with each fallback, then a few generated characters.
let models: [LanguageModel] = Fallback.allCases.map { fallback in
    let config = TokenizerConfig(fallback: fallback)
    let tokenizer = try! Tokenizer.build(corpus: "(ant [bee {cat}])\nHéllo 👋🏽 wörld\r\n", config: config)
    let network = try! Network(
        config: NetworkConfig(cell: .gru, vocabularySize: tokenizer.vocabularySize, hiddenSize: 8, layers: 2),
        seed: 1)
    let run = RunConfig(model: network.config, training: TrainingConfig(), corpus: nil)
    return LanguageModel(
        tokenizer: tokenizer, network: network, config: run, trainerState: nil,
        weightsURL: URL(fileURLWithPath: "/dev/null"))
}

@main enum Fuzz {
    static func main() { runFuzzer(fuzz) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let prompt = String(decoding: bytes, as: UTF8.self)
    for model in models {
        let stop = count > 2 ? [String(prompt.suffix(2))].filter { !$0.isEmpty } : []
        let request = GenerationRequest(
            prompt: prompt, length: 4, options: SamplingOptions(temperature: 0.7, topK: 3, topP: 0.9),
            seed: 1, numSamples: 2, stop: stop)
        if let samples = try? model.generate(request) {
            for sample in samples { precondition(sample.tokens.count <= 4) }
        }
        _ = try? model.tokenizer.encode(utf8: Array(bytes))
    }
    return 0
}
