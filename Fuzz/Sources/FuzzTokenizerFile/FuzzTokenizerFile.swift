import CharTokenizer
import Foundation
import FuzzSupport

/// tokenizer.json: parse; a tokenizer that loads must encode, decode and save as it claims.
@main enum Fuzz {
    static func main() { runFuzzer(fuzz) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let tokenizer = try? Tokenizer.load(jsonData: data, source: "fuzz") else { return 0 }
    let reloaded = try! Tokenizer.load(jsonData: tokenizer.jsonData(), source: "fuzz (saved again)")
    precondition(reloaded == tokenizer, "a loaded tokenizer must survive a save and a load")
    let sample = "Hello, wörld 👋🏽\r\n\u{301}é"
    if let ids = try? tokenizer.encode(sample) {
        _ = tokenizer.decode(ids)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        for id in ids { _ = try? decoder.push(id) }
        _ = decoder.finish()
    }
    _ = try? tokenizer.decodeChecked([0, 1, Int32(tokenizer.vocabularySize - 1)])
    return 0
}
