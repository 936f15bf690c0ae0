import CharLM
import CharNN
import CharTokenizer
import Foundation
import FuzzSupport

/// config.json: parse and validate; a config that loads must describe a network that can be built.
@main enum Fuzz {
    static func main() { runFuzzer(fuzz) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let config = try? RunConfig.load(data: data, source: "fuzz") else { return 0 }
    // A network of at most ~1M parameters is built for real; larger ones are only measured.
    if ParameterLayout(config: config.model).count < 1 << 20 {
        _ = try? Network(config: config.model)
    }
    _ = BatchRunner.workingMemory(
        config: config.model, batchSize: config.training.batchSize,
        seqLength: config.training.seqLength, training: true)
    return 0
}
