import ArgumentParser
import CharLM
import CharTokenizer
import Foundation

/// `charlm tokenizer stats CORPUS`
struct TokenizerStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print corpus statistics: size, units, vocabulary, most frequent units, coverage.",
        discussion: "Takes the same options as `build`, and shows the vocabulary `build` would make."
    )

    @Argument(help: "The corpus: a UTF-8 text file.")
    var corpus: String

    @OptionGroup var options: TokenizerOptions

    @Option(help: "How many of the most frequent units to list.")
    var top = 20

    @Flag(help: "Print the statistics as JSON.")
    var json = false

    @Option(name: [.short, .long], help: "Write the statistics to this file instead of standard output.")
    var output: String?

    func validate() throws {
        if top < 0 { throw ValidationError("--top must be 0 or more.") }
    }

    /// The statistics as printed with `--json`.
    struct Report: Codable, Equatable {
        struct Unit: Codable, Equatable {
            let unit: String
            let count: Int
            let share: Double
        }

        let corpus: String
        let unit: String
        let bytes: Int
        let normalizedBytes: Int
        let scalars: Int
        let units: Int
        let distinctUnits: Int
        let vocabularySize: Int
        let vocabularyCoverage: Double
        let topCoverage: [String: Double]
        let top: [Unit]

        enum CodingKeys: String, CodingKey {
            case corpus, unit, bytes, scalars, units, top
            case normalizedBytes = "normalized_bytes"
            case distinctUnits = "distinct_units"
            case vocabularySize = "vocabulary_size"
            case vocabularyCoverage = "vocabulary_coverage"
            case topCoverage = "top_coverage"
        }
    }

    func report() throws -> Report {
        let config = options.tokenizerConfig
        let statistics = try CorpusStatistics(corpusFile: URL(fileURLWithPath: corpus), config: config)
        var vocabularySize = 0
        var vocabularyCoverage = 0.0
        if statistics.units > 0 {
            let tokenizer = try Tokenizer.build(from: statistics, config: config)
            vocabularySize = tokenizer.vocabularySize
            vocabularyCoverage = statistics.vocabularyCoverage(of: tokenizer)
        }
        var topCoverage: [String: Double] = [:]
        for k in [1, 10, 50, 100, 500, 1000] where k < statistics.distinctUnits {
            topCoverage[String(k)] = statistics.coverage(ofTop: k)
        }
        let total = Double(max(statistics.units, 1))
        return Report(
            corpus: corpus, unit: config.unit.rawValue, bytes: statistics.bytes,
            normalizedBytes: statistics.normalizedBytes,
            scalars: statistics.scalars, units: statistics.units, distinctUnits: statistics.distinctUnits,
            vocabularySize: vocabularySize, vocabularyCoverage: vocabularyCoverage, topCoverage: topCoverage,
            top: statistics.topUnits(top).map {
                Report.Unit(unit: $0.text, count: $0.count, share: Double($0.count) / total)
            })
    }

    func run() throws {
        try Console.run {
            var output = try CommandOutput(path: self.output, inputs: [corpus])
            let report = try report()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                try output.write(try encoder.encode(report))
                try output.write("\n")
            } else {
                try output.write(Self.format(report))
            }
            try output.finish()
        }
    }

    static func format(_ report: Report) -> String {
        func number(_ value: Int) -> String {
            let digits = String(value)
            var result = ""
            for (index, character) in digits.enumerated() {
                if index > 0 && (digits.count - index) % 3 == 0 && character != "-" { result += "," }
                result.append(character)
            }
            return result
        }
        func percent(_ value: Double) -> String {
            String(format: "%.2f%%", value * 100)
        }
        var text = ""
        text += "corpus             \(report.corpus)\n"
        text += "bytes              \(number(report.bytes)) (\(number(report.normalizedBytes)) after normalization)\n"
        text += "scalars            \(number(report.scalars))\n"
        text += "units              \(number(report.units)) \(report.unit)s, \(number(report.distinctUnits)) distinct\n"
        text +=
            "vocabulary         \(number(report.vocabularySize)) tokens, covering "
            + "\(percent(report.vocabularyCoverage)) of units without fallback\n"
        let coverage = report.topCoverage.sorted { Int($0.key)! < Int($1.key)! }
            .map { "top \($0.key): \(percent($0.value))" }.joined(separator: ", ")
        if !coverage.isEmpty {
            text += "coverage           \(coverage)\n"
        }
        if !report.top.isEmpty {
            func padded(_ text: String, _ width: Int, left: Bool = false) -> String {
                let padding = String(repeating: " ", count: max(0, width - text.count))
                return left ? text + padding : padding + text
            }
            let counts = report.top.map { number($0.count) }
            let unitWidth = max(6, report.top.map { displayUnit($0.unit).count }.max() ?? 0)
            let countWidth = max(5, counts.map(\.count).max() ?? 0)
            text += "\nmost frequent \(report.unit)s:\n"
            text +=
                "  " + padded("rank", 4) + "  " + padded("unit", unitWidth, left: true) + "  "
                + padded("count", countWidth)
                + "  " + padded("share", 7) + "  " + padded("cumulative", 10) + "\n"
            var cumulative = 0.0
            for (rank, unit) in report.top.enumerated() {
                cumulative += unit.share
                text +=
                    "  " + padded(String(rank + 1), 4) + "  " + padded(displayUnit(unit.unit), unitWidth, left: true)
                    + "  " + padded(counts[rank], countWidth) + "  " + padded(percent(unit.share), 7)
                    + "  " + padded(percent(cumulative), 10) + "\n"
            }
        }
        return text
    }
}
