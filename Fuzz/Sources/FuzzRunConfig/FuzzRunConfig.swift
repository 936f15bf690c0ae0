import CharLM
import CharNN
import CharTokenizer
import Foundation

/// config.json: parse and validate; a config that loads must describe a network that can be built.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let config = try? RunConfig.load(data: data, source: "fuzz") else { return 0 }
    // A network of at most ~1M parameters is built for real; larger ones are only measured.
    if ParameterLayout(config: config.model).count < 1 << 20 {
        _ = try? Network(config: config.model)
    }
    _ = BatchRunner.workingMemory(config: config.model, batchSize: config.training.batchSize,
                                  seqLength: config.training.seqLength, training: true)
    return 0
}
