import CUTF8Proc

// The encoder's hot loop. The pipeline it belongs to — safe cuts, per-scalar tables, the fast
// path, slow regions and their cache, the worker team — and the invariant each piece keeps are
// described in one place: CharTokenizer.docc/Pipeline.md.

/// Receives the units completed by the exact (slow) path of `Segmenter`.
protocol UnitSink {
    /// One complete unit as normalized scalars: a grapheme cluster for `.grapheme`, a single
    /// scalar for `.scalar` and `.byte`. The sink appends its payloads to `out`.
    mutating func emit(unit: UnsafeBufferPointer<UInt32>, into out: IDBuffer)
    /// Number of problems (characters without a token) recorded so far; regions that add one
    /// are not cached.
    var unknownCount: Int { get }
}

extension UnitSink {
    var unknownCount: Int { 0 }
}

/// Maps a raw scalar to the payload the fast path writes, or -1 when the scalar needs the slow path.
protocol FastLookup {
    func callAsFunction(_ scalar: UInt32) -> Int32
}

extension PagedLookup: FastLookup where Value == Int32 {}

/// Fast payloads for normalization-only work: the scalar itself when normalization leaves it
/// unchanged and it is fast for the unit, else -1.
struct IdentityLookup: FastLookup {
    let kinds: PagedLookup<UInt8>
    let mask: UInt8

    @inline(__always)
    func callAsFunction(_ scalar: UInt32) -> Int32 {
        kinds(scalar) & mask == mask ? Int32(bitPattern: scalar) : -1
    }
}

/// Turns UTF-8 into units: newline normalization, Unicode normalization and grapheme
/// segmentation in one pass, producing the same units as the reference pipeline
/// (the tests' `ReferencePipeline`): utf8proc over the whole text, then utf8proc's grapheme breaks.
///
/// Fast path: a scalar marked fast in the lookup (see `NormalizationTables.Kind`) is written
/// straight to the output as its payload. Between two fast scalars there is always both a
/// normalization boundary and a grapheme break, so the payload is final as soon as the next
/// scalar is fast too. When a scalar is not fast, the previous payload is taken back and a *slow
/// region* begins there; it ends before the first fast scalar that follows another fast scalar
/// (or at the end of the chunk). A region starts and ends in a clean state, so its output
/// depends on its bytes alone: it is looked up in a `RegionCache`, and otherwise run through the
/// exact path (`SlowPath`: one normalization segment and one grapheme cluster at a time, utf8proc
/// for both) and remembered.
///
/// `process` must be called with chunks that end where `SafeCuts` allows, or at the end of input.
struct Segmenter {
    let unit: TokenUnit
    let normalizeNewlines: Bool
    let replaceInvalid: Bool
    let source: String?
    private var slow: SlowPath
    private var cache: RegionCache?

    /// - Parameter cacheRegions: memoize slow regions; only for sinks whose output is all in `out`.
    init(
        tables: NormalizationTables, unit: TokenUnit, invalidUTF8: InvalidUTF8Policy, source: String?,
        cacheRegions: Bool = false
    ) {
        self.unit = unit
        self.normalizeNewlines = tables.normalization.normalizeNewlines
        self.replaceInvalid = invalidUTF8 == .replace
        self.source = source
        self.slow = SlowPath(tables: tables, unit: unit)
        self.cache = cacheRegions ? RegionCache() : nil
    }

    /// Segments one chunk.
    /// - Parameters:
    ///   - bytes: UTF-8 ending at a safe cut or at the end of input.
    ///   - baseOffset: offset of `bytes` in the whole input, for error messages.
    ///   - ascii: 128 fast payloads for ASCII bytes, -1 for CR when newlines are normalized.
    ///   - fast: fast payloads for all scalars.
    ///   - out: receives the payloads.
    ///   - sink: receives the units of the slow path.
    /// - Throws: `TokenizerError.invalidUTF8` unless invalid bytes are replaced.
    mutating func process<Fast: FastLookup, Sink: UnitSink>(
        _ bytes: UnsafeBufferPointer<UInt8>, baseOffset: Int, ascii: UnsafePointer<Int32>, fast: Fast,
        out: IDBuffer, sink: inout Sink
    ) throws {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return }
        let n = bytes.count
        var i = 0
        // Start of the last fast scalar when its payload is the last one written, else -1.
        var lastFastStart = -1
        out.reserveFree(n + 1)
        var dst = out.base
        var o = out.count
        while i < n {
            // Tight ASCII loop: one table load and one store per byte.
            let runStart = i
            while i < n {
                let b = p[i]
                if b >= 0x80 { break }
                let payload = ascii[Int(b)]
                if payload < 0 { break }
                dst[o] = payload
                o &+= 1
                i &+= 1
            }
            if i != runStart { lastFastStart = i - 1 }
            if i >= n { break }

            let start = i
            let next: UInt32?
            do {
                next = try nextScalar(p, &i, n, baseOffset: baseOffset)
            } catch {
                out.count = o
                throw error
            }
            guard let scalar = next else { continue }
            let payload = fast(scalar)
            if payload >= 0 {
                dst[o] = payload
                o &+= 1
                lastFastStart = start
                continue
            }

            // A slow region, from the previous fast scalar (taken back) to a clean point.
            var regionStart = start
            if lastFastStart >= 0 {
                o -= 1
                regionStart = lastFastStart
                lastFastStart = -1
            }
            let regionEnd = regionEnd(p, from: i, end: n, fast: fast)
            out.count = o
            try processRegion(
                p + regionStart, count: regionEnd - regionStart, baseOffset: baseOffset + regionStart,
                out: out, sink: &sink)
            out.reserveFree(n - regionEnd + 1)
            dst = out.base
            o = out.count
            i = regionEnd
        }
        out.count = o
    }

    /// The end of the slow region whose first slow scalar ends at `index`: the start of the first
    /// fast scalar preceded by a fast scalar, or an invalid byte, or the end of the chunk.
    @inline(__always)
    private func regionEnd<Fast: FastLookup>(_ p: UnsafePointer<UInt8>, from index: Int, end n: Int, fast: Fast) -> Int
    {
        var j = index
        var previousFast = false
        while j < n {
            let start = j
            let scalar: UInt32
            let b0 = p[j]
            if b0 < 0x80 {
                j += 1
                scalar = b0 == 0x0D && normalizeNewlines ? 0x0A : UInt32(b0)
                // CRLF is one LF: never end a region between its CR and LF.
                if b0 == 0x0D && normalizeNewlines && j < n && p[j] == 0x0A { j += 1 }
            } else {
                let step = UTF8Decoding.decode(p, at: j, end: n)
                if step.status != .scalar && !replaceInvalid { return start }
                j += step.length
                scalar = step.status == .scalar ? step.scalar : 0xFFFD
            }
            let isFast = fast(scalar) >= 0
            if isFast && previousFast { return start }
            previousFast = isFast
        }
        return n
    }

    /// Decodes the scalar at `i` and moves past it, turning CR (and CRLF) into LF when newlines
    /// are normalized. Returns nil for the CR of a CRLF, which the LF that follows stands for.
    /// - Throws: `TokenizerError.invalidUTF8` unless invalid bytes are replaced by U+FFFD.
    @inline(__always)
    private func nextScalar(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int, baseOffset: Int) throws -> UInt32? {
        let start = i
        let b0 = p[i]
        if b0 < 0x80 {
            i += 1
            guard b0 == 0x0D && normalizeNewlines else { return UInt32(b0) }
            return i < n && p[i] == 0x0A ? nil : 0x0A
        }
        let step = UTF8Decoding.decode(p, at: i, end: n)
        i += step.length
        if step.status == .scalar { return step.scalar }
        if replaceInvalid { return 0xFFFD }
        throw TokenizerError.invalidUTF8(offset: baseOffset + start, source: source)
    }

    /// Runs a region through the exact path (or the cache) and finishes it.
    private mutating func processRegion<Sink: UnitSink>(
        _ p: UnsafePointer<UInt8>, count n: Int, baseOffset: Int, out: IDBuffer, sink: inout Sink
    ) throws {
        let cacheable = cache != nil && n <= RegionCache.maxKeyLength
        let hash = cacheable ? RegionCache.hash(p, n) : 0
        if cacheable, cache!.lookup(p, n, hash: hash, into: out) { return }
        let first = out.count
        var i = 0
        while i < n {
            guard let scalar = try nextScalar(p, &i, n, baseOffset: baseOffset) else { continue }
            slow.push(scalar, sink: &sink, out: out)
        }
        slow.finish(sink: &sink, out: out)
        if cacheable && sink.unknownCount == 0 {
            cache!.insert(p, n, hash: hash, ids: UnsafeBufferPointer(start: out.base + first, count: out.count - first))
        }
    }
}

/// The exact path: one pending normalization segment and one pending grapheme cluster.
private struct SlowPath {
    let unit: TokenUnit
    let kinds: PagedTable<UInt8>
    let mapped: [UInt32: UInt32]
    var normalizer: SegmentNormalizer
    var segment = ScalarBuffer()
    var normalized: [UInt32] = []
    var cluster = ScalarBuffer()
    var breakState: Int32 = 0

    init(tables: NormalizationTables, unit: TokenUnit) {
        self.unit = unit
        self.kinds = tables.kinds
        self.mapped = tables.mapped
        self.normalizer = SegmentNormalizer(tables.normalization)
    }

    mutating func push<Sink: UnitSink>(_ scalar: UInt32, sink: inout Sink, out: IDBuffer) {
        if kinds[scalar] & NormalizationTables.Kind.boundaryBefore != 0 {
            flushSegment(sink: &sink, out: out)
        }
        segment.append(scalar)
    }

    /// Flushes everything; the next scalar starts a new grapheme with fresh break state.
    mutating func finish<Sink: UnitSink>(sink: inout Sink, out: IDBuffer) {
        flushSegment(sink: &sink, out: out)
        if !cluster.isEmpty {
            emitCluster(sink: &sink, out: out)
        }
        breakState = 0
    }

    private mutating func flushSegment<Sink: UnitSink>(sink: inout Sink, out: IDBuffer) {
        if segment.isEmpty { return }
        if segment.count == 1, let single = singleNormalization(of: segment.first) {
            feed(single, sink: &sink, out: out)
        } else {
            normalized.removeAll(keepingCapacity: true)
            segment.withBuffer { normalizer.normalize($0, into: &normalized) }
            for index in normalized.indices {
                feed(normalized[index], sink: &sink, out: out)
            }
        }
        segment.removeAll()
    }

    private func singleNormalization(of scalar: UInt32) -> UInt32? {
        let kind = kinds[scalar]
        if kind & NormalizationTables.Kind.single == 0 { return nil }
        return kind & NormalizationTables.Kind.identity != 0 ? scalar : mapped[scalar]
    }

    private mutating func feed<Sink: UnitSink>(_ scalar: UInt32, sink: inout Sink, out: IDBuffer) {
        guard unit == .grapheme else {
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 1) { one in
                one[0] = scalar
                sink.emit(unit: UnsafeBufferPointer(one), into: out)
            }
            return
        }
        if !cluster.isEmpty {
            if utf8proc_grapheme_break_stateful(Int32(bitPattern: cluster.last), Int32(bitPattern: scalar), &breakState)
            {
                emitCluster(sink: &sink, out: out)
            }
        }
        cluster.append(scalar)
    }

    private mutating func emitCluster<Sink: UnitSink>(sink: inout Sink, out: IDBuffer) {
        cluster.withBuffer { sink.emit(unit: $0, into: out) }
        cluster.removeAll()
    }
}

/// A reusable list of scalars: clearing keeps the storage and costs nothing.
struct ScalarBuffer {
    private var storage = [UInt32](repeating: 0, count: 16)
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }
    /// The first scalar; only valid when not empty.
    var first: UInt32 { storage[0] }
    /// The last scalar; only valid when not empty.
    var last: UInt32 { storage[count - 1] }

    mutating func append(_ scalar: UInt32) {
        if count == storage.count {
            storage.append(contentsOf: repeatElement(0, count: storage.count))
        }
        storage[count] = scalar
        count += 1
    }

    mutating func removeAll() {
        count = 0
    }

    func withBuffer<R>(_ body: (UnsafeBufferPointer<UInt32>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<count])) }
    }
}
