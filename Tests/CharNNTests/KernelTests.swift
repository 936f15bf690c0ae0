import CBLAS
import CKernels
import Foundation
import Testing
@testable import CharNN

/// The C kernels against straightforward double-precision references, on every instruction
/// set this CPU supports.
@Suite(.serialized) struct KernelTests {
    static var instructionSets: [Int32] { Array(0...ck_isa_detected()) }

    /// The packed product against a float64 reference (OpenBLAS's dgemm), within the error bound
    /// of float32 accumulation: a sum of K products (plus C when accumulating) computed in
    /// float32 is off by at most (K + 1)·u·Σ|terms|, u = 2⁻²⁴. The shapes include the default
    /// training step's input product (384 → 1536) on 200 rows, the unblocked row-chunk path
    /// (M·K > 32768: 130 x 33 x 1000, 5 chunks) and, on AVX2, the blocked path with three
    /// blocks of rows (401 rows) and with several blocks of k (K = 520, 1100, 1300, 2000).
    /// The step's 1250 rows and the 1536 → 384 backward product take the same paths at several
    /// times the cost of a debug or sanitizer run, which this test bounds.
    @Test(arguments: KernelTests.instructionSets)
    func packedProductMatchesReference(isa: Int32) {
        #expect(ck_force_isa(isa) == isa)
        defer { ck_force_isa(-1) }
        var rng = SeededGenerator(seed: 42)
        var shapes: [(Int, Int, Int)] = [
            (1, 1, 1), (25, 1024, 256), (25, 256, 1024), (300, 70, 40), (1, 65, 7),
            (200, 1536, 384), (401, 140, 520), (5, 1030, 1100), (7, 1024, 1300), (300, 200, 300),
            (60, 50, 2000), (130, 33, 1000),
        ]
        for _ in 0..<60 {
            shapes.append((Int(rng.next() % 40) + 1, Int(rng.next() % 90) + 1, Int(rng.next() % 50) + 1))
        }
        var worstRatio = 0.0
        for (m, n, k) in shapes {
            let a = (0..<(m * k)).map { _ in rng.uniform(-1, 1) }
            // B given as W (n x k), as for h * W^T.
            let w = (0..<(n * k)).map { _ in rng.uniform(-1, 1) }
            let packed = w.withUnsafeBufferPointer {
                PackedMatrix(k: k, n: n, $0.baseAddress!, rowStride: 1, colStride: k, isa: isa)
            }
            let initial = (0..<(m * n)).map { _ in rng.uniform(-1, 1) }
            let exact = referenceProduct(m: m, n: n, k: k, a.map(Double.init), w.map(Double.init))
            let magnitude = referenceProduct(m: m, n: n, k: k, a.map { abs(Double($0)) }, w.map { abs(Double($0)) })
            for accumulate in [false, true] {
                var c = initial
                a.withUnsafeBufferPointer { ap in
                    c.withUnsafeMutableBufferPointer { cp in
                        Kernels.gemmPacked(
                            m: m, n: n, k: k, a: ap.baseAddress!, lda: k, packed: packed, c: cp.baseAddress!, ldc: n,
                            accumulate: accumulate)
                    }
                }
                let u = 0x1p-24
                var failures = 0
                for i in 0..<(m * n) {
                    let c0 = accumulate ? Double(initial[i]) : 0
                    let bound = Double(k + 1) * u * (abs(c0) + magnitude[i]) + 1e-30
                    let ratio = abs(exact[i] + c0 - Double(c[i])) / bound
                    worstRatio = max(worstRatio, ratio)
                    if !(ratio <= 1) { failures += 1 }
                }
                #expect(
                    failures == 0,
                    "isa \(isa) m \(m) n \(n) k \(k) accumulate \(accumulate): \(failures) outside the bound"
                )
            }
        }
        print("isa \(isa): worst error \(String(format: "%.3f", worstRatio)) of the float32 accumulation bound")
    }

    /// The order of the FMA kernels' arithmetic, exactly: each element of C is one chain of
    /// fused multiply-adds over k from zero, to which C is added when accumulating, except on
    /// the blocked path for long and tall products (`ck_gemm_blocked`), where an accumulating
    /// chain starts from C. Checked bit for bit with A and C inside wider arrays, every shape
    /// on both paths (a last block of k shorter or longer than the others, more rows than one
    /// block of rows, partial panels), since the split over threads relies on each element
    /// depending on its row and column alone.
    @Test(arguments: KernelTests.instructionSets.filter { $0 != CK_ISA_GENERIC })
    func fusedKernelsFollowOneChainPerElement(isa: Int32) {
        #expect(ck_force_isa(isa) == isa)
        defer { ck_force_isa(-1) }
        var rng = SeededGenerator(seed: 7)
        let shapes = [
            (1, 16, 1025), (7, 17, 1300), (3, 1030, 1300), (193, 130, 700), (200, 130, 300), (6, 33, 700),
            (97, 40, 1600),
        ]
        // The rule's shapes on each path are too large for a Swift reference chain in a debug
        // build, so every shape goes both ways, forced.
        for forced: Int32 in [0, 1] {
            ck_force_blocked(forced)
            defer { ck_force_blocked(-1) }
            checkChains(isa: isa, shapes: shapes, blocked: forced == 1, rng: &rng)
        }
    }

    private func checkChains(isa: Int32, shapes: [(Int, Int, Int)], blocked: Bool, rng: inout SeededGenerator) {
        for (m, n, k) in shapes {
            #expect((ck_gemm_blocked(isa, Int32(m), Int32(n), Int32(k)) != 0) == blocked)
            let lda = k + 3, ldc = n + 2
            let a = (0..<(m * lda)).map { _ in rng.uniform(-1, 1) }
            let w = (0..<(n * k)).map { _ in rng.uniform(-1, 1) }
            let packed = w.withUnsafeBufferPointer {
                PackedMatrix(k: k, n: n, $0.baseAddress!, rowStride: 1, colStride: k, isa: isa)
            }
            let initial = (0..<(m * ldc)).map { _ in rng.uniform(-1, 1) }
            for accumulate in [false, true] {
                var c = initial
                a.withUnsafeBufferPointer { ap in
                    c.withUnsafeMutableBufferPointer { cp in
                        Kernels.gemmPacked(
                            m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, packed: packed, c: cp.baseAddress!,
                            ldc: ldc, accumulate: accumulate)
                    }
                }
                var mismatches = 0
                for i in 0..<m {
                    for j in 0..<n {
                        let c0 = initial[i * ldc + j]
                        var chain: Float = accumulate && blocked ? c0 : 0
                        for p in 0..<k { chain = chain.addingProduct(a[i * lda + p], w[j * k + p]) }
                        let expected = accumulate && !blocked ? c0 + chain : chain
                        if c[i * ldc + j].bitPattern != expected.bitPattern { mismatches += 1 }
                    }
                    // Columns past n are left alone.
                    for j in n..<ldc where c[i * ldc + j].bitPattern != initial[i * ldc + j].bitPattern {
                        mismatches += 1
                    }
                }
                #expect(
                    mismatches == 0, "isa \(isa) m \(m) n \(n) k \(k) accumulate \(accumulate) blocked \(blocked)")
            }
        }
    }

    /// C = A (m x k) * W^T (W: n x k), in float64 through OpenBLAS's dgemm.
    func referenceProduct(m: Int, n: Int, k: Int, _ a: [Double], _ w: [Double]) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        cblas_dgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), w, Int32(k), 0, &c,
            Int32(n))
        return c
    }

    @Test(arguments: KernelTests.instructionSets)
    func vectorMathIsAccurate(isa: Int32) {
        #expect(ck_force_isa(isa) == isa)
        defer { ck_force_isa(-1) }
        var xs: [Float] = stride(from: -30, through: 30, by: 0.001).map { Float($0) }
        xs += [0, -0, 1e-8, -1e-8, 0.625, -0.625, 0.62499, 88, -87, 100, -100, 1e30, -1e30, .infinity, -.infinity]
        var y = [Float](repeating: 0, count: xs.count)
        ck_tanh(xs.count, xs, &y)
        for (x, v) in zip(xs, y) {
            let ref = tanh(Double(x))
            #expect(abs(Double(v) - ref) <= 3e-7 * abs(ref) + 1e-38, "tanh(\(x)) = \(v), expected \(ref)")
        }
        ck_sigmoid(xs.count, xs, &y)
        for (x, v) in zip(xs, y) {
            let ref = 1 / (1 + exp(-Double(x)))
            #expect(abs(Double(v) - ref) <= 3e-7 * abs(ref) + 1e-37, "sigmoid(\(x)) = \(v), expected \(ref)")
        }
        let exps = xs.filter { $0 > -87 && $0 < 88 }
        var e = [Float](repeating: 0, count: exps.count)
        ck_exp(exps.count, exps, &e)
        for (x, v) in zip(exps, e) {
            let ref = exp(Double(x))
            #expect(abs(Double(v) - ref) <= 3e-7 * ref, "exp(\(x)) = \(v), expected \(ref)")
        }
        let nan: [Float] = [.nan]
        var out: [Float] = [0]
        ck_tanh(1, nan, &out)
        #expect(out[0].isNaN, "tanh(NaN) must be NaN")
        ck_sigmoid(1, nan, &out)
        #expect(out[0].isNaN, "sigmoid(NaN) must be NaN")
    }

    @Test func softmaxCrossEntropyMatchesReference() {
        var rng = SeededGenerator(seed: 3)
        let rows = 7, v = 33
        let logits = (0..<(rows * v)).map { _ in rng.uniform(-8, 8) }
        let targets = (0..<rows).map { _ in Int32(rng.next() % UInt64(v)) }
        var work = logits
        let total = ck_softmax_xent(Int32(rows), Int32(v), &work, targets, 0.5)
        var expected = 0.0
        for r in 0..<rows {
            let row = logits[(r * v)..<(r * v + v)].map(Double.init)
            let m = row.max()!
            let s = row.map { exp($0 - m) }.reduce(0, +)
            expected += m + log(s) - row[Int(targets[r])]
            for j in 0..<v {
                let g = 0.5 * (exp(row[j] - m) / s - (j == Int(targets[r]) ? 1 : 0))
                #expect(abs(Double(work[r * v + j]) - g) < 1e-6)
            }
        }
        #expect(abs(total - expected) < 1e-5 * expected)
    }

    @Test func dropoutMaskHasTheRightRateAndScale() {
        let n = 100_000
        var mask = [Float](repeating: -1, count: n)
        ck_dropout_mask(n, 1234, 0, 0.3, &mask)
        let kept = mask.filter { $0 != 0 }
        #expect(Set(kept) == [Float(1 / 0.7)])
        let rate = Double(n - kept.count) / Double(n)
        #expect(abs(rate - 0.3) < 0.01, "dropped \(rate)")
        var shifted = [Float](repeating: -1, count: 10)
        ck_dropout_mask(10, 1234, 500, 0.3, &shifted)
        #expect(Array(mask[500..<510]) == shifted, "a draw depends only on key and position")
    }
}
