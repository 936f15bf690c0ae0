// Elementwise halves of the recurrent cells: one time step for a batch of B rows.
// Gate layouts follow PyTorch: LSTM rows hold [i | f | g | o], GRU rows hold [r | z | n],
// each block H wide. Matrix products are done by the caller.

#include "CKernels.h"
#include "vecmath.h"

// MARK: - LSTM

CK_VOID_KERNEL(ck_lstm_forward, (int B, int H, float *gates, const float *cPrev, float *c, float *tanhC, float *h),
               (B, H, gates, cPrev, c, tanhC, h)) {
    for (int b = 0; b < B; b++) {
        // The four gate blocks are disjoint: restrict lets the loop vectorize in place.
        float *restrict gi = gates + (long)b * 4 * H, *restrict gf = gi + H;
        float *restrict gu = gi + 2 * H, *restrict go = gi + 3 * H;
        const float *restrict cp = cPrev + (long)b * H;
        float *restrict cn = c + (long)b * H, *restrict tc = tanhC + (long)b * H, *restrict hn = h + (long)b * H;
        CK_INDEPENDENT
        for (int j = 0; j < H; j++) {
            float i = ck_sigmoidf(gi[j]);
            float f = ck_sigmoidf(gf[j]);
            float u = ck_tanhf(gu[j]);
            float o = ck_sigmoidf(go[j]);
            float cj = f * cp[j] + i * u;
            float t = ck_tanhf(cj);
            gi[j] = i; gf[j] = f; gu[j] = u; go[j] = o;
            cn[j] = cj; tc[j] = t; hn[j] = o * t;
        }
    }
}

CK_VOID_KERNEL(ck_lstm_backward, (int B, int H, const float *acts, const float *cPrev, const float *tanhC,
                                  const float *dh, float *dc, float *dgates),
               (B, H, acts, cPrev, tanhC, dh, dc, dgates)) {
    for (int b = 0; b < B; b++) {
        const float *restrict ai = acts + (long)b * 4 * H, *restrict af = ai + H;
        const float *restrict au = ai + 2 * H, *restrict ao = ai + 3 * H;
        const float *restrict cp = cPrev + (long)b * H, *restrict tc = tanhC + (long)b * H;
        const float *restrict dhb = dh + (long)b * H;
        float *restrict dcb = dc + (long)b * H;
        float *restrict di = dgates + (long)b * 4 * H, *restrict df = di + H;
        float *restrict du = di + 2 * H, *restrict dout = di + 3 * H;
        CK_INDEPENDENT
        for (int j = 0; j < H; j++) {
            float i = ai[j], f = af[j], u = au[j], o = ao[j];
            float t = tc[j], d = dhb[j];
            float dcj = dcb[j] + d * o * (1.0f - t * t);
            di[j] = dcj * u * i * (1.0f - i);
            df[j] = dcj * cp[j] * f * (1.0f - f);
            du[j] = dcj * i * (1.0f - u * u);
            dout[j] = d * t * o * (1.0f - o);
            dcb[j] = dcj * f;
        }
    }
}

// MARK: - GRU

CK_VOID_KERNEL(ck_gru_forward, (int B, int H, float *gx, const float *gh, const float *hPrev, float *h),
               (B, H, gx, gh, hPrev, h)) {
    for (int b = 0; b < B; b++) {
        float *restrict xr = gx + (long)b * 3 * H, *restrict xz = xr + H, *restrict xn = xr + 2 * H;
        const float *restrict hr = gh + (long)b * 3 * H, *restrict hz = hr + H, *restrict hn_ = hr + 2 * H;
        const float *restrict hp = hPrev + (long)b * H;
        float *restrict out = h + (long)b * H;
        CK_INDEPENDENT
        for (int j = 0; j < H; j++) {
            float r = ck_sigmoidf(xr[j] + hr[j]);
            float z = ck_sigmoidf(xz[j] + hz[j]);
            float n = ck_tanhf(xn[j] + r * hn_[j]);
            xr[j] = r; xz[j] = z; xn[j] = n;
            out[j] = (1.0f - z) * n + z * hp[j];
        }
    }
}

CK_VOID_KERNEL(ck_gru_backward, (int B, int H, const float *acts, const float *gh, const float *hPrev,
                                 const float *dh, float *dgx, float *dgh, float *dhPrev),
               (B, H, acts, gh, hPrev, dh, dgx, dgh, dhPrev)) {
    for (int b = 0; b < B; b++) {
        const float *restrict ar = acts + (long)b * 3 * H, *restrict az = ar + H, *restrict an = ar + 2 * H;
        const float *restrict hn_ = gh + (long)b * 3 * H + 2 * H;
        const float *restrict hp = hPrev + (long)b * H, *restrict d = dh + (long)b * H;
        float *restrict dxr = dgx + (long)b * 3 * H, *restrict dxz = dxr + H, *restrict dxn = dxr + 2 * H;
        float *restrict dhr = dgh + (long)b * 3 * H, *restrict dhz = dhr + H, *restrict dhn = dhr + 2 * H;
        float *restrict dp = dhPrev + (long)b * H;
        CK_INDEPENDENT
        for (int j = 0; j < H; j++) {
            float r = ar[j], z = az[j], n = an[j];
            float dn = d[j] * (1.0f - z) * (1.0f - n * n);
            float dz = d[j] * (hp[j] - n) * z * (1.0f - z);
            float dr = dn * hn_[j] * r * (1.0f - r);
            dxr[j] = dr; dxz[j] = dz; dxn[j] = dn;
            dhr[j] = dr; dhz[j] = dz; dhn[j] = dn * r;
            dp[j] += d[j] * z;
        }
    }
}

// MARK: - Plain tanh RNN

CK_VOID_KERNEL(ck_tanh, (long n, const float *x, float *y),
               (n, x, y)) {
    CK_INDEPENDENT
    for (long i = 0; i < n; i++) y[i] = ck_tanhf(x[i]);
}

CK_VOID_KERNEL(ck_tanh_backward, (long n, const float *y, const float *dy, float *dx),
               (n, y, dy, dx)) {
    CK_INDEPENDENT
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

/// ck_softmax_xent over the outputs each row's input allows: row r's softmax runs over the j
/// with allowed[inputs[r] * V + j] != 0 (its target among them), the others get probability
/// and gradient exactly 0. For labelling, where an input character can only become one of its
/// candidates.
CK_KERNEL(double, ck_softmax_xent_masked,
          (int rows, int V, float *logits, const int *targets, const int *inputs, const unsigned char *allowed,
           float gradScale),
          (rows, V, logits, targets, inputs, allowed, gradScale)) {
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        float *x = logits + (long)r * V;
        const unsigned char *a = allowed + (long)inputs[r] * V;
        int t = targets[r];
        float xt = x[t];
        float m = xt;
        for (int j = 0; j < V; j++) m = a[j] && x[j] > m ? x[j] : m;
        float s = 0.0f;
        for (int j = 0; j < V; j++) {
            x[j] = a[j] ? ck_expf(x[j] - m) : 0.0f;
            s += x[j];
        }
        total += (double)m + __builtin_log((double)s) - (double)xt;
        float k = gradScale / s;
        for (int j = 0; j < V; j++) x[j] *= k;
        x[t] -= gradScale;
    }
    return total;
}

// MARK: - Plain functions (tests and sampling)

CK_VOID_KERNEL(ck_exp, (long n, const float *x, float *y),
               (n, x, y)) {
    CK_INDEPENDENT
    for (long i = 0; i < n; i++) y[i] = ck_expf(x[i]);
}

CK_VOID_KERNEL(ck_sigmoid, (long n, const float *x, float *y),
               (n, x, y)) {
    CK_INDEPENDENT
    for (long i = 0; i < n; i++) y[i] = ck_sigmoidf(x[i]);
}
