// Elementwise halves of the recurrent cells: one time step for a batch of B rows.
// Gate layouts follow PyTorch: LSTM rows hold [i | f | g | o], GRU rows hold [r | z | n],
// each block H wide. Matrix products are done by the caller.

#include "CKernels.h"
#include "vecmath.h"

// MARK: - LSTM

CK_VOID_KERNEL(ck_lstm_forward, (int B, int H, float *gates, const float *cPrev, float *c, float *tanhC, float *h),
               (B, H, gates, cPrev, c, tanhC, h)) {
    for (int b = 0; b < B; b++) {
        float *g = gates + (long)b * 4 * H;
        const float *cp = cPrev + (long)b * H;
        float *cn = c + (long)b * H, *tc = tanhC + (long)b * H, *hn = h + (long)b * H;
        for (int j = 0; j < H; j++) {
            float i = ck_sigmoidf(g[j]);
            float f = ck_sigmoidf(g[H + j]);
            float u = ck_tanhf(g[2 * H + j]);
            float o = ck_sigmoidf(g[3 * H + j]);
            float cj = f * cp[j] + i * u;
            float t = ck_tanhf(cj);
            g[j] = i; g[H + j] = f; g[2 * H + j] = u; g[3 * H + j] = o;
            cn[j] = cj; tc[j] = t; hn[j] = o * t;
        }
    }
}

CK_VOID_KERNEL(ck_lstm_backward, (int B, int H, const float *acts, const float *cPrev, const float *tanhC,
                      const float *dh, float *dc, float *dgates),
               (B, H, acts, cPrev, tanhC, dh, dc, dgates)) {
    for (int b = 0; b < B; b++) {
        const float *a = acts + (long)b * 4 * H;
        const float *cp = cPrev + (long)b * H, *tc = tanhC + (long)b * H, *dhb = dh + (long)b * H;
        float *dcb = dc + (long)b * H, *dg = dgates + (long)b * 4 * H;
        for (int j = 0; j < H; j++) {
            float i = a[j], f = a[H + j], u = a[2 * H + j], o = a[3 * H + j];
            float t = tc[j], d = dhb[j];
            float dcj = dcb[j] + d * o * (1.0f - t * t);
            dg[j] = dcj * u * i * (1.0f - i);
            dg[H + j] = dcj * cp[j] * f * (1.0f - f);
            dg[2 * H + j] = dcj * i * (1.0f - u * u);
            dg[3 * H + j] = d * t * o * (1.0f - o);
            dcb[j] = dcj * f;
        }
    }
}

// MARK: - GRU

CK_VOID_KERNEL(ck_gru_forward, (int B, int H, float *gx, const float *gh, const float *hPrev, float *h),
               (B, H, gx, gh, hPrev, h)) {
    for (int b = 0; b < B; b++) {
        float *x = gx + (long)b * 3 * H;
        const float *r_h = gh + (long)b * 3 * H;
        const float *hp = hPrev + (long)b * H;
        float *hn = h + (long)b * H;
        for (int j = 0; j < H; j++) {
            float r = ck_sigmoidf(x[j] + r_h[j]);
            float z = ck_sigmoidf(x[H + j] + r_h[H + j]);
            float n = ck_tanhf(x[2 * H + j] + r * r_h[2 * H + j]);
            x[j] = r; x[H + j] = z; x[2 * H + j] = n;
            hn[j] = (1.0f - z) * n + z * hp[j];
        }
    }
}

CK_VOID_KERNEL(ck_gru_backward, (int B, int H, const float *acts, const float *gh, const float *hPrev,
                     const float *dh, float *dgx, float *dgh, float *dhPrev),
               (B, H, acts, gh, hPrev, dh, dgx, dgh, dhPrev)) {
    for (int b = 0; b < B; b++) {
        const float *a = acts + (long)b * 3 * H, *r_h = gh + (long)b * 3 * H;
        const float *hp = hPrev + (long)b * H, *d = dh + (long)b * H;
        float *dx = dgx + (long)b * 3 * H, *dr_h = dgh + (long)b * 3 * H, *dp = dhPrev + (long)b * H;
        for (int j = 0; j < H; j++) {
            float r = a[j], z = a[H + j], n = a[2 * H + j];
            float dn = d[j] * (1.0f - z) * (1.0f - n * n);
            float dz = d[j] * (hp[j] - n) * z * (1.0f - z);
            float dr = dn * r_h[2 * H + j] * r * (1.0f - r);
            dx[j] = dr; dx[H + j] = dz; dx[2 * H + j] = dn;
            dr_h[j] = dr; dr_h[H + j] = dz; dr_h[2 * H + j] = dn * r;
            dp[j] += d[j] * z;
        }
    }
}

// MARK: - Plain tanh RNN

CK_VOID_KERNEL(ck_tanh, (long n, const float *x, float *y),
               (n, x, y)) {
    for (long i = 0; i < n; i++) y[i] = ck_tanhf(x[i]);
}

CK_VOID_KERNEL(ck_tanh_backward, (long n, const float *y, const float *dy, float *dx),
               (n, y, dy, dx)) {
    for (long i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

// MARK: - Softmax cross-entropy

CK_KERNEL(double, ck_softmax_xent, (int rows, int V, float *logits, const int *targets, float gradScale),
          (rows, V, logits, targets, gradScale)) {
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        float *x = logits + (long)r * V;
        int t = targets[r];
        float xt = x[t];
        float m = x[0];
        for (int j = 1; j < V; j++) m = x[j] > m ? x[j] : m;
        for (int j = 0; j < V; j++) x[j] = ck_expf(x[j] - m);
        float s = 0.0f;
        for (int j = 0; j < V; j++) s += x[j];
        total += (double)m + __builtin_log((double)s) - (double)xt;
        float k = gradScale / s;
        for (int j = 0; j < V; j++) x[j] *= k;
        x[t] -= gradScale;
    }
    return total;
}

CK_VOID_KERNEL(ck_softmax, (int V, const float *logits, float invTemperature, float *probs),
               (V, logits, invTemperature, probs)) {
    float m = logits[0];
    for (int j = 1; j < V; j++) m = logits[j] > m ? logits[j] : m;
    for (int j = 0; j < V; j++) probs[j] = ck_expf((logits[j] - m) * invTemperature);
    float s = 0.0f;
    for (int j = 0; j < V; j++) s += probs[j];
    float k = 1.0f / s;
    for (int j = 0; j < V; j++) probs[j] *= k;
}

// MARK: - Plain functions (tests and sampling)

CK_VOID_KERNEL(ck_exp, (long n, const float *x, float *y),
               (n, x, y)) {
    for (long i = 0; i < n; i++) y[i] = ck_expf(x[i]);
}

CK_VOID_KERNEL(ck_sigmoid, (long n, const float *x, float *y),
               (n, x, y)) {
    for (long i = 0; i < n; i++) y[i] = ck_sigmoidf(x[i]);
}
