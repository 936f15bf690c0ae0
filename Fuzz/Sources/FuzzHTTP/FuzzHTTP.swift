import CharServe
import Foundation
import FuzzSupport

@main enum Fuzz {
    static func main() { runFuzzer(fuzz) }
}

/// What `charlm serve` reads from a client: a request head, then a JSON body read as
/// completion parameters and as a trace request. Split at the first blank line.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    var split = count
    if count >= 4 {
        for i in 0...(count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10
        {
            split = i
            break
        }
    }
    if case .success(let request) = HTTPRequest.parseHead(bytes[..<split]) {
        precondition(request.path.hasPrefix("/"))
        _ = request.header("Content-Length")
    }
    let body = Array(bytes[min(count, split + 4)...])
    if let object = try? JSONValue.parseObject(body) {
        if let p = try? CompletionParameters(object, limits: ServeLimits(maxTokens: 100, maxPromptUnits: 100, maxN: 4))
        {
            precondition(p.maxTokens <= 100 && p.n >= 1 && p.prompts.count * p.n <= 4 && p.stop.count <= 4)
            try? p.options.validate()
        }
    }
    return 0
}
