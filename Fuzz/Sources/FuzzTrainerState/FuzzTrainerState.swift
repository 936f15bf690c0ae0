import CharLM
import CharNN
import CharTokenizer
import Foundation
import FuzzSupport

/// trainer_state.json: parse and validate; a state that loads must survive the arithmetic that
/// training, resuming and `info` do with it.
@main enum Fuzz {
    static func main() { runFuzzer(fuzz) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let state = try? TrainerState.load(data: data, source: "fuzz") else { return 0 }
    var next = state
    next.step += 1
    next.epoch += 1
    next.cursor += 1
    next.runningCount += 1
    next.charactersSeen += 1 << 24
    next.elapsedSeconds += 1
    _ = Double(next.step) * 2500 / max(state.elapsedSeconds, 1e-9)
    return 0
}
