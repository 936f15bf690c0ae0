import CharNN
import CharTokenizer
import Foundation
import Testing
@testable import CharLM

@Suite struct SafeTensorsTests {
    @Test func roundTripsTensorsAndMetadata() throws {
        var file = SafeTensors()
        file.metadata = ["format": "pt", "note": "quote \" and \\ and\nnewline"]
        file.add("rnn.weight_ih_l0", shape: [2, 3], values: [1, -2, 3.5, .pi, -0, 1e-30])
        file.add("empty", shape: [0], values: [])
        file.add("step", shape: [1], int64: [Int64.max])
        let data = file.encoded()
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0, "header is padded to 8 bytes")
        #expect(data.count == 8 + headerLength + 6 * 4 + 0 + 8, "length, header, then exactly the tensors' bytes")
        let header = String(decoding: data[8..<(8 + headerLength)], as: UTF8.self)
        #expect(
            header.hasPrefix("{") && header.trimmingCharacters(in: .whitespaces).hasSuffix("}"),
            "the header is JSON padded with spaces")
        let back = try SafeTensors(data: data, source: "test")
        #expect(back.metadata == file.metadata)
        #expect(back.names == ["rnn.weight_ih_l0", "empty", "step"])
        #expect(try back.floats("rnn.weight_ih_l0", shape: [2, 3], source: "t") == [1, -2, 3.5, .pi, -0, 1e-30])
        #expect(try back.floats("empty", source: "t") == [])
        #expect(try back.int64s("step", source: "t") == [Int64.max])
    }

    @Test func rejectsDamagedOrForeignFiles() throws {
        var file = SafeTensors()
        file.add("a", shape: [4], values: [1, 2, 3, 4])
        file.add("b", shape: [2], values: [5, 6])
        let good = file.encoded()
        func rejects(_ data: Data, _ label: String) {
            #expect(throws: CharLMError.self, "\(label) must be rejected") {
                try SafeTensors(data: data, source: label)
            }
        }
        rejects(Data(), "empty file")
        rejects(good.prefix(5), "cut inside the length")
        rejects(good.prefix(good.count - 3), "cut inside the data")
        rejects(good + Data([0, 0, 0, 0]), "trailing bytes")
        rejects(Data("not a safetensors file at all, just text".utf8), "text")
        func withHeader(_ json: String, body: Int = 24) -> Data {
            var h = Array(json.utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            var d = Data()
            var n = UInt64(h.count).littleEndian
            withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
            d.append(contentsOf: h)
            d.append(Data(count: body))
            return d
        }
        rejects(
            withHeader(
                #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#
            ), "overlap")
        rejects(withHeader(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#), "gap")
        rejects(withHeader(#"{"a":{"dtype":"F32","shape":[5],"data_offsets":[0,24]}}"#), "size mismatch")
        rejects(withHeader(#"{"a":{"dtype":"Q4","shape":[6],"data_offsets":[0,24]}}"#), "unknown dtype")
        rejects(withHeader(#"{"a":{"shape":[6],"data_offsets":[0,24]}}"#), "missing dtype")
        rejects(withHeader(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,24]}}"#), "negative shape")
        rejects(withHeader(#"[1, 2, 3]"#), "array header")
        let ok = withHeader(#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}"#)
        #expect(try SafeTensors(data: ok, source: "ok").floats("a", source: "ok").count == 6)
        let back = try SafeTensors(data: good, source: "g")
        #expect(throws: CharLMError.self) { try back.floats("a", shape: [2, 2], source: "g") }
        #expect(throws: CharLMError.self) { try back.floats("missing", source: "g") }
        #expect(throws: CharLMError.self) { try back.int64s("a", source: "g") }
    }
}
