// One stream of a recurrent network, one character at a time: the generation loop.
//
// A single stream is bound by reading every weight once per character (a 2x512 LSTM reads
// 3.2 million weights to produce one character), so this path is built around that traffic:
//
// - Weights are held as float32 or as int8 with one float scale per row (a row is one gate
//   unit's weights), which reads a quarter of the bytes. The int8 value of w is
//   round(w / s) with s = max|row| / 127, and a product is (sum of q * x) * s in float32.
// - The work is split by hidden unit across threads: thread t owns units [u0, u1) of every
//   layer, keeps the rows of their gates (all four for an LSTM) in its own memory, and
//   applies the cell to them, so a step needs one barrier per layer and none inside a cell.
//   Each thread reads only its share of the weights: two threads halve the traffic per core.
// - Vectors are zero-padded to a multiple of 16, so the dot products have no tails.
//
// The caller's thread is thread 0; the others wait for a step by spinning briefly, then
// sleeping on a futex (Linux) or in short naps (elsewhere), so an idle generator costs no CPU.

#include "CKernels.h"
#include "vecmath.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define CK_PAUSE() _mm_pause()
#else
#define CK_PAUSE() ((void)0)
#endif

#define CK_PAD 16
#define CK_MAX_THREADS 8

static int ck_padded(int n) { return (n + CK_PAD - 1) / CK_PAD * CK_PAD; }

// MARK: - Quantization

// The largest |x[k]|, or NaN when x holds a NaN or an infinity (a NaN compares false, so a
// plain maximum would skip it).
static inline __attribute__((always_inline)) float ck_max_abs(int K, const float *x) {
    float m = 0.0f;
    int finite = 1;
    for (int k = 0; k < K; k++) {
        float a = __builtin_fabsf(x[k]);
        finite &= a <= 3.402823466e38f;
        m = a > m ? a : m;
    }
    return finite ? m : __builtin_nanf("");
}

CK_VOID_KERNEL(ck_quantize_rows, (int rows, int K, const float *w, long ld, int8_t *q, long ldq, float *scale),
               (rows, K, w, ld, q, ldq, scale)) {
    for (int r = 0; r < rows; r++) {
        const float *row = w + (long)r * ld;
        // A row holding NaN or an infinity gets a NaN scale, so that its products are NaN.
        float m = ck_max_abs(K, row);
        float s = m != m ? m : m > 0.0f ? m / 127.0f : 1.0f;
        float inverse = 1.0f / s;
        scale[r] = s;
        int8_t *out = q + (long)r * ldq;
        for (int k = 0; k < K; k++) {
            // Round to nearest, ties to even; clamped, since m * (1 / s) may round above 127.
            float v = __builtin_rintf(row[k] * inverse);
            v = v > 127.0f ? 127.0f : v;
            v = v < -127.0f ? -127.0f : v;
            v = v == v ? v : 0.0f;
            out[k] = (int8_t)v;
        }
    }
}

void ck_round_rows_to_int8(int rows, int K, float *w) {
    int8_t *q = malloc((size_t)K > 0 ? (size_t)K : 1);
    if (!q) abort();
    for (int r = 0; r < rows; r++) {
        float s;
        float *row = w + (long)r * K;
        ck_quantize_rows(1, K, row, K, q, K, &s);
        for (int k = 0; k < K; k++) row[k] = (float)q[k] * s;
    }
    free(q);
}

// MARK: - The stepper

// A block of rows, each K (padded) long, in float32 or int8 with per-row scales.
typedef struct {
    int rows, K;
    float *f;       // rows x K, or NULL
    int8_t *q;      // rows x K, or NULL
    float *scale;   // rows, with q
} ck_rows;

typedef struct {
    int u0, u1;          // units [u0, u1) of every layer
    int v0, v1;          // output rows [v0, v1)
    ck_rows *wx, *wh;    // per layer: input and recurrent rows of the owned units' gates
    float **bx, **bh;    // per layer: biases of those rows (bh used by GRU only)
    ck_rows out;         // the owned output rows
    float *ax, *ah;      // scratch: gate sums (gates x units)
    int16_t *xq;         // scratch: a quantized input vector (int8 weights)
    int ok;              // whether this share's weights were made (creation)
} ck_share;

struct ck_stepper {
    int cell, layers, V, E, H, Hp, Xp, G, precision, threads;
    float *table;        // one-hot inputs: (V, G), row v = W_ih0[:, v] (+ nothing); NULL with an embedding
    float *embedding;    // (V, E) or NULL
    float *x0;           // padded embedding input (Xp)
    float *h[2];         // (layers, Hp) each, double-buffered by parity
    float *c;            // (layers, H), LSTM only
    float *outBias;      // (V)
    int parity;
    ck_share share[CK_MAX_THREADS];
    pthread_t workers[CK_MAX_THREADS];
    int started;
    const ck_stepper_desc *desc;  // during creation only
    // The current task, published by thread 0: fill the shares (creation), or one step.
    int filling, id, isa;
    float *logits;
    _Atomic unsigned go;
    _Atomic int sleepers;
    _Atomic int quit;
    _Atomic uint64_t arrived, released;  // barrier counts: 64-bit, so they never wrap
};

static void *ck_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}

// Fills `out` with rows picked from W (row stride ld, K columns): rows g * H + u for each gate
// g < gates and unit u in [u0, u1), in that order, padded to Kp columns. With int8 precision
// and `Q` given, the rows and their scales are copied from Q (row stride ld) and `S`.
static int ck_rows_fill(ck_rows *out, int precision, const float *W, const int8_t *Q, const float *S, int ld, int K,
                        int Kp, int gates, int H, int u0, int u1) {
    int units = u1 - u0;
    out->rows = gates * units;
    out->K = Kp;
    out->f = NULL;
    out->q = NULL;
    out->scale = NULL;
    if (out->rows == 0) return 1;
    if (precision == CK_PRECISION_INT8) {
        out->q = ck_alloc((size_t)out->rows * Kp);
        out->scale = ck_alloc(sizeof(float) * out->rows);
        if (!out->q || !out->scale) return 0;
    } else {
        out->f = ck_alloc(sizeof(float) * (size_t)out->rows * Kp);
        if (!out->f) return 0;
    }
    for (int g = 0; g < gates; g++) {
        for (int u = 0; u < units; u++) {
            int r = g * units + u;
            long row = (long)(g * H + u0 + u);
            if (out->q && Q) {
                memcpy(out->q + (long)r * Kp, Q + row * ld, (size_t)K);
                out->scale[r] = S[row];
            } else if (out->q) {
                ck_quantize_rows(1, K, W + row * ld, ld, out->q + (long)r * Kp, Kp, out->scale + r);
            } else {
                memcpy(out->f + (long)r * Kp, W + row * ld, sizeof(float) * K);
            }
        }
    }
    return 1;
}

static void ck_rows_free(ck_rows *r) {
    free(r->f);
    free(r->q);
    free(r->scale);
}

// MARK: - Dot products (padded, K a multiple of 16), four rows at a time

typedef float ck_v8f __attribute__((vector_size(32), aligned(4)));

static inline __attribute__((always_inline)) float ck_hsum(ck_v8f v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

static inline __attribute__((always_inline)) ck_v8f ck_load_f(const float *p) {
    ck_v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

// y[r] = rows[r] . x for every row of a float32 block (y assigned).
static inline __attribute__((always_inline)) void ck_rows_apply_f32(const ck_rows *m, const float *x, float *y) {
    int K = m->K, r = 0;
    for (; r + 4 <= m->rows; r += 4) {
        const float *w = m->f + (long)r * K;
        ck_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        for (int k = 0; k < K; k += 16) {
            ck_v8f x0 = ck_load_f(x + k), x1 = ck_load_f(x + k + 8);
            a0 += ck_load_f(w + k) * x0;
            b0 += ck_load_f(w + k + 8) * x1;
            a1 += ck_load_f(w + K + k) * x0;
            b1 += ck_load_f(w + K + k + 8) * x1;
            a2 += ck_load_f(w + 2 * K + k) * x0;
            b2 += ck_load_f(w + 2 * K + k + 8) * x1;
            a3 += ck_load_f(w + 3 * K + k) * x0;
            b3 += ck_load_f(w + 3 * K + k + 8) * x1;
        }
        y[r] = ck_hsum(a0 + b0);
        y[r + 1] = ck_hsum(a1 + b1);
        y[r + 2] = ck_hsum(a2 + b2);
        y[r + 3] = ck_hsum(a3 + b3);
    }
    for (; r < m->rows; r++) {
        const float *w = m->f + (long)r * K;
        ck_v8f a = {0}, b = {0};
        for (int k = 0; k < K; k += 16) {
            a += ck_load_f(w + k) * ck_load_f(x + k);
            b += ck_load_f(w + k + 8) * ck_load_f(x + k + 8);
        }
        y[r] = ck_hsum(a + b);
    }
}

// With int8 weights the input vector is quantized too, to int16 with one scale per vector
// (|x| / 32767 at most per step: far finer than the weights' grid), so that the products are
// exact integer multiply-adds: (sum of q * xq) * scale[r] * xscale. The integer sums are
// moved to float every CK_FLUSH columns: a 32-bit lane then holds at most
// CK_FLUSH / 8 * 2 * 127 * 32767 < 2^31.
#define CK_FLUSH 2048

// Returns the scale, or NaN when x holds a NaN or an infinity (the product is then NaN, as a
// float32 product would be; converting NaN to an integer would be undefined).
static inline __attribute__((always_inline)) float ck_quantize_vector(int K, const float *x, int16_t *xq) {
    float m = ck_max_abs(K, x);
    if (m != m) return m;
    float scale = m > 0.0f ? m / 32767.0f : 1.0f, inverse = 1.0f / scale;
    for (int k = 0; k < K; k++) {
        float v = __builtin_rintf(x[k] * inverse);
        v = v > 32767.0f ? 32767.0f : v;
        v = v < -32767.0f ? -32767.0f : v;
        xq[k] = (int16_t)v;
    }
    return scale;
}

// The portable int8 product: the same integer sums as the AVX2 one, one row at a time.
static void ck_rows_apply_q_generic(const ck_rows *m, const int16_t *xq, float xscale, float *y) {
    int K = m->K;
    for (int r = 0; r < m->rows; r++) {
        const int8_t *w = m->q + (long)r * K;
        float total = 0.0f;
        for (int k0 = 0; k0 < K; k0 += CK_FLUSH) {
            int k1 = k0 + CK_FLUSH < K ? k0 + CK_FLUSH : K;
            int32_t lanes[8] = {0};
            for (int k = k0; k < k1; k += 16) {
                for (int j = 0; j < 8; j++) lanes[j] += w[k + 2 * j] * xq[k + 2 * j] + w[k + 2 * j + 1] * xq[k + 2 * j + 1];
            }
            for (int j = 0; j < 8; j++) total += (float)lanes[j];
        }
        y[r] = total * m->scale[r] * xscale;
    }
}

#if defined(__x86_64__)
static inline __attribute__((always_inline, target("avx2"))) float ck_hsum_epi32_as_float(__m256 f) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

// The integer sums of R rows (R <= 4, row stride K) with xq over k in [k, k1), added to b[i]:
// 16 int8 weights widened to int16, multiplied by 16 int16 inputs and summed in pairs
// (vpmaddwd), the input loaded once for the R rows. Lane j of b[i] holds the pairs at
// k = 2j, 2j + 1 (mod 16).
static inline __attribute__((always_inline, target("avx2"))) void ck_q_sums_avx2(const int R, const int8_t *w, long K,
                                                                                 const int16_t *xq, int k, int k1,
                                                                                 __m256i *b) {
    for (; k < k1; k += 16) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(xq + k));
        for (int i = 0; i < R; i++) {
            __m256i wi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + i * K + k)));
            b[i] = _mm256_add_epi32(b[i], _mm256_madd_epi16(wi, x));
        }
    }
}

// The same sums 32 weights per instruction. Lane j of a 512-bit sum holds the pairs at
// k = 2j, 2j + 1 (mod 32); adding its upper half to its lower half (exact, in int32) gives
// lane j the pairs at k = 2j, 2j + 1 (mod 16), which is what ck_q_sums_avx2 gives, so the
// float conversions and additions that follow are the AVX2 kernel's and the two give the same
// logits bit for bit. A last 16 (K is padded to 16, not 32) goes the AVX2 way.
static inline __attribute__((always_inline, target("avx512f,avx512bw"))) void ck_q_sums_avx512(
    const int R, const int8_t *w, long K, const int16_t *xq, int k, int k1, __m256i *b) {
    __m512i a[4];
    for (int i = 0; i < R; i++) a[i] = _mm512_setzero_si512();
    for (; k + 32 <= k1; k += 32) {
        __m512i x = _mm512_loadu_si512((const void *)(xq + k));
        for (int i = 0; i < R; i++) {
            __m512i wi = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(w + i * K + k)));
            a[i] = _mm512_add_epi32(a[i], _mm512_madd_epi16(wi, x));
        }
    }
    for (int i = 0; i < R; i++) {
        b[i] = _mm256_add_epi32(b[i], _mm256_add_epi32(_mm512_castsi512_si256(a[i]), _mm512_extracti64x4_epi64(a[i], 1)));
    }
    ck_q_sums_avx2(R, w, K, xq, k, k1, b);
}

// y[r .. r + R) of an int8 block from the lane sums that SUMS (one of the two above) gives:
// the integer sums moved to float every CK_FLUSH columns, then added across lanes.
#define CK_Q_ROWS(SUMS, R)                                                                                  \
    do {                                                                                                    \
        const int8_t *w = m->q + (long)r * K;                                                               \
        __m256 f[R];                                                                                        \
        for (int i = 0; i < R; i++) f[i] = _mm256_setzero_ps();                                             \
        for (int k0 = 0; k0 < K; k0 += CK_FLUSH) {                                                          \
            __m256i b[R];                                                                                   \
            for (int i = 0; i < R; i++) b[i] = _mm256_setzero_si256();                                      \
            SUMS(R, w, K, xq, k0, k0 + CK_FLUSH < K ? k0 + CK_FLUSH : K, b);                                \
            for (int i = 0; i < R; i++) f[i] = _mm256_add_ps(f[i], _mm256_cvtepi32_ps(b[i]));               \
        }                                                                                                   \
        for (int i = 0; i < R; i++) y[r + i] = ck_hsum_epi32_as_float(f[i]) * m->scale[r + i] * xscale;    \
    } while (0)

// Four rows at a time, then one at a time.
CK_TARGET_V3 static void ck_rows_apply_q_avx2(const ck_rows *m, const int16_t *xq, float xscale, float *y) {
    int K = m->K, r = 0;
    for (; r + 4 <= m->rows; r += 4) CK_Q_ROWS(ck_q_sums_avx2, 4);
    for (; r < m->rows; r++) CK_Q_ROWS(ck_q_sums_avx2, 1);
}

CK_TARGET_V4 static void ck_rows_apply_q_avx512(const ck_rows *m, const int16_t *xq, float xscale, float *y) {
    int K = m->K, r = 0;
    for (; r + 4 <= m->rows; r += 4) CK_Q_ROWS(ck_q_sums_avx512, 4);
    for (; r < m->rows; r++) CK_Q_ROWS(ck_q_sums_avx512, 1);
}
#endif

// y = rows . x in the block's precision; `xq` is scratch for the quantized input. `level` is a
// constant of each compiled variant (3 or more: AVX2 instructions may be used).
static inline __attribute__((always_inline)) void ck_rows_apply(const ck_rows *m, const float *x, int16_t *xq,
                                                                float *y, int level) {
    if (m->rows == 0) return;
    if (!m->q) {
        ck_rows_apply_f32(m, x, y);
        return;
    }
    float xscale = ck_quantize_vector(m->K, x, xq);
    if (xscale != xscale) {
        for (int r = 0; r < m->rows; r++) y[r] = xscale;
        return;
    }
#if defined(__x86_64__)
    if (level >= 4) {
        ck_rows_apply_q_avx512(m, xq, xscale, y);
        return;
    }
    if (level >= 3) {
        ck_rows_apply_q_avx2(m, xq, xscale, y);
        return;
    }
#endif
    (void)level;
    ck_rows_apply_q_generic(m, xq, xscale, y);
}

// MARK: - Barriers and hand-off

static void ck_barrier(ck_stepper *s, uint64_t *phase) {
    uint64_t next = *phase + 1;
    if (atomic_fetch_add(&s->arrived, 1) + 1 == (uint64_t)s->threads * next) {
        atomic_store_explicit(&s->released, next, memory_order_release);
    } else {
        while (atomic_load_explicit(&s->released, memory_order_acquire) < next) CK_PAUSE();
    }
    *phase = next;
}

static void ck_wait_go(ck_stepper *s, unsigned seen) {
    for (int i = 0; i < 20000; i++) {
        if (atomic_load(&s->go) != seen) return;
        CK_PAUSE();
    }
    while (atomic_load(&s->go) == seen) {
        atomic_fetch_add(&s->sleepers, 1);
        if (atomic_load(&s->go) == seen) {
#if defined(__linux__)
            syscall(SYS_futex, (unsigned *)&s->go, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
            struct timespec nap = {0, 50000};
            nanosleep(&nap, NULL);
#endif
        }
        atomic_fetch_sub(&s->sleepers, 1);
    }
}

static void ck_wake(ck_stepper *s) {
    atomic_fetch_add(&s->go, 1);
    if (atomic_load(&s->sleepers) > 0) {
#if defined(__linux__)
        syscall(SYS_futex, (unsigned *)&s->go, FUTEX_WAKE_PRIVATE, CK_MAX_THREADS, NULL, NULL, 0);
#endif
    }
}

// MARK: - One step of one thread

static inline __attribute__((always_inline)) void ck_stepper_work_impl(ck_stepper *s, int t, uint64_t *phase,
                                                                       int level) {
    ck_share *sh = &s->share[t];
    int H = s->H, Hp = s->Hp, units = sh->u1 - sh->u0;
    int gates = s->G / H;
    float *hOld = s->h[s->parity], *hNew = s->h[s->parity ^ 1];
    for (int l = 0; l < s->layers; l++) {
        float *ax = sh->ax, *ah = sh->ah;
        if (l == 0 && s->table) {
            const float *col = s->table + (long)s->id * s->G;
            for (int g = 0; g < gates; g++) {
                for (int u = 0; u < units; u++) ax[g * units + u] = col[g * H + sh->u0 + u];
            }
        } else {
            const float *x = l == 0 ? s->x0 : hNew + (long)(l - 1) * Hp;
            ck_rows_apply(&sh->wx[l], x, sh->xq, ax, level);
        }
        ck_rows_apply(&sh->wh[l], hOld + (long)l * Hp, sh->xq, ah, level);
        const float *bx = sh->bx[l];
        float *hl = hNew + (long)l * Hp + sh->u0;
        if (s->cell == CK_CELL_LSTM) {
            float *c = s->c + (long)l * H + sh->u0;
            CK_INDEPENDENT
            for (int u = 0; u < units; u++) {
                float i = ck_sigmoidf(ax[u] + ah[u] + bx[u]);
                float f = ck_sigmoidf(ax[units + u] + ah[units + u] + bx[units + u]);
                float g = ck_tanhf(ax[2 * units + u] + ah[2 * units + u] + bx[2 * units + u]);
                float o = ck_sigmoidf(ax[3 * units + u] + ah[3 * units + u] + bx[3 * units + u]);
                float cn = f * c[u] + i * g;
                c[u] = cn;
                hl[u] = o * ck_tanhf(cn);
            }
        } else if (s->cell == CK_CELL_GRU) {
            const float *bh = sh->bh[l];
            const float *hp = hOld + (long)l * Hp + sh->u0;
            CK_INDEPENDENT
            for (int u = 0; u < units; u++) {
                float r = ck_sigmoidf(ax[u] + bx[u] + ah[u] + bh[u]);
                float z = ck_sigmoidf(ax[units + u] + bx[units + u] + ah[units + u] + bh[units + u]);
                float n = ck_tanhf(ax[2 * units + u] + bx[2 * units + u] + r * (ah[2 * units + u] + bh[2 * units + u]));
                hl[u] = (1.0f - z) * n + z * hp[u];
            }
        } else {
            CK_INDEPENDENT
            for (int u = 0; u < units; u++) hl[u] = ck_tanhf(ax[u] + ah[u] + bx[u]);
        }
        ck_barrier(s, phase);
    }
    if (s->logits) {
        ck_rows_apply(&sh->out, hNew + (long)(s->layers - 1) * Hp, sh->xq, s->logits + sh->v0, level);
        for (int v = sh->v0; v < sh->v1; v++) s->logits[v] += s->outBias[v];
    }
}

CK_TARGET_V4 static void ck_stepper_work_v4(ck_stepper *s, int t, uint64_t *phase) {
    ck_stepper_work_impl(s, t, phase, 4);
}
CK_TARGET_V3 static void ck_stepper_work_v3(ck_stepper *s, int t, uint64_t *phase) {
    ck_stepper_work_impl(s, t, phase, 3);
}
static void ck_stepper_work_v1(ck_stepper *s, int t, uint64_t *phase) { ck_stepper_work_impl(s, t, phase, 1); }

// MARK: - Making a thread's share of the weights

// Thread t copies (and quantizes) the rows it will read, so that they are first touched, and
// placed, by the core that reads them; the threads do this side by side.
static int ck_share_fill(ck_stepper *s, int t) {
    const ck_stepper_desc *d = s->desc;
    ck_share *sh = &s->share[t];
    int gates = s->G / s->H, units = sh->u1 - sh->u0;
    sh->wx = ck_alloc(sizeof(ck_rows) * d->layers);
    sh->wh = ck_alloc(sizeof(ck_rows) * d->layers);
    sh->bx = ck_alloc(sizeof(float *) * d->layers);
    sh->bh = ck_alloc(sizeof(float *) * d->layers);
    sh->ax = ck_alloc(sizeof(float) * (gates * units + 1));
    sh->ah = ck_alloc(sizeof(float) * (gates * units + 1));
    sh->xq = ck_alloc(sizeof(int16_t) * (s->Xp > s->Hp ? s->Xp : s->Hp));
    if (!(sh->wx && sh->wh && sh->bx && sh->bh && sh->ax && sh->ah && sh->xq)) return 0;
    for (int l = 0; l < d->layers; l++) {
        int inputs = l == 0 ? (d->embedding > 0 ? d->embedding : 0) : d->hidden;
        const int8_t *wq = d->wihQ ? d->wihQ[l] : NULL, *hq = d->whhQ ? d->whhQ[l] : NULL;
        const float *ws = d->wihScale ? d->wihScale[l] : NULL, *hs = d->whhScale ? d->whhScale[l] : NULL;
        if (inputs > 0 && !ck_rows_fill(&sh->wx[l], d->precision, d->wih[l], ws ? wq : NULL, ws, inputs, inputs,
                                        ck_padded(inputs), gates, d->hidden, sh->u0, sh->u1)) {
            return 0;
        }
        if (!ck_rows_fill(&sh->wh[l], d->precision, d->whh[l], hs ? hq : NULL, hs, d->hidden, d->hidden, s->Hp, gates,
                          d->hidden, sh->u0, sh->u1)) {
            return 0;
        }
        sh->bx[l] = ck_alloc(sizeof(float) * (gates * units + 1));
        sh->bh[l] = ck_alloc(sizeof(float) * (gates * units + 1));
        if (!sh->bx[l] || !sh->bh[l]) return 0;
        for (int g = 0; g < gates; g++) {
            for (int u = 0; u < units; u++) {
                long row = (long)g * d->hidden + sh->u0 + u;
                float bi = d->bih[l][row], bh = d->bhh[l][row];
                if (d->cell == CK_CELL_GRU) {
                    sh->bx[l][g * units + u] = bi;
                    sh->bh[l][g * units + u] = bh;
                } else {
                    sh->bx[l][g * units + u] = bi + bh;
                }
            }
        }
    }
    return ck_rows_fill(&sh->out, d->precision, d->outWeight, d->outScale ? d->outQ : NULL, d->outScale, d->hidden,
                        d->hidden, s->Hp, 1, 0, sh->v0, sh->v1);
}

// Runs thread t's part of the current task, then waits for the others.
static void ck_stepper_work(ck_stepper *s, int t, uint64_t *phase) {
    if (s->filling) {
        s->share[t].ok = ck_share_fill(s, t);
    } else {
        switch (s->isa) {
        case CK_ISA_AVX512: ck_stepper_work_v4(s, t, phase); break;
        case CK_ISA_AVX2: ck_stepper_work_v3(s, t, phase); break;
        default: ck_stepper_work_v1(s, t, phase); break;
        }
    }
    ck_barrier(s, phase);
}

typedef struct {
    ck_stepper *s;
    int t;
} ck_worker_arg;

static void *ck_worker_main(void *p) {
    ck_worker_arg arg = *(ck_worker_arg *)p;
    free(p);
    ck_stepper *s = arg.s;
    unsigned seen = 0;
    uint64_t phase = 0;
    for (;;) {
        ck_wait_go(s, seen);
        seen = atomic_load(&s->go);
        if (atomic_load(&s->quit)) return NULL;
        ck_stepper_work(s, arg.t, &phase);
    }
}

// Runs the current task on every thread; thread 0 is the caller.
static void ck_stepper_run(ck_stepper *s) {
    uint64_t phase = atomic_load(&s->released);
    if (s->threads > 1) ck_wake(s);
    ck_stepper_work(s, 0, &phase);
}

// MARK: - Public API

ck_stepper *ck_stepper_create(const ck_stepper_desc *d) {
    if (d->layers < 1 || d->hidden < 1 || d->vocab < 1 || d->cell < 0 || d->cell > 2 || d->embedding < 0) return NULL;
    ck_stepper *s = ck_alloc(sizeof *s);
    if (!s) return NULL;
    int gates = d->cell == CK_CELL_LSTM ? 4 : d->cell == CK_CELL_GRU ? 3 : 1;
    s->cell = d->cell;
    s->layers = d->layers;
    s->V = d->vocab;
    s->E = d->embedding;
    s->H = d->hidden;
    s->Hp = ck_padded(d->hidden);
    s->G = gates * d->hidden;
    s->Xp = ck_padded(d->embedding > 0 ? d->embedding : 1);
    s->precision = d->precision;
    int threads = d->threads < 1 ? 1 : d->threads > CK_MAX_THREADS ? CK_MAX_THREADS : d->threads;
    // At least 16 units per thread: smaller slices cost more in barriers than they save.
    while (threads > 1 && d->hidden / threads < 16) threads--;
    s->threads = threads;
    s->h[0] = ck_alloc(sizeof(float) * (size_t)d->layers * s->Hp);
    s->h[1] = ck_alloc(sizeof(float) * (size_t)d->layers * s->Hp);
    s->c = d->cell == CK_CELL_LSTM ? ck_alloc(sizeof(float) * (size_t)d->layers * d->hidden) : NULL;
    s->outBias = ck_alloc(sizeof(float) * d->vocab);
    int ok = s->h[0] && s->h[1] && (s->c || d->cell != CK_CELL_LSTM) && s->outBias;
    if (ok) memcpy(s->outBias, d->outBias, sizeof(float) * d->vocab);
    if (ok && d->embedding > 0) {
        s->embedding = ck_alloc(sizeof(float) * (size_t)d->vocab * d->embedding);
        s->x0 = ck_alloc(sizeof(float) * s->Xp);
        ok = s->embedding && s->x0;
        if (ok) memcpy(s->embedding, d->embeddingWeight, sizeof(float) * (size_t)d->vocab * d->embedding);
    } else if (ok) {
        s->table = ck_alloc(sizeof(float) * (size_t)d->vocab * s->G);
        ok = s->table != NULL;
        for (int g = 0; ok && g < s->G; g++) {
            for (int v = 0; v < d->vocab; v++) s->table[(long)v * s->G + g] = d->wih[0][(long)g * d->vocab + v];
        }
    }
    // Units split in multiples of 16 where possible, output rows evenly.
    int chunks = (d->hidden + 15) / 16;
    for (int t = 0; t < threads; t++) {
        ck_share *sh = &s->share[t];
        int c0 = chunks * t / threads, c1 = chunks * (t + 1) / threads;
        sh->u0 = c0 * 16 < d->hidden ? c0 * 16 : d->hidden;
        sh->u1 = c1 * 16 < d->hidden ? c1 * 16 : d->hidden;
        sh->v0 = (int)((long)d->vocab * t / threads);
        sh->v1 = (int)((long)d->vocab * (t + 1) / threads);
    }
    for (int t = 1; ok && t < threads; t++) {
        ck_worker_arg *arg = malloc(sizeof *arg);
        if (!arg) {
            ok = 0;
            break;
        }
        arg->s = s;
        arg->t = t;
        if (pthread_create(&s->workers[t], NULL, ck_worker_main, arg) != 0) {
            free(arg);
            ok = 0;
            break;
        }
        s->started = t;
    }
    if (ok) {
        s->desc = d;
        s->filling = 1;
        ck_stepper_run(s);
        s->filling = 0;
        s->desc = NULL;
        for (int t = 0; t < threads; t++) ok = ok && s->share[t].ok;
    }
    if (!ok) {
        ck_stepper_destroy(s);
        return NULL;
    }
    return s;
}

void ck_stepper_destroy(ck_stepper *s) {
    if (!s) return;
    if (s->started > 0) {
        atomic_store(&s->quit, 1);
        ck_wake(s);
        for (int t = 1; t <= s->started; t++) pthread_join(s->workers[t], NULL);
    }
    for (int t = 0; t < s->threads; t++) {
        ck_share *sh = &s->share[t];
        for (int l = 0; sh->wx && sh->wh && l < s->layers; l++) {
            ck_rows_free(&sh->wx[l]);
            ck_rows_free(&sh->wh[l]);
            if (sh->bx) free(sh->bx[l]);
            if (sh->bh) free(sh->bh[l]);
        }
        ck_rows_free(&sh->out);
        free(sh->wx);
        free(sh->wh);
        free(sh->bx);
        free(sh->bh);
        free(sh->ax);
        free(sh->ah);
        free(sh->xq);
    }
    free(s->h[0]);
    free(s->h[1]);
    free(s->c);
    free(s->outBias);
    free(s->table);
    free(s->embedding);
    free(s->x0);
    free(s);
}

int ck_stepper_threads(const ck_stepper *s) { return s->threads; }

size_t ck_stepper_weight_bytes(const ck_stepper *s) {
    size_t total = 0;
    for (int t = 0; t < s->threads; t++) {
        const ck_share *sh = &s->share[t];
        for (int l = 0; l < s->layers; l++) {
            const ck_rows *m[2] = {&sh->wx[l], &sh->wh[l]};
            for (int i = 0; i < 2; i++) {
                size_t element = m[i]->q ? 1 : sizeof(float);
                total += (size_t)m[i]->rows * m[i]->K * element + (m[i]->q ? sizeof(float) * m[i]->rows : 0);
            }
        }
        total += (size_t)sh->out.rows * sh->out.K * (sh->out.q ? 1 : sizeof(float));
    }
    return total;
}

void ck_stepper_set_state(ck_stepper *s, const float *h, const float *c) {
    float *cur = s->h[s->parity];
    for (int l = 0; l < s->layers; l++) memcpy(cur + (long)l * s->Hp, h + (long)l * s->H, sizeof(float) * s->H);
    if (s->c && c) memcpy(s->c, c, sizeof(float) * (size_t)s->layers * s->H);
}

void ck_stepper_get_state(const ck_stepper *s, float *h, float *c) {
    const float *cur = s->h[s->parity];
    for (int l = 0; l < s->layers; l++) memcpy(h + (long)l * s->H, cur + (long)l * s->Hp, sizeof(float) * s->H);
    if (s->c && c) memcpy(c, s->c, sizeof(float) * (size_t)s->layers * s->H);
}

void ck_stepper_step(ck_stepper *s, int id, float *logits) {
    s->id = id;
    s->logits = logits;
    s->isa = ck_isa();
    if (s->x0) memcpy(s->x0, s->embedding + (long)id * s->E, sizeof(float) * s->E);
    ck_stepper_run(s);
    s->parity ^= 1;
}
