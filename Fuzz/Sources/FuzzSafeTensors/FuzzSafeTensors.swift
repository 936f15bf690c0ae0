import CharLM
import CharNN
import CharTokenizer
import Foundation
import FuzzSupport

/// model.safetensors, optimizer.safetensors and model.int8.safetensors: parse, read every
/// tensor, load into a network; read int8 weights (whatever identity the file claims) and step
/// the one-stream kernel on them.
let network = try! Network(config: NetworkConfig(cell: .lstm, vocabularySize: 5, hiddenSize: 3, layers: 2))

@main enum Fuzz {
    static func main() { runFuzzer(fuzz) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let file = try? SafeTensors(data: data, source: "fuzz") else { return 0 }
    for name in file.names {
        _ = try? file.floats(name, source: "fuzz")
        _ = try? file.int64s(name, source: "fuzz")
    }
    _ = try? network.loadWeights(file, source: "fuzz")
    if let weights = file.quantizedWeights(config: network.config, source: file.metadata["charlm_source"] ?? "") {
        let session = InferenceSession(quantized: weights, threads: 2) { network }
        _ = try? session.feed([0, 4, 2])
    }
    _ = file.encoded()
    return 0
}
