// CKernels: the few hot loops of charlm's neural code, in C so that they vectorize with
// runtime dispatch on the CPU's instruction set and need no build flags.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Instruction sets

enum { CK_ISA_GENERIC = 0, CK_ISA_AVX2 = 1, CK_ISA_AVX512 = 2 };

/// The best instruction set this CPU supports.
int ck_isa_detected(void);
/// The instruction set the kernels use (detected unless forced).
int ck_isa(void);
/// Forces a lower instruction set on the calling thread (for tests); a negative or unsupported
/// value restores detection. Returns the set now in use on this thread. CharNN's worker threads
/// take on the forced set of the thread that hands them work.
int ck_force_isa(int isa);
/// The set forced on the calling thread, or -1 when none is.
int ck_isa_forced_on_thread(void);
const char *ck_isa_name(int isa);
/// Forces the weight-gradient products on the calling thread onto OpenBLAS (1) or the packed
/// kernel (0); a negative value restores charlm's choice. Workers take it on like a forced ISA.
void ck_force_weight_gradients(int openBLAS);
/// The route forced on the calling thread, or -1 when none is.
int ck_weight_gradients_forced(void);

// MARK: - Products against a packed right-hand operand

/// Columns per packed panel for an instruction set.
int ck_gemm_panel_width(int isa);
/// Number of floats a packed K x N operand occupies.
size_t ck_packed_size(int isa, int K, int N);
/// Packs B (K x N), element (k, n) at B[k * rowStride + n * colStride], for `isa`'s kernel.
void ck_pack(int isa, int K, int N, const float *B, long rowStride, long colStride, float *packed);
/// C (M x N, row stride ldc) = or += A (M x K, row stride lda) * packed B, with the kernel of
/// the instruction set the operand was packed for.
void ck_gemm_packed(int isa, int M, int N, int K, const float *A, int lda,
                    const float *packed, float *C, int ldc, int accumulate);
/// Whether `ck_gemm_packed` takes its K-blocked path for this shape. Each element of C is one
/// chain of fused multiply-adds over k in order (on the FMA kernels); the chain starts from
/// zero and C is added at the end when accumulating, except on the blocked path, where an
/// accumulating chain starts from C.
int ck_gemm_blocked(int isa, int M, int N, int K);
/// Forces the blocked path on (1) or off (0) for every shape on the calling thread, on the
/// FMA instruction sets (for tests); a negative value restores the rule.
void ck_force_blocked(int blocked);


// MARK: - OpenBLAS kernel selection

enum {
    CK_BLAS_KEPT = 0,          // the library's own choice was already a tuned kernel
    CK_BLAS_RESELECTED = 1,    // a generic fallback was replaced by a tuned kernel
    CK_BLAS_USER_CHOICE = 2,   // OPENBLAS_CORETYPE is set: left alone
    CK_BLAS_UNAVAILABLE = 3,   // not a DYNAMIC_ARCH OpenBLAS: nothing to choose
};

/// The OpenBLAS kernel table in use, or NULL with another BLAS.
const char *ck_blas_core_name(void);
/// The table OpenBLAS chose by itself when it loaded, or NULL with another BLAS.
const char *ck_blas_core_at_load(void);
/// What charlm did about that table while the program loaded (a generic fallback is replaced
/// by the tuned table unless the user set OPENBLAS_CORETYPE): one of the CK_BLAS_ values.
int ck_blas_selection(void);
/// Makes OpenBLAS compute every call on the calling thread and stops its idle worker pool.
void ck_blas_use_caller_thread_only(void);

// MARK: - Recurrent cells, one time step (rows of B, gate blocks H wide, PyTorch gate order)

/// gates (B, 4H): pre-activations [i|f|g|o] in, activations out; c, tanhC, h: (B, H).
void ck_lstm_forward(int B, int H, float *gates, const float *cPrev, float *c, float *tanhC, float *h);
/// dc (B, H): the cell gradient from step t+1 in, the one for step t-1 out; dgates (B, 4H) out.
void ck_lstm_backward(int B, int H, const float *acts, const float *cPrev, const float *tanhC,
                      const float *dh, float *dc, float *dgates);
/// gx (B, 3H): W_ih x + b_ih in, activations [r|z|n] out; gh (B, 3H): W_hh h + b_hh.
void ck_gru_forward(int B, int H, float *gx, const float *gh, const float *hPrev, float *h);
/// dgx, dgh (B, 3H): gradients of the two pre-activation sums; dhPrev (B, H) += the direct path dh*z.
void ck_gru_backward(int B, int H, const float *acts, const float *gh, const float *hPrev,
                     const float *dh, float *dgx, float *dgh, float *dhPrev);
void ck_tanh(long n, const float *x, float *y);
void ck_exp(long n, const float *x, float *y);
void ck_sigmoid(long n, const float *x, float *y);
void ck_tanh_backward(long n, const float *y, const float *dy, float *dx);

// MARK: - Single-stream steps (generation)

enum { CK_CELL_LSTM = 0, CK_CELL_GRU = 1, CK_CELL_RNN = 2 };
enum { CK_PRECISION_F32 = 0, CK_PRECISION_INT8 = 1 };

/// Per-row int8 quantization of `rows` rows of K floats (row stride ld): scale[r] = max|row| / 127
/// (1 for a zero row), q[r][k] = round(w / scale[r]) (row stride ldq).
void ck_quantize_rows(int rows, int K, const float *w, long ld, int8_t *q, long ldq, float *scale);
/// Replaces each row of w (rows x K) by the values its int8 quantization represents (q * scale):
/// float32 weights that compute what the int8 ones do.
void ck_round_rows_to_int8(int rows, int K, float *w);

/// A network's weights as PyTorch lays them out (weight_ih_l{k} is (G, inputs), row-major).
typedef struct {
    int cell;           // CK_CELL_
    int layers, vocab, hidden;
    int embedding;      // width of the input embedding, or 0: one-hot inputs
    int precision;      // CK_PRECISION_
    int threads;        // threads for one stream (the caller's included)
    const float *embeddingWeight;  // (vocab, embedding) or NULL
    const float *const *wih, *const *whh, *const *bih, *const *bhh;  // per layer
    const float *outWeight, *outBias;  // (vocab, hidden), (vocab)
    // With CK_PRECISION_INT8, optionally the dense matrices already quantized by
    // ck_quantize_rows (rows row-major, unpadded, and one scale per row): they are then copied
    // instead of quantized, and the float32 pointers of those matrices are not read. NULL
    // arrays, or a NULL entry, mean quantize from float32. wih[0] of one-hot inputs stays
    // float32 either way.
    const int8_t *const *wihQ, *const *whhQ;       // per layer
    const float *const *wihScale, *const *whhScale;
    const int8_t *outQ;
    const float *outScale;
} ck_stepper_desc;

typedef struct ck_stepper ck_stepper;

/// Copies (and, for int8, quantizes) the weights; starts the worker threads. NULL when memory
/// or a thread cannot be had, or the description is invalid.
ck_stepper *ck_stepper_create(const ck_stepper_desc *desc);
void ck_stepper_destroy(ck_stepper *stepper);
/// Threads actually used (fewer than asked when the hidden size is small).
int ck_stepper_threads(const ck_stepper *stepper);
/// Bytes of weights read per step.
size_t ck_stepper_weight_bytes(const ck_stepper *stepper);
/// The state, (layers, hidden) each; c only for an LSTM (NULL otherwise).
void ck_stepper_set_state(ck_stepper *stepper, const float *h, const float *c);
void ck_stepper_get_state(const ck_stepper *stepper, float *h, float *c);
/// Feeds one id (0 <= id < vocab, unchecked) and, when `logits` is not NULL, writes the
/// next-id logits (vocab floats). Not thread-safe: one caller at a time.
void ck_stepper_step(ck_stepper *stepper, int id, float *logits);

// MARK: - Softmax

/// Cross-entropy of each row against its target, summed (nats). The logits are replaced by
/// gradScale * (softmax - onehot(target)).
double ck_softmax_xent(int rows, int V, float *logits, const int *targets, float gradScale);

/// ck_softmax_xent with each row's softmax over the outputs its input allows:
/// allowed[inputs[r] * V + j] != 0. The others get probability and gradient 0. Every target
/// must be allowed for its input.
double ck_softmax_xent_masked(
    int rows, int V, float *logits, const int *targets, const int *inputs, const unsigned char *allowed,
    float gradScale);

// MARK: - Vector loops

void ck_add(long n, const float *x, float *y);
void ck_scale(long n, float a, float *x);
void ck_mul(long n, const float *x, const float *m, float *y);
double ck_sumsq(long n, const float *x);
int ck_all_finite(long n, const float *x);
/// out[j] += sum over rows of x[r * ld + j].
void ck_colsum_add(int rows, int cols, const float *x, int ld, float *out);
/// out[r] = row for every r.
void ck_fill_rows(int rows, int cols, const float *row, float *out);
/// out[i] = table[ids[i]] + bias (rows of `cols` floats).
void ck_gather_rows(int n, const int *ids, const float *table, int cols, const float *bias, float *out);
/// table[ids[i]] += rows[i].
void ck_scatter_add_rows(int n, const int *ids, const float *rows, int cols, float *table);
/// y (cols x rows) = transpose of x (rows x cols, row stride ldx).
void ck_transpose(int rows, int cols, const float *x, long ldx, float *y);
/// y (cols x rows) += transpose of x (rows x cols).
void ck_transpose_add(int rows, int cols, const float *x, float *y);
/// mask[i] = 0 with probability p, else 1/(1-p); element i's draw depends only on (key, offset + i),
/// both 64-bit, so that no two elements of a run share a draw.
void ck_dropout_mask(long n, uint64_t key, uint64_t offset, float p, float *mask);

// MARK: - Optimizer updates (PyTorch's formulas)

void ck_adam(long n, float *param, const float *grad, float *m, float *v,
             float lr, float beta1, float beta2, float eps, float weightDecay, int decoupled,
             float stepSize, float biasCorrection2Sqrt);
/// gradAvg (centered) and buf (momentum) may be NULL.
void ck_rmsprop(long n, float *param, const float *grad, float *squareAvg, float *gradAvg, float *buf,
                float lr, float alpha, float eps, float weightDecay, float momentum);
/// buf may be NULL (no momentum).
void ck_sgd(long n, float *param, const float *grad, float *buf, float lr, float momentum,
            float dampening, float weightDecay, int nesterov, int firstStep);

#ifdef __cplusplus
}
#endif
