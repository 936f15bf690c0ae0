import CKernels
import Foundation

/// Swift spellings of the C kernels, taking `Int` sizes. Only CharNN's layers call these.
enum Kernels {
    @inline(__always)
    static func gemmPacked(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        packed: PackedMatrix, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        #if DEBUG
        precondition(
            packed.k == k && packed.n == n, "packed operand is \(packed.k)x\(packed.n), product needs \(k)x\(n)")
        #endif
        ck_gemm_packed(
            packed.isa, Int32(m), Int32(n), Int32(k), a, Int32(lda), packed.storage.pointer, c, Int32(ldc),
            accumulate ? 1 : 0)
    }

    /// `gemmPacked` with the columns shared by `threads` threads, cut at panel boundaries: each
    /// output element is computed by the same instructions in the same order as by one call
    /// (the kernels accumulate each element over k alone), so the result is bit-identical.
    static func gemmPackedSplit(
        threads: Int, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        packed: PackedMatrix, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        #if DEBUG
        precondition(
            packed.k == k && packed.n == n, "packed operand is \(packed.k)x\(packed.n), product needs \(k)x\(n)")
        #endif
        let panel = Int(ck_gemm_panel_width(packed.isa))
        let panels = (n + panel - 1) / panel
        let parts = min(threads, panels)
        guard parts > 1 else {
            gemmPacked(m: m, n: n, k: k, a: a, lda: lda, packed: packed, c: c, ldc: ldc, accumulate: accumulate)
            return
        }
        let storage = UnsafePointer(packed.storage.pointer)
        let addresses = (a: UInt(bitPattern: a), c: UInt(bitPattern: c), b: UInt(bitPattern: storage))
        parallelFor(parts) { p in
            let n0 = p * panels / parts * panel, n1 = min(n, (p + 1) * panels / parts * panel)
            guard n1 > n0, let a = UnsafePointer<Float>(bitPattern: addresses.a),
                let c = UnsafeMutablePointer<Float>(bitPattern: addresses.c),
                let b = UnsafePointer<Float>(bitPattern: addresses.b)
            else { return }
            ck_gemm_packed(
                packed.isa, Int32(m), Int32(n1 - n0), Int32(k), a, Int32(lda), b + n0 * k, c + n0, Int32(ldc),
                accumulate ? 1 : 0)
        }
    }

    @inline(__always)
    static func fillRows(rows: Int, cols: Int, row: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        ck_fill_rows(Int32(rows), Int32(cols), row, out)
    }

    @inline(__always)
    static func colsumAdd(rows: Int, cols: Int, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        ck_colsum_add(Int32(rows), Int32(cols), x, Int32(cols), out)
    }

    @inline(__always)
    static func mul(_ n: Int, _ x: UnsafePointer<Float>, _ m: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        ck_mul(n, x, m, y)
    }
}

extension Kernels {
    /// Whether the weight gradients go to OpenBLAS's sgemm rather than the packed kernel.
    static var weightGradientsOnOpenBLAS: Bool { BLAS.weightGradientsOnOpenBLAS }

    /// C (m x n) += Aᵀ B over a whole chunk, where A is (k x m, row stride lda) and B (k x n, row
    /// stride ldb): a weight gradient (k is rows x steps). Aᵀ is written out and B packed into
    /// the workspace's scratch, then the packed kernel runs, so that these products, most of a
    /// backward pass's flops, do not depend on the kernel OpenBLAS picked for this CPU.
    static func weightGradient(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, scratch: GradientScratch
    ) {
        guard m > 0, n > 0, k > 0 else { return }
        if weightGradientsOnOpenBLAS {
            BLAS.gemm(
                transA: true, transB: false, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: 1, c: c, ldc: ldc)
            return
        }
        let isa = ck_isa()
        precondition(
            m * k <= scratch.transposed.count && ck_packed_size(isa, Int32(k), Int32(n)) <= scratch.packed.count,
            "weight-gradient scratch too small")
        ck_transpose(Int32(k), Int32(m), a, lda, scratch.transposed.pointer)
        ck_pack(isa, Int32(k), Int32(n), b, ldb, 1, scratch.packed.pointer)
        ck_gemm_packed(
            isa, Int32(m), Int32(n), Int32(k), scratch.transposed.pointer, Int32(k), scratch.packed.pointer, c,
            Int32(ldc), 1)
    }
}

/// Room for one weight-gradient product's transposed left operand and packed right operand.
struct GradientScratch {
    let transposed: FloatBuffer
    let packed: FloatBuffer

    init(config: NetworkConfig, rows: Int, steps: Int) {
        let k = rows * steps
        let m = max(config.vocabularySize, config.gateWidth)
        let n = max(config.hiddenSize, config.embeddingSize ?? 0)
        transposed = FloatBuffer(count: m * k)
        // The widest panel (AVX-512's) needs the most room.
        packed = FloatBuffer(count: ck_packed_size(Int32(CK_ISA_AVX512), Int32(k), Int32(n)))
    }
}

/// A K x N right-hand operand packed for the product kernel of one instruction set.
struct PackedMatrix {
    let k: Int
    let n: Int
    let isa: Int32
    let storage: FloatBuffer

    /// Packs the K x N matrix whose element (k, n) is at `base[k * rowStride + n * colStride]`.
    init(k: Int, n: Int, _ base: UnsafePointer<Float>, rowStride: Int, colStride: Int, isa: Int32 = ck_isa()) {
        self.k = k
        self.n = n
        self.isa = isa
        storage = FloatBuffer(count: ck_packed_size(isa, Int32(k), Int32(n)))
        ck_pack(isa, Int32(k), Int32(n), base, rowStride, colStride, storage.pointer)
    }
}
