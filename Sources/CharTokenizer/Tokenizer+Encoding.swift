import Foundation

extension Tokenizer {
    // MARK: - Encoding text

    /// Token ids of `text`.
    /// - Throws: `TokenizerError.unknownCharacters` (fallback `.scalars`) naming every character
    ///   the vocabulary lacks.
    public func encode(_ text: String) throws -> [Int32] {
        var text = text
        return try text.withUTF8 { try encode(buffer: $0, source: nil) }
    }

    /// Token ids of UTF-8 bytes.
    /// - Throws: `TokenizerError.invalidUTF8` (unless `config.invalidUTF8` is `.replace`),
    ///   `TokenizerError.unknownCharacters`.
    public func encode(utf8 bytes: some Collection<UInt8>) throws -> [Int32] {
        if let result = try bytes.withContiguousStorageIfAvailable({ try encode(buffer: $0, source: nil) }) {
            return result
        }
        return try Array(bytes).withUnsafeBufferPointer { try encode(buffer: $0, source: nil) }
    }

    private func encode(buffer: UnsafeBufferPointer<UInt8>, source: String?) throws -> [Int32] {
        let encoder = StreamEncoder(tokenizer: self, source: source)
        let out = IDBuffer(capacity: buffer.count + 16)
        try encoder.encode(chunk: buffer, offset: 0, into: out)
        return out.array
    }

    // MARK: - Encoding files

    /// Encodes a whole file into a compact id array, streaming: the file is read in chunks and
    /// never held as a `String`; memory beyond the result is a few chunk-sized buffers.
    /// - Throws: `TokenizerError.unreadableFile`, `.invalidUTF8` (with the byte offset),
    ///   `.unknownCharacters`.
    public func encodeFile(_ url: URL) throws -> EncodedCorpus {
        try encodeFile(url, chunkSize: ChunkReader.defaultChunkSize)
    }

    /// `encodeFile(_:)` on `threads` threads (default: every core, at most 8).
    public func encodeFile(_ url: URL, threads: Int) throws -> EncodedCorpus {
        try encodeFile(url, chunkSize: ChunkReader.defaultChunkSize, workers: threads)
    }

    func encodeFile(_ url: URL, chunkSize: Int, workers: Int = defaultWorkers) throws -> EncodedCorpus {
        let width = EncodedCorpus.Width(vocabularySize: vocabularySize)
        return try ChunkReader.withFile(url, kinds: lookup.normalizationTables.kinds, chunkSize: chunkSize) { reader in
            let storage = CompactIDStorage(width: width, capacity: (reader.fileSize ?? 0) + 16)
            try encode(reader: reader, workers: workers) { team, pieces in team.store(pieces: pieces, in: storage) }
            storage.shrinkToFit()
            return EncodedCorpus(storage: storage, vocabularySize: vocabularySize)
        }
    }

    /// Encodes a file chunk by chunk, calling `handler` with the ids of each chunk in order.
    /// - Throws: whatever `encodeFile(_:)` throws, and whatever `handler` throws.
    public func encodeFile(_ url: URL, chunkHandler handler: ([Int32]) throws -> Void) throws {
        try ChunkReader.withFile(url, kinds: lookup.normalizationTables.kinds) { reader in
            try encode(reader: reader) { try handler(Array($0)) }
        }
    }

    /// Encodes everything readable from `handle` (a file, a pipe, standard input) chunk by chunk.
    /// - Parameters:
    ///   - handle: where to read UTF-8 from, up to its end.
    ///   - name: how to call the stream in error messages.
    ///   - handler: receives the ids of each chunk in order.
    public func encode(
        contentsOf handle: FileHandle, name: String = "<stdin>",
        chunkHandler handler: ([Int32]) throws -> Void
    ) throws {
        let reader = ChunkReader(descriptor: handle.fileDescriptor, path: name, kinds: lookup.normalizationTables.kinds)
        try encode(reader: reader) { try handler(Array($0)) }
    }

    /// Number of threads file encoding uses: the active processor count, at most 8.
    static var defaultWorkers: Int { min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 8) }

    /// Encodes the chunks of `reader` in order, handing each piece's ids to `consume` in order.
    func encode(
        reader: ChunkReader, workers: Int = defaultWorkers,
        _ consume: (UnsafeBufferPointer<Int32>) throws -> Void
    ) throws {
        try encode(reader: reader, workers: workers) { team, pieces in
            for piece in 0..<pieces { try consume(team.outs[piece].elements) }
        }
    }

    /// Encodes the chunks of `reader` in order. Each chunk is split at safe cuts into one piece
    /// per worker; the pieces are encoded in parallel, each worker with its own encoder state;
    /// then `collect` takes the team's outputs (the first `pieces` of them, in order).
    private func encode(
        reader: ChunkReader, workers: Int, collect: (_ team: EncoderTeam, _ pieces: Int) throws -> Void
    ) throws {
        let team = EncoderTeam(
            tokenizer: self, workers: max(workers, 1), source: reader.path, capacity: reader.chunkSize)
        try reader.forEachChunk { chunk, offset, _ in
            let pieces = SafeCuts.split(chunk, parts: team.workers)
            try team.encode(chunk, pieces: pieces, offset: offset)
            try collect(team, pieces.count)
        }
    }
}

/// One encoder and one output buffer per worker thread. Worker `k` only ever touches
/// `encoders[k]` and `outs[k]`, and the chunk is read-only, which is what makes sharing safe.
private final class EncoderTeam: @unchecked Sendable {
    let workers: Int
    let encoders: [StreamEncoder]
    let outs: [IDBuffer]

    init(tokenizer: Tokenizer, workers: Int, source: String, capacity: Int) {
        self.workers = workers
        encoders = (0..<workers).map { _ in StreamEncoder(tokenizer: tokenizer, source: source) }
        outs = (0..<workers).map { _ in IDBuffer(capacity: capacity / workers + 16) }
    }

    /// Appends the outputs of the first `pieces` workers to `storage`, each worker narrowing its
    /// own ids into place in parallel.
    func store(pieces: Int, in storage: CompactIDStorage) {
        var offsets: [Int] = []
        var total = 0
        for piece in 0..<pieces {
            offsets.append(storage.count + total)
            total += outs[piece].count
        }
        storage.reserveAdditional(total)
        let starts = offsets
        if pieces == 1 {
            storage.write(outs[0].elements, at: offsets[0])
        } else {
            DispatchQueue.concurrentPerform(iterations: pieces) { piece in
                storage.write(self.outs[piece].elements, at: starts[piece])
            }
        }
        storage.commit(total)
    }

    /// Encodes `pieces` of `chunk` into `outs[0..<pieces.count]`, in parallel when there are several.
    func encode(_ chunk: UnsafeBufferPointer<UInt8>, pieces: [Range<Int>], offset: Int) throws {
        if pieces.count == 1 {
            outs[0].removeAll()
            try encoders[0].encode(chunk: chunk, offset: offset, into: outs[0])
            return
        }
        let errors = ErrorSlots(count: pieces.count)
        let base = UncheckedPointer(chunk.baseAddress)
        DispatchQueue.concurrentPerform(iterations: pieces.count) { piece in
            let range = pieces[piece]
            self.outs[piece].removeAll()
            do {
                let bytes = UnsafeBufferPointer(start: base.pointer.map { $0 + range.lowerBound }, count: range.count)
                try self.encoders[piece].encode(chunk: bytes, offset: offset + range.lowerBound, into: self.outs[piece])
            } catch {
                errors.set(piece, error)
            }
        }
        if let error = errors.firstError() { throw error }
    }
}

/// A read-only pointer handed to worker threads.
private struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafePointer<UInt8>?

    init(_ pointer: UnsafePointer<UInt8>?) {
        self.pointer = pointer
    }
}

/// Errors of parallel pieces, reported in input order; unknown characters of all pieces are
/// reported together.
private final class ErrorSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [(any Error)?]

    init(count: Int) {
        errors = Array(repeating: nil, count: count)
    }

    func set(_ index: Int, _ error: any Error) {
        lock.lock()
        errors[index] = error
        lock.unlock()
    }

    func firstError() -> (any Error)? {
        guard let first = errors.compactMap({ $0 }).first else { return nil }
        guard case TokenizerError.unknownCharacters = first else { return first }
        var scalars: [Unicode.Scalar] = []
        for case let TokenizerError.unknownCharacters(more)? in errors {
            for scalar in more where !scalars.contains(scalar) { scalars.append(scalar) }
        }
        return TokenizerError.unknownCharacters(scalars)
    }
}

/// Encoding state for one stream of chunks that end at safe cuts.
final class StreamEncoder {
    private let lookup: LookupTables
    private var segmenter: Segmenter
    private var sink: EncodingSink

    init(tokenizer: Tokenizer, source: String?) {
        lookup = tokenizer.lookup
        segmenter = Segmenter(
            tables: tokenizer.lookup.normalizationTables, unit: tokenizer.config.unit,
            invalidUTF8: tokenizer.config.invalidUTF8, source: source, cacheRegions: true)
        sink = EncodingSink(lookup: tokenizer.lookup, unit: tokenizer.config.unit, fallback: tokenizer.config.fallback)
    }

    /// Appends the ids of `chunk` to `out`.
    func encode(chunk: UnsafeBufferPointer<UInt8>, offset: Int, into out: IDBuffer) throws {
        try lookup.fastIDs.withLookup { fast in
            try lookup.asciiIDs.withUnsafeBufferPointer { ascii in
                try segmenter.process(
                    chunk, baseOffset: offset, ascii: ascii.baseAddress!, fast: fast, out: out,
                    sink: &sink)
            }
        }
        if !sink.unknown.isEmpty {
            throw TokenizerError.unknownCharacters(sink.unknown.map { Unicode.Scalar($0) ?? "\u{FFFD}" })
        }
    }
}

/// Maps the units of the slow path to ids, with fallback.
struct EncodingSink: UnitSink {
    let lookup: LookupTables
    let unit: TokenUnit
    let fallback: Fallback
    /// Scalars without a token (fallback `.scalars`), in order of first appearance.
    private(set) var unknown: [UInt32] = []
    private var unknownSet: Set<UInt32> = []
    var unknownCount: Int { unknown.count }
    private var key: [UInt8] = []

    init(lookup: LookupTables, unit: TokenUnit, fallback: Fallback) {
        self.lookup = lookup
        self.unit = unit
        self.fallback = fallback
    }

    mutating func emit(unit scalars: UnsafeBufferPointer<UInt32>, into out: IDBuffer) {
        switch unit {
        case .grapheme:
            if scalars.count == 1 {
                emitScalar(scalars[0], into: out)
                return
            }
            key.removeAll(keepingCapacity: true)
            for scalar in scalars { UTF8Decoding.append(scalar, to: &key) }
            if let id = lookup.clusterIDs[key] {
                out.append(id)
            } else if fallback == .unknown {
                out.append(lookup.unknownID)
            } else {
                for scalar in scalars { emitScalar(scalar, into: out) }
            }
        case .scalar:
            for scalar in scalars { emitScalar(scalar, into: out) }
        case .byte:
            for scalar in scalars {
                key.removeAll(keepingCapacity: true)
                UTF8Decoding.append(scalar, to: &key)
                for byte in key {
                    let id = lookup.byteIDs[Int(byte)]
                    if id >= 0 {
                        out.append(id)
                    } else if fallback == .unknown {
                        out.append(lookup.unknownID)
                    } else {
                        recordUnknown(scalar)
                    }
                }
            }
        }
    }

    private mutating func emitScalar(_ scalar: UInt32, into out: IDBuffer) {
        let id = lookup.scalarIDs[scalar]
        if id >= 0 {
            out.append(id)
            return
        }
        switch fallback {
        case .bytes:
            key.removeAll(keepingCapacity: true)
            UTF8Decoding.append(scalar, to: &key)
            for byte in key { out.append(lookup.byteIDs[Int(byte)]) }
        case .unknown:
            out.append(lookup.unknownID)
        case .scalars:
            recordUnknown(scalar)
        }
    }

    private mutating func recordUnknown(_ scalar: UInt32) {
        if unknownSet.insert(scalar).inserted { unknown.append(scalar) }
    }
}
