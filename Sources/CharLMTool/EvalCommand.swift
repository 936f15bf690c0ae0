import ArgumentParser
import CharLM
import CharNN
import CharTokenizer
import Foundation

/// `charlm eval RUN FILE`: how well a model predicts a text.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss, bits per unit and per character, and perplexity of a model on a text file.",
        discussion:
            "Uses the run's batch and sequence length by default, so that on the validation text it reports the "
            + "trainer's validation loss. Given the corpus the run was trained on, it also reports the loss on the "
            + "validation and test parts the trainer held out of it."
    )

    @Argument(help: ArgumentHelp("Run directory or model.safetensors.", valueName: "run"))
    var runPath: String

    @Argument(help: "UTF-8 text file to evaluate on.")
    var file: String

    @Option(help: "Streams evaluated side by side (default: the run's batch size).")
    var batch: Int?

    @Option(help: "Characters per forward pass (default: the run's sequence length).")
    var seqLength: Int?

    @Option(help: "Threads (default: all cores).")
    var threads = BatchRunner.defaultThreads

    @Option(help: "Which checkpoint of a run directory: best, latest, or step-N (kept with --keep-checkpoints).")
    var checkpoint: LanguageModel.Checkpoint = .best

    @Option(
        help: ArgumentHelp(
            "Weights to evaluate: f32 (as trained) or int8 (what generation uses by default: each weight matrix "
                + "rounded to 8 bits per row).",
            valueName: "precision"))
    var precision: WeightPrecision = .f32

    @Option(
        help: ArgumentHelp(
            "A tagger's context: characters read on either side of each block of decisions (default "
                + "\(Tagger.defaultContext)). A tagger ignores --batch, --seq-length and --precision.", valueName: "n"))
    var context = Tagger.defaultContext

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if let batch, batch < 1 { throw ValidationError("--batch must be at least 1.") }
        if let seqLength, seqLength < 1 { throw ValidationError("--seq-length must be at least 1.") }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
        if context < 0 || context > Tagger.maximumContext {
            throw ValidationError("--context must be between 0 and \(Tagger.maximumContext).")
        }
    }

    func run() throws {
        try Console.run {
            let model = try LanguageModel.load(URL(fileURLWithPath: runPath), checkpoint: checkpoint)
            if model.task != nil { return try evaluateTagger(model) }
            let unit = model.config.lossUnit
            let url = URL(fileURLWithPath: file)
            try Corpus.checkReadable(url)
            let encoded: EncodedCorpus
            do { encoded = try model.tokenizer.encodeFile(url) } catch let error as LocalizedError {
                throw CharLMError.badCorpus(path: file, reason: error.errorDescription ?? "\(error)")
            }
            let ids = TokenSpan(encoded)
            guard ids.count >= 2 else {
                throw CharLMError.badCorpus(path: file, reason: "needs at least 2 units to predict one")
            }
            let showProgress = Console.stderrIsTerminal && !json && ids.count > 200_000
            let start = Date()
            let network = model.network.rounded(to: precision)
            func evaluate(_ span: TokenSpan) throws -> EvaluationResult {
                try Evaluator.evaluate(
                    network: network, span: span, batchSize: batch ?? model.config.training.batchSize,
                    seqLength: seqLength ?? model.config.training.seqLength, threads: threads
                ) { fraction in
                    if showProgress {
                        Console.note(
                            String(
                                format: "\r\u{1B}[Kevaluating: %.0f%% (%@)", fraction * 100,
                                Console.duration(Date().timeIntervalSince(start))), newline: false)
                    }
                }
            }
            let result = try evaluate(ids)
            // The run's own corpus (it encodes to the units the run recorded): its held-out parts too.
            var parts: [(name: String, span: TokenSpan, result: EvaluationResult)] = []
            if encoded.count == model.config.corpusUnits {
                let heldOut = Corpus.heldOut(encoded, training: model.config.training)
                for (name, span) in [("validation", heldOut.validation), ("test", heldOut.test)] {
                    if let span, span.count >= 2 { parts.append((name, span, try evaluate(span))) }
                }
            }
            if showProgress { Console.note("\r\u{1B}[K", newline: false) }
            // Bits per character of the text (a grapheme of the normalized text, counted on the
            // text itself, not on what the vocabulary makes of it), whatever the model's unit:
            // models with other units or vocabulary limits compare on it. The first character is
            // context, not predicted (as the first unit is).
            let text = model.tokenizer.normalize(String(decoding: try Data(contentsOf: url), as: UTF8.self))
            let characters = max(text.count - 1, 0)
            let characterBits = characters > 0 ? result.totalNats / log(2) / Double(characters) : nil
            if json {
                var object: [String: Any] = [
                    "file": file, "units": result.count, "unit": unit, "loss": result.nats,
                    "bits": result.bitsPerCharacter, "chars": characters,
                    "perplexity": result.perplexity, "model": model.weightsURL.path, "precision": precision.rawValue,
                ]
                if let characterBits { object["char_bits"] = characterBits }
                for part in parts {
                    object["\(part.name)_loss"] = part.result.nats
                    object["\(part.name)_bits"] = part.result.bitsPerCharacter
                    object["\(part.name)_units"] = part.span.count
                }
                Console.out(Console.json(object) + "\n")
            } else {
                let perCharacter = characterBits.map {
                    String(format: "bits per character of the text  %.4f (%d characters)\n", $0, characters)
                }
                Console.out(
                    String(format: "%@: %d %@s predicted\n", file, result.count, unit)
                        + (precision == .f32 ? "" : "weights     \(precision.rawValue)\n")
                        + String(format: "loss        %.4f nats/%@\n", result.nats, unit)
                        + String(format: "bits/%@   %.4f\n", unit, result.bitsPerCharacter)
                        + (perCharacter ?? "")
                        + String(format: "perplexity  %.3f\n", result.perplexity)
                        + parts.map {
                            String(
                                format: "%@ split of the run's corpus: loss %.4f nats/%@ (%.4f bits/%@) on %d %@s\n",
                                $0.name, $0.result.nats, unit, $0.result.bitsPerCharacter, unit, $0.span.count, unit)
                        }.joined())
            }
        }
    }

    /// A tagger: loss over the candidates, character and word accuracy, the error rate where
    /// the model had a choice, and the word baseline built from the run's training text.
    private func evaluateTagger(_ model: LanguageModel) throws {
        let tagger = try model.tagger(context: context, threads: threads)
        let tokenizer = model.tokenizer
        let url = URL(fileURLWithPath: file)
        try Corpus.checkReadable(url)
        let encoded: EncodedCorpus
        do { encoded = try tokenizer.encodeFile(url) } catch let error as LocalizedError {
            throw CharLMError.badCorpus(path: file, reason: error.errorDescription ?? "\(error)")
        }
        let training = model.config.training
        // The word baseline learns from the run's training text, when its corpus is still there.
        var baseline: WordBaseline?
        var trainingSpan: TokenSpan?
        if encoded.count == model.config.corpusUnits {
            trainingSpan = Corpus.heldOut(encoded, training: training).train
        } else if let path = model.config.corpus, FileManager.default.isReadableFile(atPath: path),
            let corpus = try? tokenizer.encodeFile(URL(fileURLWithPath: path)), corpus.count == model.config.corpusUnits
        {
            trainingSpan = Corpus.heldOut(corpus, training: training).train
        }
        if let trainingSpan { baseline = WordBaseline(scheme: tagger.scheme, span: trainingSpan) }
        var parts: [(name: String, span: TokenSpan)] = []
        if encoded.count == model.config.corpusUnits {
            // The run's own corpus: the whole file holds the training text, so report the held-out parts.
            let heldOut = Corpus.heldOut(encoded, training: training)
            parts = [("validation", heldOut.validation), ("test", heldOut.test)].compactMap { name, span in
                span.flatMap { $0.count > 0 ? (name, $0) : nil }
            }
        }
        if parts.isEmpty { parts = [("text", TokenSpan(encoded))] }
        let results = try parts.map { ($0.name, $0.span, try tagger.evaluate($0.span, baseline: baseline)) }
        if json {
            var object: [String: Any] = [
                "file": file, "model": model.weightsURL.path, "task": model.task!.rawValue, "context": context,
            ]
            if let baseline { object["baseline_words_known"] = baseline.vocabularySize }
            for (name, _, r) in results {
                var part: [String: Any] = [
                    "chars": r.characters, "loss": r.loss.nats, "char_accuracy": r.characterAccuracy,
                    "ambiguous_chars": r.ambiguous, "ambiguous_error_rate": r.ambiguousErrorRate, "words": r.words,
                    "word_accuracy": r.wordAccuracy,
                ]
                if baseline != nil {
                    part["baseline_word_accuracy"] = r.baselineWordAccuracy
                    part["unseen_words"] = r.unseenWords
                    part["unseen_word_accuracy"] = r.unseenWordAccuracy
                    part["baseline_unseen_word_accuracy"] = r.baselineUnseenWordAccuracy
                }
                object[name] = part.mapValues { value -> Any in
                    if let d = value as? Double, !d.isFinite { return NSNull() }
                    return value
                }
            }
            Console.out(Console.json(object) + "\n")
            return
        }
        var text = "\(file): \(model.task!) with \(context) characters of context each side\n"
        if baseline == nil {
            text += "(no word baseline: the run's corpus \(model.config.corpus ?? "") is not readable as it was)\n"
        }
        for (name, _, r) in results {
            let label = name == "text" ? "" : "\(name) split of the run's corpus: "
            text += String(
                format: "%@%d chars, loss %.4f nats/char over the candidates\n", label, r.characters, r.loss.nats)
            text += String(
                format: "  characters  %.4f%% correct; where the model had a choice (%d): %.3f%% wrong\n",
                100 * r.characterAccuracy, r.ambiguous, 100 * r.ambiguousErrorRate)
            text += String(format: "  words       %.3f%% correct of %d\n", 100 * r.wordAccuracy, r.words)
            if baseline != nil {
                text += String(
                    format: "  word baseline (most frequent form in training) %.3f%%\n", 100 * r.baselineWordAccuracy)
                text += String(
                    format: "  words unseen in training (%d): model %.3f%%, baseline %.3f%%\n", r.unseenWords,
                    100 * r.unseenWordAccuracy, 100 * r.baselineUnseenWordAccuracy)
            }
        }
        Console.out(text)
    }
}
