import ArgumentParser
import CharLM
import Foundation

/// `charlm explain RUN FILE`: a standalone report of the model reading a text.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Show how a model reads a text: its surprise at each character, and the neurons that track simple properties.",
        discussion: """
            Writes one HTML file that needs no network: the text coloured by surprise (bits per \
            character), the hardest and easiest spans, and for each of position in line, inside \
            quotes, bracket depth, after a newline and word length, the neurons whose activation \
            correlates best with it, each shown over the text. --json writes the same data as JSON.
            """
    )

    @Argument(help: ArgumentHelp("Run directory or model.safetensors.", valueName: "run"))
    var runPath: String

    @Argument(help: ArgumentHelp("Text to read ('-' for stdin).", valueName: "file"))
    var file: String

    @Option(name: [.short, .customLong("output")], help: "Write the report here (default: stdout).")
    var output: String?

    @Flag(help: "Write JSON instead of HTML.")
    var json = false

    @Option(help: "Read at most this many characters (units) of the text.")
    var maxChars = 20_000

    @Option(help: "Neurons shown per property.")
    var top = 3

    @Option(help: "Characters shown under each neuron in the HTML report.")
    var excerpt = 1_500

    @Option(help: "Which checkpoint of a run directory: best, latest, or step-N.")
    var checkpoint: LanguageModel.Checkpoint = .best

    func validate() throws {
        if maxChars < 1 { throw ValidationError("--max-chars must be at least 1.") }
        if top < 1 { throw ValidationError("--top must be at least 1.") }
        if excerpt < 1 { throw ValidationError("--excerpt must be at least 1.") }
    }

    func run() throws {
        try Console.run {
            let model = try LanguageModel.load(URL(fileURLWithPath: runPath), checkpoint: checkpoint)
            try model.checkGenerates()
            let data: Data
            if file == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                do {
                    data = try Data(contentsOf: URL(fileURLWithPath: file))
                } catch {
                    throw CharLMError.invalidOptions("cannot read \(file): \(error.localizedDescription)")
                }
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw CharLMError.invalidOptions("\(file) is not valid UTF-8 text")
            }
            // Read a little more than needed so that the cut falls on a unit boundary.
            let trace: ActivationTrace
            do {
                trace = try model.trace(String(text.prefix(maxChars * 2)), maxUnits: maxChars)
            } catch CharLMError.badPrompt(let message) {
                // The same check as for a prompt, said of the file.
                throw CharLMError.badPrompt(
                    message.replacingOccurrences(of: "the prompt has", with: "\(file == "-" ? "the text" : file) has"))
            }
            guard !trace.units.isEmpty else { throw CharLMError.invalidOptions("\(file) is empty") }
            let explanation = Explanation(trace: trace, top: top)
            let report =
                json
                ? ExplainReport.json(explanation, model: model, source: file)
                : ExplainReport.html(explanation, model: model, source: file, excerpt: excerpt)
            // Written like every charlm output: atomically to a file, in place to a device.
            var out = try CommandOutput(path: output, inputs: [file])
            try out.write(report)
            try out.finish()
            if let output, output != "-" {
                Console.note(
                    "charlm: read \(trace.units.count) characters at \(String(format: "%.3f", trace.meanBits)) bits each; "
                        + "wrote \(output)")
            }
        }
    }
}

/// The report `charlm explain` writes.
enum ExplainReport {
    static func json(_ e: Explanation, model: LanguageModel, source: String) -> String {
        let t = e.trace
        func span(_ s: Explanation.Span) -> [String: Any] {
            ["start": s.start, "count": s.count, "text": s.text, "mean_bits": s.meanBits]
        }
        let object: [String: Any] = [
            "source": source, "model": model.weightsURL.path, "units": t.units, "bits": t.bits.map(Double.init),
            "mean_bits": t.meanBits, "layers": t.layers, "hidden_size": t.hiddenSize,
            "hardest": e.hardest.map(span), "easiest": e.easiest.map(span),
            "constant_properties": e.constant.map(\.rawValue),
            "properties": e.neurons.map { property, best -> [String: Any] in
                [
                    "property": property.rawValue, "meaning": property.explanation,
                    "values": property.values(t.units).map(Double.init),
                    "neurons": best.map { n -> [String: Any] in
                        [
                            "layer": n.layer, "unit": n.unit, "kind": n.kind.rawValue, "correlation": n.correlation,
                            "activations": t.activations(layer: n.layer, unit: n.unit, kind: n.kind)!.map(Double.init),
                        ]
                    },
                ]
            },
        ]
        return Console.json(object) + "\n"
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Spans of `units`, each with a background colour and a tooltip.
    static func coloured(_ units: ArraySlice<String>, colour: (Int) -> String, title: (Int) -> String) -> String {
        var html = ""
        for i in units.indices {
            html += "<span style=\"background:\(colour(i))\" title=\"\(title(i))\">\(escape(units[i]))</span>"
        }
        return html
    }

    static func surpriseColour(_ bits: Float) -> String {
        let a = min(1, max(0, Double(bits) / 8))
        return String(format: "rgba(230,60,30,%.2f)", a)
    }

    static func activationColour(_ v: Float, scale: Float) -> String {
        let a = min(1, abs(v) / max(scale, 1e-6))
        return v >= 0 ? String(format: "rgba(220,40,40,%.2f)", a) : String(format: "rgba(40,90,230,%.2f)", a)
    }

    static func html(_ e: Explanation, model: LanguageModel, source: String, excerpt: Int) -> String {
        let t = e.trace
        let c = model.network.config
        let shown = t.units.prefix(max(excerpt, min(t.units.count, 20_000)))
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>charlm explain: \(escape(source))</title>
            <style>
            body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 64rem; padding: 1rem 1.5rem; color: #222; }
            .text { white-space: pre-wrap; font: 13px/1.5 ui-monospace, monospace; border: 1px solid #ddd; border-radius: 6px;
                    padding: .5rem; max-height: 28rem; overflow-y: auto; background: #fcfcfc; }
            table { border-collapse: collapse; } td, th { padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: left; }
            td.t { font: 13px ui-monospace, monospace; white-space: pre; } .muted { color: #777; }
            </style></head><body>
            <h1>How the model reads <code>\(escape(source))</code></h1>
            <p>Model <code>\(escape(model.weightsURL.path))</code>: \(c.layers)×\(c.hiddenSize) \(c.cell.rawValue), \
            \(c.vocabularySize) characters. Read \(t.units.count) characters at \
            <b>\(String(format: "%.3f", t.meanBits)) bits</b> per character \
            (\(String(format: "%.3f", t.meanBits * M_LN2)) nats).</p>
            <h2>Surprise</h2>
            <p class="muted">Each character coloured by the bits the model needed for it (white 0, red 8 or more); \
            hover for the number.\(shown.count < t.units.count ? " The first \(shown.count) characters." : "")</p>
            <div class="text">
            """
        html += coloured(
            shown, colour: { surpriseColour(t.bits[$0]) }, title: { String(format: "%.2f bits", t.bits[$0]) })
        html += "</div>\n"
        for (title, spans) in [("Hardest spans", e.hardest), ("Easiest spans", e.easiest)] {
            html += "<h3>\(title)</h3><table><tr><th>bits/char</th><th>at</th><th>text</th></tr>\n"
            for s in spans {
                html +=
                    "<tr><td>\(String(format: "%.2f", s.meanBits))</td><td>\(s.start)</td>"
                    + "<td class=\"t\">\(escape(s.text.replacingOccurrences(of: "\n", with: "⏎")))</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "<h2>Neurons</h2>\n<p class=\"muted\">For each property of the text, the neurons whose activation "
        html +=
            "(after reading each character) has the largest Pearson correlation with it; red positive, blue negative.</p>\n"
        for (property, best) in e.neurons {
            html +=
                "<h3>\(escape(property.rawValue)) <span class=\"muted\">(\(escape(property.explanation)))</span></h3>\n"
            for n in best {
                let values = t.activations(layer: n.layer, unit: n.unit, kind: n.kind)!
                let part = t.units.prefix(excerpt)
                let scale = n.kind == .hidden ? 1 : (part.indices.map { abs(values[$0]) }.max() ?? 1)
                html += "<p>layer \(n.layer), unit \(n.unit) (\(n.kind.rawValue)): r = "
                html += "<b>\(String(format: "%+.3f", n.correlation))</b></p>\n<div class=\"text\">"
                html += coloured(
                    part, colour: { activationColour(values[$0], scale: scale) },
                    title: { String(format: "%.3f", values[$0]) })
                html += "</div>\n"
            }
        }
        if !e.constant.isEmpty {
            html += "<p class=\"muted\">Constant over this text (no correlation): "
            html += e.constant.map { escape($0.rawValue) }.joined(separator: ", ") + ".</p>\n"
        }
        html += "</body></html>\n"
        return html
    }
}
