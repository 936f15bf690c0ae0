import CharNN
import CharTokenizer
import Foundation

/// A labelling task: the network reads text with something taken away, one grapheme at a time,
/// and gives back each grapheme as it was. The corpus is its own answer: any text, with the
/// marks stripped or the case folded, is the input, and the text itself the target.
public enum TaggingTask: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Input: the text with its combining marks stripped ("prilis zlutoucky kun");
    /// target: the text ("příliš žluťoučký kůň").
    case restoreMarks = "restore-marks"
    /// Input: the text case-folded; target: the text.
    case restoreCase = "restore-case"

    public var description: String { rawValue }

    /// What the task takes away from one grapheme (NFC in, NFC out): marks stripped (utf8proc's
    /// STRIPMARK) or Unicode case folding.
    public func reduce(_ grapheme: String) -> String {
        switch self {
        case .restoreMarks: Normalization(form: .nfc, stripMarks: true).apply(to: grapheme)
        case .restoreCase: Normalization(form: .nfc, caseFold: true).apply(to: grapheme)
        }
    }

    /// The tokenizer options of a tagger: graphemes, NFC, and `<unk>` for a grapheme the
    /// vocabulary lacks (one id per grapheme, so that inputs and targets line up; an unknown
    /// grapheme is passed through as it is).
    public static var tokenizerConfig: TokenizerConfig {
        TokenizerConfig(normalization: Normalization(form: .nfc), unit: .grapheme, fallback: .unknown)
    }
}

/// The vocabulary of a tagger and what each id may become: built once from the corpus
/// (`buildTokenizer`), and recomputed from the vocabulary alone when a run is loaded.
public struct TaggingScheme: Sendable {
    public let task: TaggingTask
    public let tokenizer: Tokenizer
    /// Per id: the id of its reduced form, the input the network sees for it. An id whose
    /// reduced form is not one grapheme (ß case-folds to "ss") is its own input: left unchanged.
    public let inputOf: [Int32]
    /// Per input id: the ids that reduce to it, which it may become (itself among them).
    public let candidateLists: [[Int32]]
    public let candidates: CandidateMask
    /// The vocabulary's graphemes whose reduced form is not a single grapheme, left unchanged.
    public let unchanged: [String]
    /// Per id: whether its grapheme is part of a word (a letter, or a digit), for word accuracy.
    public let isWordCharacter: [Bool]

    /// The most distinct graphemes a tagger's text may have.
    public static let maximumVocabulary = 8192

    public init(task: TaggingTask, tokenizer: Tokenizer) throws {
        guard tokenizer.config.unit == .grapheme, tokenizer.config.fallback == .unknown else {
            throw CharLMError.invalidOptions(
                "a \(task) model needs a grapheme tokenizer with <unk> fallback (this one is "
                    + "\(tokenizer.config.unit.rawValue), fallback \(tokenizer.config.fallback.rawValue))")
        }
        let single = Tokenizer.singleGraphemes
        let V = tokenizer.vocabularySize
        guard V <= Self.maximumVocabulary else {
            throw CharLMError.invalidOptions(
                "a \(task) model's text has \(V) distinct characters; a tagger takes at most \(Self.maximumVocabulary) "
                    + "(each one's candidates are a row of a V x V table)")
        }
        var inputOf = (0..<V).map { Int32($0) }
        var unchanged: [String] = []
        var isWordCharacter = [Bool](repeating: false, count: V)
        for id in 0..<V {
            guard let entry = tokenizer.entry(for: Int32(id)), !entry.isSpecial else { continue }
            let unit = entry.text
            isWordCharacter[id] = unit.first.map { $0.isLetter || $0.isNumber } ?? false
            let reduced = task.reduce(unit)
            guard reduced != unit else { continue }
            if (try? single.encode(reduced).count) == 1, let target = tokenizer.id(for: reduced) {
                inputOf[id] = target
            } else {
                unchanged.append(unit)
            }
        }
        var lists = [[Int32]](repeating: [], count: V)
        for id in 0..<V { lists[Int(inputOf[id])].append(Int32(id)) }
        // An id that is never an input (a grapheme with marks) gets itself, so that every row
        // of the mask is valid.
        for id in 0..<V where lists[id].isEmpty { lists[id] = [Int32(id)] }
        self.task = task
        self.tokenizer = tokenizer
        self.inputOf = inputOf
        candidateLists = lists
        candidates = try CandidateMask(vocabularySize: V, candidates: lists)
        self.unchanged = unchanged
        self.isWordCharacter = isWordCharacter
    }

    /// A tagger's tokenizer for `corpus`: every grapheme of it, most frequent first, then the
    /// reduced forms the corpus lacks (a text with "ů" but no "u" still needs "u" as an input).
    public static func buildTokenizer(task: TaggingTask, corpusFile url: URL) throws -> Tokenizer {
        let config = TaggingTask.tokenizerConfig
        let built = try Tokenizer.build(corpusFile: url, config: config)
        let single = Tokenizer.singleGraphemes
        var entries = built.vocabulary
        var known = Set(entries.map(\.utf8))
        for entry in built.vocabulary where !entry.isSpecial {
            let reduced = task.reduce(entry.text)
            guard reduced != entry.text, (try? single.encode(reduced).count) == 1 else { continue }
            let bytes = Array(reduced.utf8)
            if known.insert(bytes).inserted { entries.append(VocabularyEntry(unit: bytes)) }
        }
        return try Tokenizer(config: config, vocabulary: entries)
    }

    /// The input ids of target ids.
    public func inputs(of targets: [Int32]) -> [Int32] { targets.map { inputOf[Int($0)] } }

    /// Whether `input` has more than one candidate: a position where the network decides.
    public func isAmbiguous(_ input: Int32) -> Bool { candidateLists[Int(input)].count > 1 }
}

extension Tokenizer {
    /// An empty grapheme tokenizer, to count graphemes (every one is `<unk>`).
    static let singleGraphemes = try! Tokenizer(units: [], config: TaggingTask.tokenizerConfig)
}

/// Runs a tagger over text: windows of `core` positions, each read with up to `context` more on
/// either side (a bidirectional network carries no state from one window to the next, so a
/// position's context is what its window holds), many windows in one batch.
public struct Tagger: Sendable {
    public let network: Network
    public let scheme: TaggingScheme
    /// Positions each window decides.
    public let core: Int
    /// Positions read on either side of them at least (at the ends of the text the window is
    /// shifted inward: fewer on the outer side, more on the inner one).
    public let context: Int
    public let batchSize: Int
    public let threads: Int

    /// The context each side by default: measured on Czech (see the README); beyond it
    /// accuracy no longer changes.
    public static let defaultContext = 32
    /// The most context each side a tagger takes (its windows are batched: 32 of
    /// 64 + 2 x context positions).
    public static let maximumContext = 1024

    public init(
        network: Network, scheme: TaggingScheme, core: Int = 64, context: Int = Tagger.defaultContext,
        batchSize: Int = 32, threads: Int = BatchRunner.defaultThreads
    ) {
        precondition(
            core >= 1 && context >= 0 && context <= Tagger.maximumContext && batchSize >= 1,
            "core and batch size must be positive, context in 0...\(Tagger.maximumContext)")
        self.network = network
        self.scheme = scheme
        self.core = core
        self.context = context
        self.batchSize = batchSize
        self.threads = threads
    }

    /// The decision at each of `positions` of `inputs` (input ids; all of them by default):
    /// the candidate with the largest logit, and, when `targets` are given, the summed
    /// cross-entropy of the targets over the candidates (nats). The rest of `inputs` is context.
    public func tag(_ inputs: [Int32], targets: [Int32]? = nil, positions: Range<Int>? = nil) throws -> (
        outputs: [Int32], nats: Double
    ) {
        let n = inputs.count
        let positions = positions ?? 0..<n
        precondition(positions.lowerBound >= 0 && positions.upperBound <= n, "positions outside the input")
        guard !positions.isEmpty else { return ([], 0) }
        let width = min(n, core + 2 * context)
        let V = network.config.vocabularySize
        // Core k decides `core` positions from p0 + k * core; its window of `width` ids is
        // placed to hold `context` ids each side where the text allows.
        let p0 = positions.lowerBound
        let cores = (positions.count + core - 1) / core
        let windowStarts = (0..<cores).map { k in min(max(0, p0 + k * core - context), n - width) }
        let rows = min(batchSize, cores)
        let runner = BatchRunner(
            network: network, batchSize: rows, seqLength: width, threads: threads, training: false)
        let state = RecurrentState(config: network.config, batchSize: rows)
        var outputs = [Int32](repeating: 0, count: positions.count)
        var nats = 0.0
        var first = 0
        while first < cores {
            let count = min(rows, cores - first)
            var ids: [Int32] = []
            ids.reserveCapacity(rows * width)
            // A short last batch repeats its last window; those rows are not read.
            for r in 0..<rows {
                let s = windowStarts[first + min(r, count - 1)]
                ids += inputs[s..<(s + width)]
            }
            state.reset()
            let logits = try runner.logits(inputs: ids, state: state)
            logits.withUnsafeBufferPointer { logits in
                for r in 0..<count {
                    let k = first + r, s = windowStarts[k]
                    for position in (p0 + k * core)..<min(positions.upperBound, p0 + (k + 1) * core) {
                        let offset = (r * width + position - s) * V
                        let row = UnsafeBufferPointer(rebasing: logits[offset..<(offset + V)])
                        let input = inputs[position]
                        outputs[position - p0] = scheme.candidates.best(row, for: input)
                        if let targets { nats += crossEntropy(row, target: targets[position], input: input) }
                    }
                }
            }
            first += count
        }
        return (outputs, nats)
    }

    /// Restores a text read from `input`, streaming: `output` gets the restored text in pieces,
    /// each as soon as the context after it has been read, and their concatenation is what one
    /// `tag` over the whole text decides. The text is normalized as the tokenizer does (NFC),
    /// then every grapheme is reduced (marks stripped, or case folded) and the network decides
    /// what it was. A grapheme whose reduced form the vocabulary lacks too is copied as it is.
    ///
    /// - Parameter block: positions decided at a time at least (rounded up to whole cores).
    /// - Throws: `CharLMError.badCorpus` for invalid UTF-8 (naming the byte offset).
    public func restore(
        _ input: FileHandle, name: String, block: Int = 1 << 14, output: (String) throws -> Void
    ) throws {
        precondition(block >= 1, "the block must be positive")
        // Blocks of whole cores keep the cores where one pass puts them; a whole window kept
        // before the next block lets the last windows reach back as far as one pass's do.
        let block = (block + core - 1) / core * core
        let keep = core + 2 * context
        let tokenizer = scheme.tokenizer
        let unknown = tokenizer.unknownID ?? 0
        var graphemes: [String] = [], inputs: [Int32] = []
        // Positions before `done` are written; `keep` of them are kept to read.
        var done = 0
        var pending: [UInt8] = []
        var offset = 0
        func decide(upTo end: Int) throws {
            guard end > done else { return }
            let (outputs, _) = try tag(inputs, positions: done..<end)
            var text = ""
            for (i, id) in outputs.enumerated() {
                text += id == unknown ? graphemes[done + i] : tokenizer.unit(for: id) ?? graphemes[done + i]
            }
            try output(text)
            done = end
            let drop = max(0, done - keep)
            graphemes.removeFirst(drop)
            inputs.removeFirst(drop)
            done -= drop
        }
        func append(_ bytes: ArraySlice<UInt8>) throws {
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw CharLMError.badCorpus(
                    path: name,
                    reason:
                        "is not valid UTF-8 (in the \(bytes.count) bytes from offset \(offset)); charlm reads UTF-8 text"
                )
            }
            for character in tokenizer.normalize(text) {
                let grapheme = String(character)
                graphemes.append(grapheme)
                let id = tokenizer.id(for: grapheme).map { scheme.inputOf[Int($0)] }
                inputs.append(id ?? tokenizer.id(for: scheme.task.reduce(grapheme)) ?? unknown)
            }
            offset += bytes.count
        }
        while true {
            let data = try input.read(upToCount: 1 << 20) ?? Data()
            pending += data
            let atEnd = data.isEmpty
            // Whole lines only (a newline ends a grapheme and a UTF-8 sequence), unless the
            // input ends, or a line grows past 16 MB: then up to its last ASCII character
            // (which no mark before it can combine with), or its last UTF-8 lead byte.
            var end: Int? = atEnd ? pending.count : pending.lastIndex(of: 0x0A).map { $0 + 1 }
            if end == nil, pending.count > 1 << 24 {
                end = pending.lastIndex { $0 < 0x80 } ?? pending.lastIndex { $0 & 0xC0 != 0x80 }
            }
            if let end, end > 0 {
                try append(pending[..<end])
                pending.removeFirst(end)
            }
            while inputs.count - done >= block + context { try decide(upTo: done + block) }
            if atEnd { break }
        }
        try decide(upTo: inputs.count)
    }

    /// −log of the target's probability under the softmax over the input's candidates.
    private func crossEntropy(_ row: UnsafeBufferPointer<Float>, target: Int32, input: Int32) -> Double {
        let candidates = scheme.candidateLists[Int(input)]
        guard candidates.count > 1 else { return 0 }
        var m = -Double.infinity
        for c in candidates { m = max(m, Double(row[Int(c)])) }
        var sum = 0.0
        for c in candidates { sum += exp(Double(row[Int(c)]) - m) }
        return m + log(sum) - Double(row[Int(target)])
    }
}

/// How well a tagger restored a text, against the original.
public struct TaggingEvaluation: Sendable, Equatable {
    /// Summed cross-entropy over the candidates (nats) and the number of positions.
    public var nats = 0.0
    public var characters = 0
    public var correctCharacters = 0
    /// Positions whose input has more than one candidate, and the errors among them.
    public var ambiguous = 0
    public var ambiguousErrors = 0
    public var words = 0
    public var correctWords = 0
    /// Words whose reduced form the baseline never saw in training, and how many of them the
    /// tagger (and the baseline, which leaves them as they are) got right.
    public var unseenWords = 0
    public var correctUnseenWords = 0
    /// The word baseline, on the same words.
    public var baselineCorrectWords = 0
    public var baselineCorrectUnseenWords = 0

    public init() {}

    public var loss: EvaluationResult { EvaluationResult(totalNats: nats, count: characters) }
    public var characterAccuracy: Double { ratio(correctCharacters, characters) }
    /// Errors per position where the network had a choice.
    public var ambiguousErrorRate: Double { ratio(ambiguousErrors, ambiguous) }
    public var wordAccuracy: Double { ratio(correctWords, words) }
    public var unseenWordAccuracy: Double { ratio(correctUnseenWords, unseenWords) }
    public var baselineWordAccuracy: Double { ratio(baselineCorrectWords, words) }
    public var baselineUnseenWordAccuracy: Double { ratio(baselineCorrectUnseenWords, unseenWords) }

    private func ratio(_ a: Int, _ b: Int) -> Double { b > 0 ? Double(a) / Double(b) : .nan }

    public static func + (a: TaggingEvaluation, b: TaggingEvaluation) -> TaggingEvaluation {
        var s = a
        s.nats += b.nats
        s.characters += b.characters
        s.correctCharacters += b.correctCharacters
        s.ambiguous += b.ambiguous
        s.ambiguousErrors += b.ambiguousErrors
        s.words += b.words
        s.correctWords += b.correctWords
        s.unseenWords += b.unseenWords
        s.correctUnseenWords += b.correctUnseenWords
        s.baselineCorrectWords += b.baselineCorrectWords
        s.baselineCorrectUnseenWords += b.baselineCorrectUnseenWords
        return s
    }
}

/// The classic word-level method, the baseline a character tagger must beat: each reduced word
/// becomes the original form seen most often with it in the training text, and a word never
/// seen stays as it is.
public struct WordBaseline: Sendable {
    private var forms: [[Int32]: [[Int32]: Int]] = [:]
    private var best: [[Int32]: [Int32]] = [:]

    /// Counts the words of `span` (target ids).
    public init(scheme: TaggingScheme, span: TokenSpan) {
        for range in span.ranges {
            let targets = span.corpus.ids(range)
            for word in Self.words(targets, scheme: scheme) {
                let original = Array(targets[word])
                forms[scheme.inputs(of: original), default: [:]][original, default: 0] += 1
            }
        }
        for (reduced, counts) in forms {
            // The most frequent form; ties go to the smallest ids, so that the choice is stable.
            best[reduced] =
                counts.max { a, b in
                    a.value != b.value ? a.value < b.value : a.key.lexicographicallyPrecedes(b.key) == false
                }!.key
        }
    }

    /// The baseline's restoration of a reduced word, and whether it saw the word in training.
    public func restore(_ reduced: [Int32]) -> (word: [Int32], seen: Bool) {
        if let word = best[reduced] { return (word, true) }
        return (reduced, false)
    }

    /// Distinct reduced words it knows.
    public var vocabularySize: Int { best.count }

    /// The ranges of `ids` that are words: maximal runs of letters and digits.
    static func words(_ ids: [Int32], scheme: TaggingScheme) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start: Int?
        for (i, id) in ids.enumerated() {
            let inWord = scheme.isWordCharacter[Int(id)]
            if inWord, start == nil { start = i }
            if !inWord, let s = start {
                out.append(s..<i)
                start = nil
            }
        }
        if let s = start { out.append(s..<ids.count) }
        return out
    }
}

extension Tagger {
    /// Restores each run of `span` (target ids: the original text, reduced here) and compares
    /// with it: losses and accuracies of the tagger, and of `baseline` on the same words.
    public func evaluate(_ span: TokenSpan, baseline: WordBaseline?) throws -> TaggingEvaluation {
        var total = TaggingEvaluation()
        for range in span.ranges {
            let targets = span.corpus.ids(range)
            let inputs = scheme.inputs(of: targets)
            let (outputs, nats) = try tag(inputs, targets: targets)
            var e = TaggingEvaluation()
            e.nats = nats
            e.characters = targets.count
            for i in targets.indices {
                if outputs[i] == targets[i] { e.correctCharacters += 1 }
                if scheme.isAmbiguous(inputs[i]) {
                    e.ambiguous += 1
                    if outputs[i] != targets[i] { e.ambiguousErrors += 1 }
                }
            }
            for word in WordBaseline.words(targets, scheme: scheme) {
                e.words += 1
                let correct = outputs[word] == targets[word]
                if correct { e.correctWords += 1 }
                guard let baseline else { continue }
                let (guess, seen) = baseline.restore(Array(inputs[word]))
                let baselineCorrect = guess[...] == targets[word]
                if baselineCorrect { e.baselineCorrectWords += 1 }
                if !seen {
                    e.unseenWords += 1
                    if correct { e.correctUnseenWords += 1 }
                    if baselineCorrect { e.baselineCorrectUnseenWords += 1 }
                }
            }
            total = total + e
        }
        return total
    }
}
