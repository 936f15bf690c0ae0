import CBLAS
import Foundation
import Dispatch
import CKernels

/// The linear-algebra back end: OpenBLAS for the large products, charlm's own packed kernels
/// for the small per-time-step ones, and the report of which kernels run.
public enum BLAS {
    /// Which kernels run on this machine.
    public struct KernelInfo: Sendable, Codable, Equatable {
        /// OpenBLAS's kernel table in use (for example "SkylakeX"), or nil with another BLAS.
        public var openBLASCore: String?
        /// The table OpenBLAS chose by itself at load time.
        public var openBLASInitialCore: String?
        /// How the table was chosen: "auto" (OpenBLAS's own choice), "reselected" (charlm
        /// replaced a generic fallback), "OPENBLAS_CORETYPE" (the user's), or "fixed" (a BLAS
        /// that cannot re-select).
        public var selection: String
        /// Instruction set of charlm's own kernels ("avx512", "avx2" or "generic").
        public var kernelISA: String
        /// Which kernel computes the weight gradients: "openblas" or "packed" (charlm's).
        public var weightGradients: String = "packed"

        /// One line for `charlm info` and `charlm bench`.
        public var summary: String {
            var core = openBLASCore ?? "unknown"
            switch selection {
            case "reselected": core += " (charlm replaced OpenBLAS's generic fallback \(openBLASInitialCore ?? "?"))"
            case "OPENBLAS_CORETYPE": core += " (set by OPENBLAS_CORETYPE)"
            default: break
            }
            return "OpenBLAS \(core); charlm kernels \(kernelISA); weight gradients on "
                + (weightGradients == "openblas" ? "OpenBLAS" : "charlm's kernel")
        }
    }

    private static let setup: KernelInfo = {
        // The kernel table was chosen while the program loaded (blas_select.c).
        ck_blas_use_caller_thread_only()
        return currentInfo(
            initialCore: ck_blas_core_at_load().map { String(cString: $0) }, outcome: ck_blas_selection())
    }()

    private static func currentInfo(initialCore: String?, outcome: Int32) -> KernelInfo {
        let selection: String
        switch Int(outcome) {
        case Int(CK_BLAS_RESELECTED): selection = "reselected"
        case Int(CK_BLAS_USER_CHOICE): selection = "OPENBLAS_CORETYPE"
        case Int(CK_BLAS_UNAVAILABLE): selection = "fixed"
        default: selection = "auto"
        }
        let core = ck_blas_core_name().map { String(cString: $0) }
        return KernelInfo(
            openBLASCore: core,
            openBLASInitialCore: initialCore,
            selection: selection,
            kernelISA: String(cString: ck_isa_name(ck_isa())),
            weightGradients: weightGradientsChoice(core: core) ? "openblas" : "packed"
        )
    }

    /// OpenBLAS kernel tables that use AVX2 with FMA, and those that use AVX-512.
    static let avx2Cores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]
    static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

    /// Whether OpenBLAS computes the weight gradients: only when its kernel table uses the same
    /// vector width as charlm's kernels (there its sgemm measures 10-35% faster than the packed
    /// kernel on large products); with a narrower table (Haswell on an AVX-512 CPU, or a
    /// generic one such as Prescott, 3-5x slower) charlm's packed kernel does. The rule depends
    /// only on names, never on a timing, so that a resumed run makes the same choice.
    /// `CHARLM_WEIGHT_GRADIENTS=openblas|packed` overrides it (for comparisons).
    private static func weightGradientsChoice(core: String?) -> Bool {
        switch getenv("CHARLM_WEIGHT_GRADIENTS").map({ String(cString: $0) }) {
        case "openblas": return true
        case "packed": return false
        default: break
        }
        guard let core = core?.lowercased() else { return false }
        switch ck_isa() {
        case Int32(CK_ISA_AVX512): return avx512Cores.contains(core)
        case Int32(CK_ISA_AVX2): return avx2Cores.contains(core)
        default: return true
        }
    }

    /// Whether the weight gradients go to OpenBLAS (see `KernelInfo.weightGradients`).
    /// A route forced on the calling thread (`ck_force_weight_gradients`, for tests) wins.
    static var weightGradientsOnOpenBLAS: Bool {
        let forced = ck_weight_gradients_forced()
        return forced >= 0 ? forced == 1 : setup.weightGradients == "openblas"
    }

    /// The kernels in use. The first call (made by everything in CharNN that computes) moves
    /// OpenBLAS off a generic fallback kernel and pins it to one thread per caller.
    public static var info: KernelInfo { setup }

    @inline(__always)
    static func ensureReady() { _ = setup }

    /// Does the start-up work now (kernel choice, OpenBLAS's idle thread pool stopped), so
    /// that a program can do it first thing instead of at its first product.
    public static func prepare() { _ = setup }

    // MARK: - Products

    /// C (m x n) = alpha * op(A) * op(B) + beta * C, row-major, one thread.
    @inline(__always)
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc)
        )
    }
}

extension BLAS {
    /// Single-thread GFLOP/s of OpenBLAS's sgemm and of the packed kernel on a 1024^3 product
    /// (best of 5), the reference for "% of peak".
    public static func productPeak() -> (openBLAS: Double, packed: Double) {
        ensureReady()
        let n = 1024
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        for i in 0..<(n * n) {
            a.pointer[i] = Float(i % 7) * 0.01
            b.pointer[i] = Float(i % 5) * 0.01
        }
        let packed = PackedMatrix(k: n, n: n, b.pointer, rowStride: 1, colStride: n)
        var bestBLAS = Double.infinity, bestPacked = Double.infinity
        for _ in 0..<5 {
            var start = DispatchTime.now().uptimeNanoseconds
            gemm(
                transA: false, transB: true, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, beta: 0,
                c: c.pointer, ldc: n)
            bestBLAS = min(bestBLAS, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            start = DispatchTime.now().uptimeNanoseconds
            Kernels.gemmPacked(
                m: n, n: n, k: n, a: a.pointer, lda: n, packed: packed, c: c.pointer, ldc: n, accumulate: false)
            bestPacked = min(bestPacked, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let flops = 2 * Double(n * n * n)
        return (flops / bestBLAS / 1e9, flops / bestPacked / 1e9)
    }
}
