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

// The AVX2 kernel's blocking (see its blocked variant below): values of k per block, and rows
// of A per block of rows.
#define CK256_KC 256
#define CK256_MC 192

int ck_gemm_blocked(int isa, int M, int N, int K) {
    return isa == CK_ISA_AVX2 && (K >= 1024 || (M >= CK256_MC && N >= 128));
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

// MARK: - AVX-512 kernel (panel 32, up to 8 rows per tile)

#define CK512_MR 8

__attribute__((target("avx512f"), always_inline))
static inline void ck_tile512(const int mr, int K, const float *A, int lda, const float *bp,
                              float *C, int ldc, int cols, int accumulate) {
    __m512 c0[CK512_MR], c1[CK512_MR];
    for (int r = 0; r < mr; r++) { c0[r] = _mm512_setzero_ps(); c1[r] = _mm512_setzero_ps(); }
    for (int k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(bp + (size_t)k * 32);
        __m512 b1 = _mm512_loadu_ps(bp + (size_t)k * 32 + 16);
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(A[(long)r * lda + k]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
    __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
    __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF
                 : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1u) : (__mmask16)0;
    for (int r = 0; r < mr; r++) {
        float *c = C + (long)r * ldc;
        if (accumulate) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
}

__attribute__((target("avx512f")))
static void ck_gemm_avx512(int M, int N, int K, const float *A, int lda,
                           const float *packed, float *C, int ldc, int accumulate) {
    int mc = ck_row_chunk(M, K);
    if (mc < M) {
        for (int m = 0; m < M; m += mc) {
            int rows = M - m < mc ? M - m : mc;
            ck_gemm_avx512(rows, N, K, A + (long)m * lda, lda, packed, C + (long)m * ldc, ldc, accumulate);
        }
        return;
    }
    int blocks, base, extra;
    ck_row_blocks(M, CK512_MR, &blocks, &base, &extra);
    for (int n0 = 0; n0 < N; n0 += 32) {
        const float *bp = packed + (size_t)n0 * K;
        int cols = N - n0 < 32 ? N - n0 : 32;
        int m0 = 0;
        for (int blk = 0; blk < blocks; blk++) {
            int mr = base + (blk < extra ? 1 : 0);
            const float *a = A + (long)m0 * lda;
            float *c = C + (long)m0 * ldc + n0;
            switch (mr) {
#define CK_CASE(R) case R: ck_tile512(R, K, a, lda, bp, c, ldc, cols, accumulate); break;
            CK_CASE(1) CK_CASE(2) CK_CASE(3) CK_CASE(4) CK_CASE(5) CK_CASE(6) CK_CASE(7) CK_CASE(8)
#undef CK_CASE
            default: break;
            }
            m0 += mr;
        }
    }
}

// MARK: - AVX2 kernel (panel 16, up to 6 rows per tile)

#define CK256_MR 6

__attribute__((target("avx2,fma"), always_inline))
static inline void ck_tile256(const int mr, int K, const float *A, int lda, const float *bp,
                              float *C, int ldc, int cols, int accumulate) {
    __m256 c0[CK256_MR], c1[CK256_MR];
    for (int r = 0; r < mr; r++) { c0[r] = _mm256_setzero_ps(); c1[r] = _mm256_setzero_ps(); }
    for (int k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(bp + (size_t)k * 16);
        __m256 b1 = _mm256_loadu_ps(bp + (size_t)k * 16 + 8);
        for (int r = 0; r < mr; r++) {
            __m256 a = _mm256_broadcast_ss(A + (long)r * lda + k);
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        float *c = C + (long)r * ldc;
        if (cols == 16) {
            if (accumulate) {
                c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
                c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(c + 8));
            }
            _mm256_storeu_ps(c, c0[r]);
            _mm256_storeu_ps(c + 8, c1[r]);
        } else {
            float tile[16];
            _mm256_storeu_ps(tile, c0[r]);
            _mm256_storeu_ps(tile + 8, c1[r]);
            for (int j = 0; j < cols; j++) c[j] = accumulate ? c[j] + tile[j] : tile[j];
        }
    }
}

// MARK: - AVX2 kernel for long and tall products (K blocked, A packed)
//
// When K is large a whole K x 16 panel no longer stays close to the rows of A that use it (at
// K = 4096 the panel alone is 256 KiB), and rows of A a multiple of 4 KiB apart fall into the
// same L1 sets; when M is large the unblocked kernel streams every panel once per few dozen
// rows. For such products (`ck_gemm_blocked`) the work goes block by block of `CK256_KC`
// k-values: each block's 16-column piece of a panel (16 KiB) stays in L1 while up to
// `CK256_MC` rows of A, copied k-major per tile, stream past it, and the accumulators carry
// over between blocks through C. Where a product does not accumulate, every element sees the
// same fused multiply-adds in the same order as in `ck_gemm_avx2`, so the two agree bit for
// bit; where it does, the chain starts from C instead of C being added at the end.
//
// Measured on a Zen 3 core against the unblocked kernel (medians of 15-21 alternating timings;
// single timings move by 10-20% on that machine): +27-35% on the K = 4096, 1250 and 1024
// products of a 3x1024 step, +9-48% on 1,250-row products with K <= 1024 (most with a short
// K); 1024^3 and 25 x 4096 x 1024 even; K = 1536-2048 with 512 columns between -9% and +5%
// from run to run. 25-row products with K < 1024 and 65-column ones measured 0-10% slower, so
// they stay unblocked. End to end, training LSTMs from 2x128 to 3x1024 ran 6-9% faster.

// A tile of up to 6 rows x 16 columns over kk values of k. `ap` holds the tile's rows of A
// k-major (ap[k * mr + r]); `bp` is the panel's kk x 16 block; `pf` is prefetched alongside
// (the next panel's block, which does not follow this one in memory). The accumulators start
// from C when `load` is set and from zero otherwise.
__attribute__((target("avx2,fma"), always_inline))
static inline void ck_tile256_blocked(const int mr, int kk, const float *ap, const float *bp,
                                      const float *pf, float *C, int ldc, int cols, int load) {
    __m256 c0[CK256_MR], c1[CK256_MR];
    for (int r = 0; r < mr; r++) {
        if (!load) {
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
    for (int k = 0; k < kk; k++) {
        __m256 b0 = _mm256_loadu_ps(bp + (size_t)k * 16);
        __m256 b1 = _mm256_loadu_ps(bp + (size_t)k * 16 + 8);
        _mm_prefetch((const char *)(pf + (size_t)k * 16), _MM_HINT_T0);
        for (int r = 0; r < mr; r++) {
            __m256 a = _mm256_broadcast_ss(ap + (size_t)k * mr + r);
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        float *c = C + (long)r * ldc;
        if (cols == 16) {
            _mm256_storeu_ps(c, c0[r]);
            _mm256_storeu_ps(c + 8, c1[r]);
        } else {
            float tile[16];
            _mm256_storeu_ps(tile, c0[r]);
            _mm256_storeu_ps(tile + 8, c1[r]);
            memcpy(c, tile, sizeof(float) * (size_t)cols);
        }
    }
}

// The k-values of block `k0`: CK256_KC, or the rest of K when less than a quarter block
// would be left after it.
static inline int ck_k_block(int K, int k0) {
    return K - k0 <= CK256_KC + CK256_KC / 4 ? K - k0 : CK256_KC;
}

// Returns 0 when the copy of A cannot be allocated (the caller then uses the unblocked kernel).
__attribute__((target("avx2,fma")))
static int ck_gemm_avx2_blocked(int M, int N, int K, const float *A, int lda,
                                const float *packed, float *C, int ldc, int accumulate) {
    int mc = M < CK256_MC ? M : CK256_MC;
    float *ap = malloc(sizeof(float) * (size_t)mc * (size_t)(CK256_KC + CK256_KC / 4));
    if (!ap) return 0;
    for (int m1 = 0; m1 < M; m1 += mc) {
        int rows = M - m1 < mc ? M - m1 : mc;
        int blocks, base, extra;
        ck_row_blocks(rows, CK256_MR, &blocks, &base, &extra);
        for (int k0 = 0; k0 < K;) {
            int kk = ck_k_block(K, k0);
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
            int load = accumulate || k0 > 0;
            for (int n0 = 0; n0 < N; n0 += 16) {
                const float *bp = packed + (size_t)n0 * K + (size_t)k0 * 16;
                const float *next = n0 + 16 < N ? bp + (size_t)16 * K : bp;
                int cols = N - n0 < 16 ? N - n0 : 16;
                const float *a = ap;
                for (int blk = 0, m0 = m1; blk < blocks; blk++) {
                    int mr = base + (blk < extra ? 1 : 0);
                    const float *pf = blk == 0 ? next : bp;
                    float *c = C + (long)m0 * ldc + n0;
                    switch (mr) {
#define CK_CASE(R) case R: ck_tile256_blocked(R, kk, a, bp, pf, c, ldc, cols, load); break;
                    CK_CASE(1) CK_CASE(2) CK_CASE(3) CK_CASE(4) CK_CASE(5) CK_CASE(6)
#undef CK_CASE
                    default: break;
                    }
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

__attribute__((target("avx2,fma")))
static void ck_gemm_avx2(int M, int N, int K, const float *A, int lda,
                         const float *packed, float *C, int ldc, int accumulate) {
    int mc = ck_row_chunk(M, K);
    if (mc < M) {
        for (int m = 0; m < M; m += mc) {
            int rows = M - m < mc ? M - m : mc;
            ck_gemm_avx2(rows, N, K, A + (long)m * lda, lda, packed, C + (long)m * ldc, ldc, accumulate);
        }
        return;
    }
    int blocks, base, extra;
    ck_row_blocks(M, CK256_MR, &blocks, &base, &extra);
    for (int n0 = 0; n0 < N; n0 += 16) {
        const float *bp = packed + (size_t)n0 * K;
        int cols = N - n0 < 16 ? N - n0 : 16;
        int m0 = 0;
        for (int blk = 0; blk < blocks; blk++) {
            int mr = base + (blk < extra ? 1 : 0);
            const float *a = A + (long)m0 * lda;
            float *c = C + (long)m0 * ldc + n0;
            switch (mr) {
#define CK_CASE(R) case R: ck_tile256(R, K, a, lda, bp, c, ldc, cols, accumulate); break;
            CK_CASE(1) CK_CASE(2) CK_CASE(3) CK_CASE(4) CK_CASE(5) CK_CASE(6)
#undef CK_CASE
            default: break;
            }
            m0 += mr;
        }
    }
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
    case CK_ISA_AVX2:
        if (ck_gemm_blocked(isa, M, N, K) && ck_gemm_avx2_blocked(M, N, K, A, lda, packed, C, ldc, accumulate)) return;
        ck_gemm_avx2(M, N, K, A, lda, packed, C, ldc, accumulate);
        return;
    default: break;
    }
#endif
    ck_gemm_generic(M, N, K, A, lda, packed, C, ldc, accumulate);
}
