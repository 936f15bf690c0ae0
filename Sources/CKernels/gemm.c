// Small matrix products against a pre-packed right-hand operand.
//
// The recurrent product of an RNN multiplies a small batch of hidden states by the same
// weight matrix at every time step. A general BLAS re-packs that matrix on every call; here it
// is packed once per optimizer step into column panels of `ck_gemm_panel_width(isa)` columns,
// each stored k-major and zero-padded, and the kernels below stream the panels straight into
// register tiles:
//
//     C (M x N) (+)= A (M x K, row stride lda) * B (K x N, packed)
//
// Three implementations share one packed layout per instruction set: AVX-512 (panel 32),
// AVX2+FMA (panel 16) and portable C (panel 16). The caller names the instruction set when it
// packs and passes the same one to every product with that packed operand, so a packed
// matrix stays valid on every thread; `ck_isa()` gives the best one (or the one forced for
// tests on the calling thread with `ck_force_isa`).

#include "CKernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CK_X86 1
#include <immintrin.h>
#endif

// MARK: - Instruction-set selection

static _Thread_local int ck_isa_forced = -1;
static _Thread_local int ck_weight_gradients_route = -1;

void ck_force_weight_gradients(int openBLAS) { ck_weight_gradients_route = openBLAS < 0 ? -1 : openBLAS != 0; }
int ck_weight_gradients_forced(void) { return ck_weight_gradients_route; }

// The AVX-512 and AVX2 variants are compiled for the x86-64-v4 and x86-64-v3 levels (see
// vecmath.h), so a CPU must have every feature of the level, not just the headline one: an
// AVX-512 CPU without BW/DQ/VL, or an AVX2 CPU without BMI2 or MOVBE, would otherwise get
// instructions it cannot run. The level checks include the operating system's support for
// the wider registers (XGETBV).
static int ck_isa_of_this_cpu(void) {
#if CK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return CK_ISA_AVX512;
    if (__builtin_cpu_supports("x86-64-v3")) return CK_ISA_AVX2;
#endif
    return CK_ISA_GENERIC;
}

// Every kernel call asks for the instruction set, so the answer is kept (a race between two
// first callers only stores the same value twice).
static int ck_isa_cached = -1;

int ck_isa_detected(void) {
    int isa = __atomic_load_n(&ck_isa_cached, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = ck_isa_of_this_cpu();
        __atomic_store_n(&ck_isa_cached, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

int ck_isa(void) {
    if (ck_isa_forced >= 0) return ck_isa_forced;
    return ck_isa_detected();
}

int ck_isa_forced_on_thread(void) {
    return ck_isa_forced;
}

int ck_force_isa(int isa) {
    int detected = ck_isa_detected();
    if (isa < 0 || isa > detected) ck_isa_forced = -1;
    else ck_isa_forced = isa;
    return ck_isa();
}

const char *ck_isa_name(int isa) {
    switch (isa) {
    case CK_ISA_AVX512: return "avx512";
    case CK_ISA_AVX2: return "avx2";
    default: return "generic";
    }
}

int ck_gemm_panel_width(int isa) {
    return isa == CK_ISA_AVX512 ? 32 : 16;
}

// MARK: - Packing

size_t ck_packed_size(int isa, int K, int N) {
    int nr = ck_gemm_panel_width(isa);
    size_t panels = (size_t)((N + nr - 1) / nr);
    return panels * (size_t)K * (size_t)nr;
}

void ck_pack(int isa, int K, int N, const float *B, long rowStride, long colStride, float *packed) {
    int nr = ck_gemm_panel_width(isa);
    for (int n0 = 0; n0 < N; n0 += nr) {
        int cols = N - n0 < nr ? N - n0 : nr;
        float *panel = packed + (size_t)n0 * K;
        if (colStride == 1) {
            for (int k = 0; k < K; k++) {
                float *dst = panel + (size_t)k * nr;
                memcpy(dst, B + (long)k * rowStride + n0, sizeof(float) * (size_t)cols);
                for (int j = cols; j < nr; j++) dst[j] = 0.0f;
            }
            continue;
        }
        // A transposed source: copy 16 x cols tiles so that both sides stay in cache.
        for (int k0 = 0; k0 < K; k0 += 16) {
            int kEnd = K - k0 < 16 ? K : k0 + 16;
            for (int j = 0; j < nr; j++) {
                if (j < cols) {
                    const float *src = B + (long)(n0 + j) * colStride;
                    for (int k = k0; k < kEnd; k++) panel[(size_t)k * nr + j] = src[(long)k * rowStride];
                } else {
                    for (int k = k0; k < kEnd; k++) panel[(size_t)k * nr + j] = 0.0f;
                }
            }
        }
    }
}

// Splits M rows into blocks of at most `mrMax` rows of nearly equal size.
static inline void ck_row_blocks(int M, int mrMax, int *count, int *base, int *extra) {
    int blocks = (M + mrMax - 1) / mrMax;
    *count = blocks;
    *base = M / blocks;
    *extra = M % blocks;
}

// Rows of A processed against every panel before moving on, so that they stay in L2
// (about 128 KiB of A at a time) while each panel streams through L1.
static inline int ck_row_chunk(int M, int K) {
    int rows = (int)((128 * 1024 / sizeof(float)) / (size_t)(K > 0 ? K : 1));
    if (rows < 24) rows = 24;
    return rows >= M ? M : rows;
}

// Products that go block by block of k (see "Long and tall products" below): values of k
// per block and rows of A per block of rows, per instruction set.
#define CK512_KC 512
#define CK512_MC 192
#define CK256_KC 256
#define CK256_MC 192

static _Thread_local int ck_blocked_forced = -1;

void ck_force_blocked(int blocked) { ck_blocked_forced = blocked < 0 ? -1 : blocked != 0; }

int ck_gemm_blocked(int isa, int M, int N, int K) {
    if (ck_blocked_forced >= 0 && (isa == CK_ISA_AVX512 || isa == CK_ISA_AVX2)) return ck_blocked_forced;
    switch (isa) {
    case CK_ISA_AVX512: return M >= CK512_MC && (long)K * N >= 2L * 1024 * 1024;
    case CK_ISA_AVX2: return K >= 1024 || (M >= CK256_MC && N >= 128);
    default: return 0;
    }
}

// MARK: - Portable kernel (panel 16)

static void ck_gemm_generic(int M, int N, int K, const float *A, int lda,
                            const float *packed, float *C, int ldc, int accumulate) {
    enum { NR = 16, MR = 4 };
    for (int n0 = 0; n0 < N; n0 += NR) {
        const float *bp = packed + (size_t)n0 * K;
        int cols = N - n0 < NR ? N - n0 : NR;
        for (int m0 = 0; m0 < M; m0 += MR) {
            int rows = M - m0 < MR ? M - m0 : MR;
            float acc[MR][NR];
            memset(acc, 0, sizeof(acc));
            for (int k = 0; k < K; k++) {
                const float *b = bp + (size_t)k * NR;
                for (int r = 0; r < rows; r++) {
                    float a = A[(long)(m0 + r) * lda + k];
                    for (int j = 0; j < NR; j++) acc[r][j] += a * b[j];
                }
            }
            for (int r = 0; r < rows; r++) {
                float *c = C + (long)(m0 + r) * ldc + n0;
                for (int j = 0; j < cols; j++) c[j] = accumulate ? c[j] + acc[r][j] : acc[r][j];
            }
        }
    }
}

#if CK_X86

// MARK: - Register tiles
//
// A tile computes up to MR rows x one panel of C over `K` values of k, one chain of fused
// multiply-adds per element, in order of k. Element (r, k) of A is at A[r * rs + k * ks]: a
// row-major A (rs = lda, ks = 1) or a k-major copy (rs = 1, ks = mr). On AVX2, `pf`, when not
// NULL, is prefetched alongside the panel, one panel row per k. `mode` says where the chain
// starts and what becomes of C:
enum {
    CK_FROM_ZERO = 0,  // C = chain from zero
    CK_ADD_C = 1,      // C = C + chain from zero (the unblocked kernels' accumulate)
    CK_FROM_C = 2,     // C = chain from C (the blocked kernels' later blocks and accumulate)
};

#define CK512_MR 8

__attribute__((target("avx512f"), always_inline))
static inline void ck_tile512(const int mr, int K, const float *A, long rs, long ks, const float *bp,
                              float *C, int ldc, int cols, int mode) {
    __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
    __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF
                 : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1u) : (__mmask16)0;
    __m512 c0[CK512_MR], c1[CK512_MR];
    for (int r = 0; r < mr; r++) {
        if (mode == CK_FROM_C) {
            c0[r] = _mm512_maskz_loadu_ps(m0, C + (long)r * ldc);
            c1[r] = _mm512_maskz_loadu_ps(m1, C + (long)r * ldc + 16);
        } else {
            c0[r] = _mm512_setzero_ps();
            c1[r] = _mm512_setzero_ps();
        }
    }
    for (int k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(bp + (size_t)k * 32);
        __m512 b1 = _mm512_loadu_ps(bp + (size_t)k * 32 + 16);
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(A[r * rs + k * ks]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        float *c = C + (long)r * ldc;
        if (mode == CK_ADD_C) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
}

#define CK256_MR 6

__attribute__((target("avx2,fma"), always_inline))
static inline void ck_tile256(const int mr, int K, const float *A, long rs, long ks, const float *bp,
                              const float *pf, float *C, int ldc, int cols, int mode) {
    __m256 c0[CK256_MR], c1[CK256_MR];
    for (int r = 0; r < mr; r++) {
        if (mode != CK_FROM_C) {
            c0[r] = _mm256_setzero_ps();
            c1[r] = _mm256_setzero_ps();
        } else if (cols == 16) {
            c0[r] = _mm256_loadu_ps(C + (long)r * ldc);
            c1[r] = _mm256_loadu_ps(C + (long)r * ldc + 8);
        } else {
            float tile[16] = {0};
            memcpy(tile, C + (long)r * ldc, sizeof(float) * (size_t)cols);
            c0[r] = _mm256_loadu_ps(tile);
            c1[r] = _mm256_loadu_ps(tile + 8);
        }
    }
    for (int k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(bp + (size_t)k * 16);
        __m256 b1 = _mm256_loadu_ps(bp + (size_t)k * 16 + 8);
        if (pf) _mm_prefetch((const char *)(pf + (size_t)k * 16), _MM_HINT_T0);
        for (int r = 0; r < mr; r++) {
            __m256 a = _mm256_broadcast_ss(A + r * rs + k * ks);
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        float *c = C + (long)r * ldc;
        if (cols == 16) {
            if (mode == CK_ADD_C) {
                c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
                c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(c + 8));
            }
            _mm256_storeu_ps(c, c0[r]);
            _mm256_storeu_ps(c + 8, c1[r]);
        } else {
            float tile[16];
            _mm256_storeu_ps(tile, c0[r]);
            _mm256_storeu_ps(tile + 8, c1[r]);
            for (int j = 0; j < cols; j++) c[j] = mode == CK_ADD_C ? c[j] + tile[j] : tile[j];
        }
    }
}

// MARK: - Unblocked kernels
//
// Each panel streams past blocks of up to MR rows of A read in place; `ck_row_chunk` keeps
// the rows of A in L2 while every panel goes by. Short products (the recurrent ones of a
// training step, 25-50 rows) take this path.

// A tile over a row-major A, by instruction set: `mr` rows (at most the set's MR).
typedef void (*ck_rows_tile)(int mr, int K, const float *A, int lda, const float *bp, float *C, int ldc, int cols,
                             int mode);

__attribute__((target("avx512f")))
static void ck_rows_tile512(int mr, int K, const float *A, int lda, const float *bp, float *C, int ldc, int cols,
                            int mode) {
    switch (mr) {
#define CK_CASE(R) case R: ck_tile512(R, K, A, lda, 1, bp, C, ldc, cols, mode); break;
    CK_CASE(1) CK_CASE(2) CK_CASE(3) CK_CASE(4) CK_CASE(5) CK_CASE(6) CK_CASE(7) CK_CASE(8)
#undef CK_CASE
    default: break;
    }
}

__attribute__((target("avx2,fma")))
static void ck_rows_tile256(int mr, int K, const float *A, int lda, const float *bp, float *C, int ldc, int cols,
                            int mode) {
    switch (mr) {
#define CK_CASE(R) case R: ck_tile256(R, K, A, lda, 1, bp, NULL, C, ldc, cols, mode); break;
    CK_CASE(1) CK_CASE(2) CK_CASE(3) CK_CASE(4) CK_CASE(5) CK_CASE(6)
#undef CK_CASE
    default: break;
    }
}

// The unblocked path for panels `nr` wide and tiles of up to `mrMax` rows. Inlined into one
// function per instruction set (below), where `tile` is a constant: direct calls.
static inline __attribute__((always_inline)) void ck_gemm_unblocked_run(int nr, int mrMax, ck_rows_tile tile, int M, int N, int K, const float *A, int lda,
                                  const float *packed, float *C, int ldc, int accumulate) {
    int mode = accumulate ? CK_ADD_C : CK_FROM_ZERO;
    int mc = ck_row_chunk(M, K);
    for (int m1 = 0; m1 < M; m1 += mc) {
        int rows = M - m1 < mc ? M - m1 : mc;
        int blocks, base, extra;
        ck_row_blocks(rows, mrMax, &blocks, &base, &extra);
        for (int n0 = 0; n0 < N; n0 += nr) {
            const float *bp = packed + (size_t)n0 * K;
            int cols = N - n0 < nr ? N - n0 : nr;
            for (int blk = 0, m0 = m1; blk < blocks; blk++) {
                int mr = base + (blk < extra ? 1 : 0);
                tile(mr, K, A + (long)m0 * lda, lda, bp, C + (long)m0 * ldc + n0, ldc, cols, mode);
                m0 += mr;
            }
        }
    }
}

// MARK: - Long and tall products (K blocked, A copied)
//
// When K is large a whole K-deep panel no longer stays close to the rows of A that use it (at
// K = 4096 a 16-column panel alone is 256 KiB), and rows of A a multiple of 4 KiB apart fall
// into the same L1 sets; when M is large the unblocked kernels stream every panel once per
// few dozen rows. For such products (`ck_gemm_blocked`) the work goes block by block of KC
// k-values: each block's piece of a panel (16 KiB in L1 on AVX2, 64 KiB in L2 on AVX-512)
// stays close while up to MC rows of A, copied k-major per tile so that the broadcasts read
// one stream, go past it. On AVX2 the next panel's piece is prefetched while the first tile
// of a panel runs (the pieces of different panels are not adjacent in the packed layout, so
// the hardware prefetcher does not find them). The accumulators carry over between blocks
// through C. Where a product does not
// accumulate, every element sees the same fused multiply-adds in the same order as on the
// unblocked path, so the two agree bit for bit; where it does, the chain starts from C
// instead of C being added at the end.
//
// Measured against the unblocked kernels (medians of alternating timings on one core):
// - Zen 3, AVX2, KC 256: +27-35% on the K = 4096, 1250 and 1024 products of a 3x1024 step,
//   +9-48% on 1,250-row products with K <= 1024 (most with a short K); 1024^3 and
//   25 x 4096 x 1024 even; K = 1536-2048 with 512 columns between -9% and +5% from run to run.
//   25-row products with K < 1024 and 65-column ones measured 0-10% slower, so they stay
//   unblocked. End to end, training LSTMs from 2x128 to 3x1024 ran 6-9% faster.
// - Zen 4, AVX-512 (1 MiB of L2, and an L3 shared with the machine's other guests): the
//   unblocked kernel runs at 90-112 GFLOP/s on one core while the packed B stays under about
//   16 MiB, and drops to 60-75 when it is larger (1024 x 4096 x 1250, a 3x1024 weight
//   gradient on the packed route, re-streams 20 MiB of B once per 26 rows). Blocked with
//   KC 512 and without the prefetch, that product runs at 96-97 and 512 x 2048 x 1250 at
//   86-97 against 72-76; but blocking lost 5-20% wherever the unblocked kernel was already
//   fast (1024^3, K <= 2048 with 512 columns, the 25-row products), and KC 64-256 or the
//   prefetch lost more. So on AVX-512 only products of 192 rows or more whose packed B
//   holds 2 Mi floats (8 MiB) or more are blocked.

typedef void (*ck_blocked_tile)(int mr, int kk, const float *ap, const float *bp, const float *pf, float *C,
                                int ldc, int cols, int mode);

// Without the prefetch: with KC 512 a panel's piece is 64 KiB, which the L2 holds, and the
// prefetch measured slower at every KC.
__attribute__((target("avx512f")))
static void ck_blocked_tile512(int mr, int kk, const float *ap, const float *bp, const float *pf, float *C,
                               int ldc, int cols, int mode) {
    (void)pf;
    switch (mr) {
#define CK_CASE(R) case R: ck_tile512(R, kk, ap, 1, R, bp, C, ldc, cols, mode); break;
    CK_CASE(1) CK_CASE(2) CK_CASE(3) CK_CASE(4) CK_CASE(5) CK_CASE(6) CK_CASE(7) CK_CASE(8)
#undef CK_CASE
    default: break;
    }
}

__attribute__((target("avx2,fma")))
static void ck_blocked_tile256(int mr, int kk, const float *ap, const float *bp, const float *pf, float *C,
                               int ldc, int cols, int mode) {
    switch (mr) {
#define CK_CASE(R) case R: ck_tile256(R, kk, ap, 1, R, bp, pf, C, ldc, cols, mode); break;
    CK_CASE(1) CK_CASE(2) CK_CASE(3) CK_CASE(4) CK_CASE(5) CK_CASE(6)
#undef CK_CASE
    default: break;
    }
}

// The k-values of the block at k0: kc, or the rest of K when less than a quarter block would
// be left after it.
static inline int ck_k_block(int K, int k0, int kc) {
    return K - k0 <= kc + kc / 4 ? K - k0 : kc;
}

// The blocked path for panels `nr` wide and tiles of up to `mrMax` rows, inlined like the
// unblocked one. Returns 0 when the copy of A cannot be allocated (the caller then takes the
// unblocked path).
static inline __attribute__((always_inline)) int ck_gemm_blocked_run(int nr, int mrMax, int kc, int mcMax, ck_blocked_tile tile, int M, int N, int K,
                               const float *A, int lda, const float *packed, float *C, int ldc, int accumulate) {
    int mc = M < mcMax ? M : mcMax;
    float *ap = malloc(sizeof(float) * (size_t)mc * (size_t)(kc + kc / 4));
    if (!ap) return 0;
    for (int m1 = 0; m1 < M; m1 += mc) {
        int rows = M - m1 < mc ? M - m1 : mc;
        int blocks, base, extra;
        ck_row_blocks(rows, mrMax, &blocks, &base, &extra);
        for (int k0 = 0; k0 < K;) {
            int kk = ck_k_block(K, k0, kc);
            float *dst = ap;
            for (int blk = 0, m0 = m1; blk < blocks; blk++) {
                int mr = base + (blk < extra ? 1 : 0);
                for (int r = 0; r < mr; r++) {
                    const float *src = A + (long)(m0 + r) * lda + k0;
                    for (int k = 0; k < kk; k++) dst[(size_t)k * mr + r] = src[k];
                }
                dst += (size_t)mr * kk;
                m0 += mr;
            }
            int mode = accumulate || k0 > 0 ? CK_FROM_C : CK_FROM_ZERO;
            for (int n0 = 0; n0 < N; n0 += nr) {
                const float *bp = packed + (size_t)n0 * K + (size_t)k0 * nr;
                const float *next = n0 + nr < N ? bp + (size_t)nr * K : bp;
                int cols = N - n0 < nr ? N - n0 : nr;
                const float *a = ap;
                for (int blk = 0, m0 = m1; blk < blocks; blk++) {
                    int mr = base + (blk < extra ? 1 : 0);
                    tile(mr, kk, a, bp, blk == 0 ? next : bp, C + (long)m0 * ldc + n0, ldc, cols, mode);
                    a += (size_t)mr * kk;
                    m0 += mr;
                }
            }
            k0 += kk;
        }
    }
    free(ap);
    return 1;
}

// One function per instruction set: the blocked path where the rule takes it, else the
// unblocked one.
__attribute__((target("avx512f")))
static void ck_gemm_avx512(int M, int N, int K, const float *A, int lda, const float *packed, float *C, int ldc,
                           int accumulate) {
    if (ck_gemm_blocked(CK_ISA_AVX512, M, N, K) &&
        ck_gemm_blocked_run(32, CK512_MR, CK512_KC, CK512_MC, ck_blocked_tile512, M, N, K, A, lda, packed, C, ldc,
                            accumulate)) {
        return;
    }
    ck_gemm_unblocked_run(32, CK512_MR, ck_rows_tile512, M, N, K, A, lda, packed, C, ldc, accumulate);
}

__attribute__((target("avx2,fma")))
static void ck_gemm_avx2(int M, int N, int K, const float *A, int lda, const float *packed, float *C, int ldc,
                         int accumulate) {
    if (ck_gemm_blocked(CK_ISA_AVX2, M, N, K) &&
        ck_gemm_blocked_run(16, CK256_MR, CK256_KC, CK256_MC, ck_blocked_tile256, M, N, K, A, lda, packed, C, ldc,
                            accumulate)) {
        return;
    }
    ck_gemm_unblocked_run(16, CK256_MR, ck_rows_tile256, M, N, K, A, lda, packed, C, ldc, accumulate);
}

#endif

// MARK: - Entry point

void ck_gemm_packed(int isa, int M, int N, int K, const float *A, int lda,
                    const float *packed, float *C, int ldc, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) for (int m = 0; m < M; m++) memset(C + (long)m * ldc, 0, sizeof(float) * (size_t)N);
        return;
    }
#if CK_X86
    switch (isa) {
    case CK_ISA_AVX512: ck_gemm_avx512(M, N, K, A, lda, packed, C, ldc, accumulate); return;
    case CK_ISA_AVX2: ck_gemm_avx2(M, N, K, A, lda, packed, C, ldc, accumulate); return;
    default: break;
    }
#endif
    ck_gemm_generic(M, N, K, A, lda, packed, C, ldc, accumulate);
}
