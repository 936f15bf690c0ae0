import CharIO
import CharNN
import CharTokenizer
import Foundation

extension Trainer {
    // MARK: - A new run

    /// Prepares a new run: builds the tokenizer from the corpus, encodes and splits it,
    /// initialises the model, and creates the run directory with a step-0 checkpoint.
    ///
    /// Every check that can fail runs before anything is written.
    /// - Parameters:
    ///   - config: the run's settings; the model's vocabulary size is taken from the tokenizer.
    ///   - overwrite: replace an existing run at `runDirectory`.
    ///   - initFrom: fine-tune: start from the weights of this model (a run directory, its best
    ///     checkpoint, or a model.safetensors with its config and tokenizer beside it) instead of
    ///     random ones. Its vocabulary is kept and extended with the new corpus's characters
    ///     (their weights start fresh); `config.model` must have its shape.
    ///   - shouldStop: checked between the preparation's phases; when it holds, preparation ends
    ///     with `CharLMError.interrupted` and nothing is written.
    public static func start(
        corpus corpusURL: URL, runDirectory: URL, config: RunConfig, overwrite: Bool = false, initFrom: URL? = nil,
        shouldStop: () -> Bool = { false }
    ) throws -> Trainer {
        func stopIfAsked() throws {
            if shouldStop() { throw CharLMError.interrupted("stopped while preparing the run; nothing was written") }
        }
        try config.training.validate()
        let run = RunDirectory(runDirectory)
        // Under MPI only rank 0 writes; the others build the same trainer from the same inputs.
        let writes = Distributed.world?.isLeader ?? true
        if writes && run.exists && !overwrite { throw CharLMError.runExists(path: run.url.path) }
        try Corpus.checkReadable(corpusURL)
        if let task = config.training.task {
            if initFrom != nil {
                throw CharLMError.invalidOptions(
                    "--init-from is for language models; a \(task) model starts from scratch")
            }
            // charlm's defaults, or TokenizerConfig's: nothing asked of the tokenizer.
            if config.tokenizer != RunConfig().tokenizer && config.tokenizer != TokenizerConfig() {
                throw CharLMError.invalidOptions(
                    "a \(task) model reads every grapheme of the corpus after NFC, one token each; drop the tokenizer "
                        + "options")
            }
        }
        let source = try initFrom.map { try LanguageModel.load($0, checkpoint: .best) }
        if let source { try checkFineTuning(config, from: source) }
        let tokenizer: Tokenizer
        do {
            if let task = config.training.task {
                tokenizer = try TaggingScheme.buildTokenizer(task: task, corpusFile: corpusURL)
            } else if let source {
                tokenizer = try Tokenizer.build(corpusFile: corpusURL, extending: source.tokenizer)
            } else {
                tokenizer = try Tokenizer.build(corpusFile: corpusURL, config: config.tokenizer)
            }
        } catch let error as TokenizerError {
            throw CharLMError.badCorpus(path: corpusURL.path, reason: error.localizedDescription)
        }
        // A tagger's vocabulary limit, before the corpus is encoded.
        if let task = config.training.task { _ = try TaggingScheme(task: task, tokenizer: tokenizer) }
        try stopIfAsked()
        let corpus = try Corpus.load(
            corpusURL, tokenizer: tokenizer, valFraction: config.training.valFraction,
            testFraction: config.training.testFraction,
            split: config.training.validationSplit,
            validationFile: config.training.validationFile.map { URL(fileURLWithPath: $0) })
        try stopIfAsked()
        var config = config
        config.model.vocabularySize = tokenizer.vocabularySize
        config.tokenizer = tokenizer.config
        config.corpus = corpusURL.path
        config.corpusUnits = corpus.train.corpus.count
        config.initializedFrom = source?.weightsURL.path
        try config.validate()
        let network = try Network(config: config.model, seed: config.training.seed)
        if let source { try transplant(source, into: network, tokenizer: tokenizer) }
        let optimizer = try Optimizer(config: config.training.optimizer, parameterCount: network.parameterCount)
        let averaged = try config.training.averagingDecay.map { _ in try Network(config: config.model) }
        averaged?.parameters.copy(from: network.parameters)
        var state = TrainerState()
        state.learningRate = config.training.optimizer.learningRate
        state.rng = SeededGenerator(seed: config.training.seed ^ 0x5A5A_5A5A).state
        let trainer = try Trainer(
            run: run, config: config, tokenizer: tokenizer, corpus: corpus, network: network,
            optimizer: optimizer, hidden: RecurrentState(config: config.model, batchSize: config.training.batchSize),
            averaged: averaged, state: state, resumedFrom: nil)
        // A step-0 checkpoint, so that even a crash during the first save leaves one to resume.
        if writes {
            trainer.lock = try run.create(config: config, tokenizer: tokenizer, overwrite: overwrite) { staging in
                try staging.saveLatest(
                    network: network, optimizer: optimizer, hidden: trainer.hidden, averaged: averaged?.parameters,
                    trainer: state)
            }
        }
        return trainer
    }

    // MARK: - Fine-tuning

    /// A fine-tuned run keeps the source model's shape and tokenizer options.
    private static func checkFineTuning(_ config: RunConfig, from source: LanguageModel) throws {
        let a = config.model, b = source.config.model
        var differences: [String] = []
        if a.cell != b.cell { differences.append("cell \(a.cell.rawValue) (the model is \(b.cell.rawValue))") }
        if a.layers != b.layers { differences.append("\(a.layers) layers (the model has \(b.layers))") }
        if a.hiddenSize != b.hiddenSize {
            differences.append("hidden size \(a.hiddenSize) (the model has \(b.hiddenSize))")
        }
        if a.embeddingSize != b.embeddingSize {
            differences.append(
                "embedding \(a.embeddingSize.map(String.init) ?? "none") (the model has "
                    + "\(b.embeddingSize.map(String.init) ?? "none"))"
            )
        }
        let t = config.tokenizer, u = source.tokenizer.config
        if t.normalization != u.normalization || t.unit != u.unit {
            differences.append("another normalization or unit than the model's tokenizer")
        }
        guard differences.isEmpty else {
            throw CharLMError.invalidOptions(
                "cannot fine-tune \(source.weightsURL.path) with "
                    + differences.joined(separator: ", ")
                    + "; a fine-tuned model keeps the shape and tokenizer of the one it starts from")
        }
    }

    /// Copies `source`'s weights into `network`, whose vocabulary extends the source's: the rows
    /// (or, for a one-hot first layer, columns) of a token the source has are the source's; those
    /// of a new token keep their fresh initialisation.
    static func transplant(_ source: LanguageModel, into network: Network, tokenizer: Tokenizer) throws {
        struct Key: Hashable {
            let kind: VocabularyEntry.Kind
            let utf8: [UInt8]
        }
        var sourceIDs: [Key: Int] = [:]
        for (id, entry) in source.tokenizer.vocabulary.enumerated() {
            sourceIDs[Key(kind: entry.kind, utf8: entry.utf8)] = id
        }
        let pairs = tokenizer.vocabulary.enumerated().compactMap { id, entry in
            sourceIDs[Key(kind: entry.kind, utf8: entry.utf8)].map { (target: id, source: $0) }
        }
        let (newV, oldV) = (network.config.vocabularySize, source.network.config.vocabularySize)
        for info in network.layout.tensors {
            let old = try source.network.tensor(info.name)
            switch network.layout.vocabularyAxis(of: info.name, config: network.config) {
            case nil:
                try network.setTensor(info.name, values: old)
            case 0?:
                var values = try network.tensor(info.name)
                let width = info.count / newV
                for pair in pairs {
                    values.replaceSubrange(
                        (pair.target * width)..<((pair.target + 1) * width),
                        with: old[(pair.source * width)..<((pair.source + 1) * width)])
                }
                try network.setTensor(info.name, values: values)
            case _?:
                var values = try network.tensor(info.name)
                for row in 0..<(info.count / newV) {
                    for pair in pairs { values[row * newV + pair.target] = old[row * oldV + pair.source] }
                }
                try network.setTensor(info.name, values: values)
            }
        }
    }

    // MARK: - Resuming

    /// Reopens a run at its latest checkpoint.
    /// - Parameters:
    ///   - corpus: the corpus file, if given again (default: the path recorded in config.json).
    ///   - options: options given again: those in `RunConfig.mayChangeOnResume` change the run
    ///     (a longer limit, a new learning rate); any other must match it.
    /// - Throws: `CharLMError.invalidOptions` listing every conflicting option.
    public static func resume(runDirectory: URL, corpus corpusURL: URL? = nil, options: RunOptions = RunOptions())
        throws -> Trainer
    {
        let run = RunDirectory(runDirectory)
        // Under MPI rank 0 locks and tidies the run and writes its config; the others read it
        // after that (the barrier at the end of rank 0's part).
        let world = Distributed.world
        let writes = world?.isLeader ?? true
        if !writes { try world?.barrier() }
        guard run.exists else { throw CharLMError.missingFile(path: run.url.path, hint: "nothing to resume") }
        let lock = writes ? try run.lock() : nil
        if writes { run.tidy() }
        let (saved, tokenizer) = try run.loadConfig()
        let conflicts = options.conflicts(resuming: saved)
        guard conflicts.isEmpty else {
            throw CharLMError.invalidOptions(
                "cannot resume \(saved.corpus.map { "a run on \($0)" } ?? "this run") with "
                    + "\(conflicts.joined(separator: ", ")); drop those options to continue it as it was, or start a "
                    + "new run"
            )
        }
        var config = options.applied(to: saved)
        try config.training.validate()
        var notices: [String] = []
        for change in options.changes(resuming: saved) {
            notices.append("\(change.name) \(change.to) instead of the run's \(change.from)")
        }
        if config.training.threads != saved.training.threads {
            notices.append(
                "with \(config.training.threads) threads instead of \(saved.training.threads), the batch is split "
                    + "differently, so results differ from an uninterrupted run in the last bits"
            )
        }
        guard let path = corpusURL?.path ?? config.corpus else {
            throw CharLMError.invalidOptions("the run does not record its corpus; give the corpus file again")
        }
        let corpus = try Corpus.load(
            URL(fileURLWithPath: path), tokenizer: tokenizer, valFraction: config.training.valFraction,
            testFraction: config.training.testFraction,
            split: config.training.validationSplit,
            validationFile: config.training.validationFile.map { URL(fileURLWithPath: $0) })
        if let recorded = config.corpusUnits, recorded != corpus.train.corpus.count {
            throw CharLMError.badCorpus(
                path: path,
                reason:
                    "encodes to \(corpus.train.corpus.count) units, but the run was trained on \(recorded): the "
                    + "corpus changed since the run started"
            )
        }
        config.corpus = path
        let network = try Network(config: config.model)
        let optimizer = try Optimizer(config: config.training.optimizer, parameterCount: network.parameterCount)
        let hidden = RecurrentState(config: config.model, batchSize: config.training.batchSize)
        let averaged = try config.training.averagingDecay.map { _ in try Network(config: config.model) }
        let checkpoint = try run.loadLatest(
            into: network, optimizer: optimizer, hidden: hidden, averaged: averaged?.parameters)
        averaged?.parametersDidChange()
        if let fallback = checkpoint.fallback { notices.append(fallback) }
        let ranks = world?.size ?? 1
        if (checkpoint.state.ranks ?? 1) != ranks {
            notices.append(
                "on \(ranks) process\(ranks == 1 ? "" : "es") instead of \(checkpoint.state.ranks ?? 1): the data "
                    + "cursor and the optimizer state carry over, but the batch is split differently, so results differ "
                    + "from an uninterrupted run in the last bits")
        }
        let trainer = try Trainer(
            run: run, config: config, tokenizer: tokenizer, corpus: corpus, network: network,
            optimizer: optimizer, hidden: hidden, averaged: averaged, state: checkpoint.state,
            resumedFrom: checkpoint.state.step)
        trainer.startNotices = notices
        trainer.lock = lock
        guard checkpoint.state.cursor <= trainer.batcher.chunksPerEpoch else {
            throw CharLMError.invalidFile(
                path: run.trainerStateURL.path,
                reason: "data cursor \(checkpoint.state.cursor) is past the end of the corpus")
        }
        if writes {
            try writeDurably(config.jsonData(), to: run.configURL)
            try world?.barrier()
        }
        return trainer
    }
}
