import CUTF8Proc
import Foundation
import Testing
@testable import CharTokenizer

/// The Unicode Consortium's own conformance data, every line, run against the tokenizer's
/// pipeline (fast paths included) and against the plain utf8proc reference.
/// The files come from Debian's `unicode-data` package; without it these tests fail.
@Suite("Unicode conformance")
struct ConformanceTests {
    static let normalizationTestPath = "/usr/share/unicode/NormalizationTest.txt.bz2"
    static let graphemeBreakTestPath = "/usr/share/unicode/auxiliary/GraphemeBreakTest.txt"
    static let install = "install the Unicode data files: apt-get install unicode-data"

    /// `# NormalizationTest-15.0.0.txt` → "15.0.0".
    static func version(ofHeader line: Substring) -> String? {
        guard let dash = line.lastIndex(of: "-"), let dot = line.range(of: ".txt") else { return nil }
        return String(line[line.index(after: dash)..<dot.lowerBound])
    }

    static func normalizationTestLines() throws -> [Substring] {
        guard FileManager.default.fileExists(atPath: normalizationTestPath) else {
            Issue.record("\(normalizationTestPath) is missing: \(install)")
            throw CancellationError()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bzip2")
        process.arguments = ["-dc", normalizationTestPath]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "bzip2 -dc \(normalizationTestPath) failed")
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    }

    static func graphemeBreakTestLines() throws -> [Substring] {
        guard let data = FileManager.default.contents(atPath: graphemeBreakTestPath) else {
            Issue.record("\(graphemeBreakTestPath) is missing: \(install)")
            throw CancellationError()
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    }

    static func scalars(_ field: Substring) -> [UInt32] {
        field.split(separator: " ").compactMap { UInt32($0, radix: 16) }
    }

    @Test("utf8proc implements the Unicode version of the data files")
    func unicodeVersionsMatch() throws {
        let normalization = try #require(Self.normalizationTestLines().first.flatMap(Self.version(ofHeader:)))
        let grapheme = try #require(Self.graphemeBreakTestLines().first.flatMap(Self.version(ofHeader:)))
        let utf8proc = Tokenizer.unicodeVersion
        print(
            "utf8proc \(Tokenizer.utf8procVersion) implements Unicode \(utf8proc); "
                + "NormalizationTest \(normalization), GraphemeBreakTest \(grapheme)")
        #expect(normalization == utf8proc)
        #expect(grapheme == utf8proc)
    }

    /// One parsed line of NormalizationTest.txt: the five columns and the part it is in.
    struct NormalizationCase {
        let line: Int
        let part: String
        let columns: [[UInt32]]
    }

    static func normalizationCases() throws -> [NormalizationCase] {
        var cases: [NormalizationCase] = []
        var part = ""
        for (index, line) in try normalizationTestLines().enumerated() {
            if line.hasPrefix("@") {
                part = String(line.split(separator: " ")[0])
                continue
            }
            if line.hasPrefix("#") || line.isEmpty { continue }
            let fields = line.split(separator: ";", omittingEmptySubsequences: false)
            guard fields.count >= 5 else {
                Issue.record("malformed line \(index + 1): \(line)")
                continue
            }
            cases.append(NormalizationCase(line: index + 1, part: part, columns: (0..<5).map { scalars(fields[$0]) }))
        }
        return cases
    }

    /// Expected column for each form and source column, per the file's conformance rules:
    /// NFC: c2 == toNFC(c1,c2,c3), c4 == toNFC(c4,c5); NFD: c3 == toNFD(c1,c2,c3), c5 == toNFD(c4,c5);
    /// NFKC: c4 == toNFKC(all); NFKD: c5 == toNFKD(all).
    static func expectedColumn(form: NormalizationForm, source: Int) -> Int {
        switch form {
        case .nfc: return source < 3 ? 1 : 3
        case .nfd: return source < 3 ? 2 : 4
        case .nfkc: return 3
        case .nfkd: return 4
        case .none: return source
        }
    }

    static let forms: [NormalizationForm] = [.nfc, .nfd, .nfkc, .nfkd]

    @Test("NormalizationTest.txt, every line, all five columns, NFC NFD NFKC NFKD")
    func normalizationTest() throws {
        let cases = try Self.normalizationCases()
        #expect(cases.count > 19000, "NormalizationTest.txt looks incomplete: \(cases.count) lines")
        var failures = 0
        // Parts 0, 2, 3: every string normalized on its own.
        for testCase in cases where testCase.part != "@Part1" {
            for form in Self.forms {
                let normalization = Normalization(form: form, normalizeNewlines: false)
                for source in 0..<5 {
                    let input = UTF8Decoding.encode(testCase.columns[source])
                    let expected = UTF8Decoding.encode(
                        testCase.columns[Self.expectedColumn(form: form, source: source)])
                    let fast = try normalization.apply(toUTF8: input)
                    let reference = UTF8Decoding.encode(
                        ReferencePipeline.normalize(testCase.columns[source], normalization))
                    if fast != expected || reference != expected {
                        failures += 1
                        if failures <= 20 {
                            recordFailure(
                                "line \(testCase.line) \(form) of c\(source + 1) [\(codePoints(input))]: "
                                    + "expected [\(codePoints(expected))], got [\(codePoints(fast))], "
                                    + "reference [\(codePoints(reference))]")
                        }
                    }
                }
            }
        }
        // Part 1 (17 000 single characters): each column of all lines joined by LF, a safe cut,
        // and normalized in one call; then compared line by line.
        let part1 = cases.filter { $0.part == "@Part1" }
        for form in Self.forms {
            let normalization = Normalization(form: form, normalizeNewlines: false)
            for source in 0..<5 {
                let joined = Array(part1.map { UTF8Decoding.encode($0.columns[source]) }.joined(separator: [0x0A]))
                let fast = try normalization.apply(toUTF8: joined).split(
                    separator: 0x0A, omittingEmptySubsequences: false)
                let referenceScalars = ReferencePipeline.normalize(
                    UTF8Decoding.scalars(of: joined) ?? [], normalization)
                let reference = UTF8Decoding.encode(referenceScalars).split(
                    separator: 0x0A, omittingEmptySubsequences: false)
                #expect(fast.count == part1.count && reference.count == part1.count)
                for (index, testCase) in part1.enumerated() where index < fast.count && index < reference.count {
                    let expected = UTF8Decoding.encode(
                        testCase.columns[Self.expectedColumn(form: form, source: source)])
                    if Array(fast[index]) != expected || Array(reference[index]) != expected {
                        failures += 1
                        if failures <= 20 {
                            recordFailure(
                                "line \(testCase.line) \(form) of c\(source + 1): expected [\(codePoints(expected))], "
                                    + "got [\(codePoints(Array(fast[index])))], reference "
                                    + "[\(codePoints(Array(reference[index])))]"
                            )
                        }
                    }
                }
            }
        }
        #expect(failures == 0, "\(failures) normalization mismatches")
    }

    @Test("NormalizationTest.txt part 2 invariant: every other assigned code point is unchanged by all forms")
    func unlistedCodePointsAreInvariant() throws {
        let listed = Set(try Self.normalizationCases().filter { $0.part == "@Part1" }.map { $0.columns[0][0] })
        var unlisted: [UInt32] = []
        for value in UInt32(0)..<0x110000 where !(0xD800...0xDFFF).contains(value) && value != 0x0A && value != 0x0D {
            if !listed.contains(value) && utf8proc_category(Int32(value)) != UTF8PROC_CATEGORY_CN {
                unlisted.append(value)
            }
        }
        #expect(unlisted.count > 250_000)
        var joined: [UInt8] = []
        for value in unlisted {
            UTF8Decoding.append(value, to: &joined)
            joined.append(0x0A)
        }
        for form in Self.forms {
            let normalization = Normalization(form: form, normalizeNewlines: false)
            let fast = try normalization.apply(toUTF8: joined)
            #expect(fast == joined, "\(form) changed a code point not listed in part 1")
            let reference = UTF8Decoding.encode(
                ReferencePipeline.normalize(UTF8Decoding.scalars(of: joined) ?? [], normalization))
            #expect(reference == joined, "utf8proc \(form) changed a code point not listed in part 1")
        }
    }

    @Test("GraphemeBreakTest.txt, every line, every break position")
    func graphemeBreakTest() throws {
        let lines = try Self.graphemeBreakTestLines()
        var tested = 0
        var failures = 0
        // No normalization: the test data is about segmentation of the exact scalars given.
        let config = TokenizerConfig(
            normalization: Normalization(form: .none, normalizeNewlines: false),
            unit: .grapheme, fallback: .unknown)
        for (index, line) in lines.enumerated() {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            guard content.contains("÷") else { continue }
            var clusters: [[UInt32]] = []
            var current: [UInt32] = []
            for token in content.split(separator: " ") {
                if token == "÷" {
                    if !current.isEmpty { clusters.append(current) }
                    current = []
                } else if token == "×" {
                    continue
                } else if let value = UInt32(token, radix: 16) {
                    current.append(value)
                }
            }
            if !current.isEmpty { clusters.append(current) }
            tested += 1
            let text = UTF8Decoding.encode(clusters.joined())
            let expected = clusters.map { UTF8Decoding.encode($0) }
            let reference = ReferencePipeline.graphemes(Array(clusters.joined())).map { UTF8Decoding.encode($0) }
            let tokenizer = try Tokenizer.build(utf8: text, config: config)
            let units = tokenizer.tokenBytes(try tokenizer.encode(utf8: text))
            let statistics = try CorpusStatistics(corpus: String(decoding: text, as: UTF8.self), config: config)
            if units != expected || reference != expected || statistics.units != expected.count {
                failures += 1
                if failures <= 20 {
                    recordFailure(
                        "line \(index + 1): \(content) → tokenizer \(units.map(codePoints)), "
                            + "reference \(reference.map(codePoints))")
                }
            }
        }
        #expect(tested == 602 || tested > 500, "GraphemeBreakTest.txt looks incomplete: \(tested) lines")
        #expect(failures == 0, "\(failures) of \(tested) grapheme break lines differ")
    }
}
