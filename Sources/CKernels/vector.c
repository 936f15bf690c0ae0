// Vector loops over flat float buffers: accumulation, reductions, gathers, dropout masks and
// the optimizer updates (written to match PyTorch's single-tensor implementations).

#include "CKernels.h"
#include "vecmath.h"

// MARK: - Arithmetic

CK_VOID_KERNEL(ck_add, (long n, const float *x, float *y),
               (n, x, y)) {
    for (long i = 0; i < n; i++) y[i] += x[i];
}

CK_VOID_KERNEL(ck_scale, (long n, float a, float *x),
               (n, a, x)) {
    for (long i = 0; i < n; i++) x[i] *= a;
}

CK_VOID_KERNEL(ck_mul, (long n, const float *x, const float *m, float *y),
               (n, x, m, y)) {
    for (long i = 0; i < n; i++) y[i] = x[i] * m[i];
}

// MARK: - Reductions

CK_KERNEL(double, ck_sumsq, (long n, const float *x),
          (n, x)) {
    double total = 0.0;
    long i = 0;
    while (i < n) {
        long end = n - i > 4096 ? i + 4096 : n;
        float lanes[16] = {0};
        long j = i;
        for (; j + 16 <= end; j += 16) {
            for (int k = 0; k < 16; k++) lanes[k] += x[j + k] * x[j + k];
        }
        double block = 0.0;
        for (int k = 0; k < 16; k++) block += lanes[k];
        for (; j < end; j++) block += (double)x[j] * x[j];
        total += block;
        i = end;
    }
    return total;
}

CK_KERNEL(int, ck_all_finite, (long n, const float *x),
          (n, x)) {
    uint32_t bad = 0;
    for (long i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bad |= ((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

CK_VOID_KERNEL(ck_colsum_add, (int rows, int cols, const float *x, int ld, float *out),
               (rows, cols, x, ld, out)) {
    for (int r = 0; r < rows; r++) {
        const float *row = x + (long)r * ld;
        for (int j = 0; j < cols; j++) out[j] += row[j];
    }
}

// MARK: - Gather and scatter (one-hot products)

CK_VOID_KERNEL(ck_fill_rows, (int rows, int cols, const float *row, float *out),
               (rows, cols, row, out)) {
    for (int r = 0; r < rows; r++) {
        float *dst = out + (long)r * cols;
        for (int j = 0; j < cols; j++) dst[j] = row[j];
    }
}

CK_VOID_KERNEL(ck_gather_rows, (int n, const int *ids, const float *table, int cols, const float *bias, float *out),
               (n, ids, table, cols, bias, out)) {
    for (int i = 0; i < n; i++) {
        const float *src = table + (long)ids[i] * cols;
        float *dst = out + (long)i * cols;
        for (int j = 0; j < cols; j++) dst[j] = src[j] + bias[j];
    }
}

CK_VOID_KERNEL(ck_scatter_add_rows, (int n, const int *ids, const float *rows, int cols, float *table),
               (n, ids, rows, cols, table)) {
    for (int i = 0; i < n; i++) {
        const float *src = rows + (long)i * cols;
        float *dst = table + (long)ids[i] * cols;
        for (int j = 0; j < cols; j++) dst[j] += src[j];
    }
}

CK_VOID_KERNEL(ck_transpose, (int rows, int cols, const float *x, long ldx, float *y),
               (rows, cols, x, ldx, y)) {
    // 16 x 16 tiles: each tile's source rows and destination rows stay in cache.
    for (int r0 = 0; r0 < rows; r0 += 16) {
        int r1 = r0 + 16 < rows ? r0 + 16 : rows;
        for (int c0 = 0; c0 < cols; c0 += 16) {
            int c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (int c = c0; c < c1; c++) {
                for (int r = r0; r < r1; r++) y[(long)c * rows + r] = x[(long)r * ldx + c];
            }
        }
    }
}

CK_VOID_KERNEL(ck_transpose_add, (int rows, int cols, const float *x, float *y),
               (rows, cols, x, y)) {
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) y[(long)c * rows + r] += x[(long)r * cols + c];
    }
}

// MARK: - Dropout

// A 64-bit mixer (splitmix64's finaliser): every output bit depends on every input bit.
static inline uint64_t ck_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

CK_VOID_KERNEL(ck_dropout_mask, (long n, uint64_t key, uint64_t offset, float p, float *mask),
               (n, key, offset, p, mask)) {
    float keep = 1.0f / (1.0f - p);
    uint32_t threshold = (uint32_t)((double)p * 16777216.0);
    for (long i = 0; i < n; i++) {
        uint64_t h = ck_mix64(ck_mix64(offset + (uint64_t)i) ^ key);
        mask[i] = (uint32_t)(h >> 40) >= threshold ? keep : 0.0f;
    }
}

// MARK: - Optimizers

CK_VOID_KERNEL(ck_adam, (long n, float *param, const float *grad, float *m, float *v,
             float lr, float beta1, float beta2, float eps, float weightDecay, int decoupled,
             float stepSize, float biasCorrection2Sqrt),
               (n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, decoupled, stepSize, biasCorrection2Sqrt)) {
    for (long i = 0; i < n; i++) {
        float g = grad[i];
        float p = param[i];
        if (decoupled) p *= 1.0f - lr * weightDecay;
        else g += weightDecay * p;
        float mi = m[i] + (1.0f - beta1) * (g - m[i]);
        float vi = v[i] * beta2 + (1.0f - beta2) * (g * g);
        float denom = CK_SQRT(vi) / biasCorrection2Sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - stepSize * (mi / denom);
    }
}

CK_VOID_KERNEL(ck_rmsprop, (long n, float *param, const float *grad, float *squareAvg, float *gradAvg, float *buf,
                float lr, float alpha, float eps, float weightDecay, float momentum),
               (n, param, grad, squareAvg, gradAvg, buf, lr, alpha, eps, weightDecay, momentum)) {
    for (long i = 0; i < n; i++) {
        float g = grad[i] + weightDecay * param[i];
        float sa = squareAvg[i] * alpha + (1.0f - alpha) * (g * g);
        squareAvg[i] = sa;
        float avg;
        if (gradAvg) {
            float ga = gradAvg[i] + (1.0f - alpha) * (g - gradAvg[i]);
            gradAvg[i] = ga;
            avg = CK_SQRT(sa - ga * ga) + eps;
        } else {
            avg = CK_SQRT(sa) + eps;
        }
        if (buf) {
            float b = buf[i] * momentum + g / avg;
            buf[i] = b;
            param[i] -= lr * b;
        } else {
            param[i] -= lr * (g / avg);
        }
    }
}

CK_VOID_KERNEL(ck_sgd, (long n, float *param, const float *grad, float *buf, float lr, float momentum,
            float dampening, float weightDecay, int nesterov, int firstStep),
               (n, param, grad, buf, lr, momentum, dampening, weightDecay, nesterov, firstStep)) {
    for (long i = 0; i < n; i++) {
        float g = grad[i] + weightDecay * param[i];
        if (buf) {
            float b = firstStep ? g : buf[i] * momentum + (1.0f - dampening) * g;
            buf[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        param[i] -= lr * g;
    }
}
