import CKernels

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
