/* The lines CNN's forward and backward for a population, one member at a time, in C.
 *
 * linesweep/run/native.py compiles this file once per machine (the C compiler, no torch headers)
 * and calls `lines_step` through ctypes; linesweep/run/step.py's layers in torch are the
 * fallback and the reference (tests/test_native_step.py checks one against the other).
 *
 * Why: in torch, each layer is a pass over all R members' activations, megabytes at R = 256,
 * read and written a dozen times a step. Here a member's whole forward and backward runs in a
 * scratch buffer of a few kilobytes that stays in the core's cache, and only the parameters,
 * gradients and images stream through memory.
 *
 * Layout, per member: activations (C, H, W, B), the images innermost, as the torch step keeps
 * them; with stride 1 across, a row of a window's tap is then one contiguous run of Wo*B floats
 * in both the input and the output, which the compiler vectorises. Parameters are one row per
 * member in torch's layout and `named_parameters` order: conv1 weight (C1, C0, kh, kw) and bias,
 * conv2 weight (C2, C1, kh, kw) and bias, fc weight (K, F) and bias, F = C2*P2h*P2w.
 *
 * Semantics are torch's: zero padding for the convolutions, padding that never wins for the
 * pooling (torch pads with -inf), a window's maximum at its first largest pixel in scan order
 * (rows, then columns), ReLU's gradient except where its output is 0 (a NaN passes it, as in
 * torch), and the mean cross-entropy of the batch. ReLU comes after pooling, on the smaller
 * output: max commutes with it.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
} window_t;

typedef struct {
    int64_t c0, c1, c2, classes;
    int64_t h0, w0, h1, w1, q1h, q1w, h2, w2, q2h, q2w; /* input, conv1, pool1, conv2, pool2 */
    window_t conv1, pool1, conv2, pool2;
} arch_t;

/* Where one tap (i, j) of a window lands: the output rows [y0, y1) and columns [x0, x1) whose
 * tap lies inside the input (the rest reads padding), for an input of in_w columns and an output
 * of out_w, B floats a pixel. */
typedef struct {
    int64_t y0, y1, x0, x1, in_row, in_col, sh, sw, in_w, out_w, b;
} span_t;

static inline int64_t first_inside(int64_t shift, int64_t stride) { /* x*stride + shift >= 0 */
    return shift >= 0 ? 0 : (-shift + stride - 1) / stride;
}

static inline int64_t end_inside(int64_t shift, int64_t stride, int64_t size, int64_t out) {
    int64_t last = size - 1 - shift; /* x*stride + shift <= size - 1 */
    int64_t end = last < 0 ? 0 : last / stride + 1;
    return end < out ? end : out;
}

static inline span_t tap_span(const window_t *wd, int64_t in_h, int64_t in_w, int64_t out_h,
                              int64_t out_w, int64_t b, int64_t i, int64_t j) {
    span_t s = {0};
    s.in_row = i * wd->dh - wd->ph, s.in_col = j * wd->dw - wd->pw;
    s.y0 = first_inside(s.in_row, wd->sh), s.y1 = end_inside(s.in_row, wd->sh, in_h, out_h);
    s.x0 = first_inside(s.in_col, wd->sw), s.x1 = end_inside(s.in_col, wd->sw, in_w, out_w);
    if (s.x1 <= s.x0) s.y1 = s.y0; /* no column inside: no row either */
    s.sh = wd->sh, s.sw = wd->sw, s.in_w = in_w, s.out_w = out_w, s.b = b;
    return s;
}

/* The runs of a span's output row y: `len` contiguous output floats paired with as many
 * contiguous input floats. With stride 1 across, one run of (x1 - x0) * B floats; otherwise
 * one run of B floats per output pixel. */
typedef struct {
    int64_t count, len, in_first, in_step, out_first, out_step;
} runs_t;

static inline runs_t row_runs(const span_t *s, int64_t y) {
    runs_t r;
    r.in_first = ((y * s->sh + s->in_row) * s->in_w + s->x0 * s->sw + s->in_col) * s->b;
    r.out_first = (y * s->out_w + s->x0) * s->b;
    if (s->sw == 1)
        r.count = 1, r.len = (s->x1 - s->x0) * s->b, r.in_step = 0, r.out_step = 0;
    else
        r.count = s->x1 - s->x0, r.len = s->b, r.in_step = s->sw * s->b, r.out_step = s->b;
    return r;
}

/* z (O, Ho, Wo, B) = conv(x (C, H, W, B), weight (O, C, kh, kw)) + bias */
static void conv_forward(const window_t *wd, int64_t c, int64_t h, int64_t w, int64_t o,
                         int64_t ho, int64_t wo, int64_t b, const float *restrict x,
                         const float *restrict weight, const float *restrict bias,
                         float *restrict z) {
    int64_t plane = ho * wo * b, in_plane = h * w * b;
    for (int64_t oc = 0; oc < o; oc++) {
        float *zo = z + oc * plane;
        for (int64_t t = 0; t < plane; t++) zo[t] = bias[oc];
        for (int64_t ic = 0; ic < c; ic++)
            for (int64_t i = 0; i < wd->kh; i++)
                for (int64_t j = 0; j < wd->kw; j++) {
                    float wt = weight[((oc * c + ic) * wd->kh + i) * wd->kw + j];
                    const float *xc = x + ic * in_plane;
                    span_t sp = tap_span(wd, h, w, ho, wo, b, i, j);
                    for (int64_t y = sp.y0; y < sp.y1; y++) {
                        runs_t r = row_runs(&sp, y);
                        for (int64_t n = 0; n < r.count; n++) {
                            const float *src = xc + r.in_first + n * r.in_step;
                            float *dst = zo + r.out_first + n * r.out_step;
                            for (int64_t t = 0; t < r.len; t++) dst[t] += wt * src[t];
                        }
                    }
                }
    }
}

/* dweight += dz (O, Ho, Wo, B) against x's taps, dbias = dz summed; dx (if given) = the
 * transposed convolution of dz. dx must be zeroed by the caller. */
static void conv_backward(const window_t *wd, int64_t c, int64_t h, int64_t w, int64_t o,
                          int64_t ho, int64_t wo, int64_t b, const float *restrict x,
                          const float *restrict weight, const float *restrict dz,
                          float *restrict dweight, float *restrict dbias, float *restrict dx) {
    int64_t plane = ho * wo * b, in_plane = h * w * b;
    for (int64_t oc = 0; oc < o; oc++) {
        const float *dzo = dz + oc * plane;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t t = 0; t < plane; t++) s += dzo[t];
        dbias[oc] = s;
        for (int64_t ic = 0; ic < c; ic++)
            for (int64_t i = 0; i < wd->kh; i++)
                for (int64_t j = 0; j < wd->kw; j++) {
                    int64_t k = ((oc * c + ic) * wd->kh + i) * wd->kw + j;
                    float wt = weight[k], g = 0.0f;
                    span_t sp = tap_span(wd, h, w, ho, wo, b, i, j);
                    for (int64_t y = sp.y0; y < sp.y1; y++) {
                        runs_t r = row_runs(&sp, y);
                        for (int64_t n = 0; n < r.count; n++) {
                            int64_t in = ic * in_plane + r.in_first + n * r.in_step;
                            const float *src = x + in, *d = dzo + r.out_first + n * r.out_step;
#pragma omp simd reduction(+ : g)
                            for (int64_t t = 0; t < r.len; t++) g += d[t] * src[t];
                            if (dx) {
                                float *dst = dx + in;
                                for (int64_t t = 0; t < r.len; t++) dst[t] += wt * d[t];
                            }
                        }
                    }
                    dweight[k] = g;
                }
    }
}

/* pooled (C, Ho, Wo, B) = relu(max over the window of z (C, H, W, B)); where[t] = which tap of
 * the window (i * kw + j) held output t's maximum. A running maximum over the window's taps,
 * each tap a run of contiguous floats (`row_runs`): a tap replaces the maximum so far only if
 * it is strictly larger, so the first largest in scan order stays, and a NaN wins and stays, as
 * in torch. */
static void pool_forward(const window_t *wd, int64_t c, int64_t h, int64_t w, int64_t ho,
                         int64_t wo, int64_t b, const float *restrict z, float *restrict pooled,
                         int32_t *restrict where) {
    int64_t plane = ho * wo * b, in_plane = h * w * b;
    for (int64_t t = 0; t < c * plane; t++) pooled[t] = -INFINITY, where[t] = -1;
    for (int64_t ic = 0; ic < c; ic++) {
        float *p = pooled + ic * plane;
        int32_t *at = where + ic * plane;
        for (int64_t i = 0; i < wd->kh; i++)
            for (int64_t j = 0; j < wd->kw; j++) {
                span_t sp = tap_span(wd, h, w, ho, wo, b, i, j);
                for (int64_t y = sp.y0; y < sp.y1; y++) {
                    runs_t r = row_runs(&sp, y);
                    for (int64_t n = 0; n < r.count; n++) {
                        int64_t in = ic * in_plane + r.in_first + n * r.in_step;
                        const float *v = z + in;
                        float *q = p + r.out_first + n * r.out_step;
                        int32_t *a = at + r.out_first + n * r.out_step, tap = i * wd->kw + j;
                        for (int64_t t = 0; t < r.len; t++) {
                            int take = (v[t] > q[t]) | ((v[t] != v[t]) & (q[t] == q[t]));
                            q[t] = take ? v[t] : q[t];
                            a[t] = take ? tap : a[t];
                        }
                    }
                }
            }
    }
    for (int64_t t = 0; t < c * plane; t++) /* ReLU, which keeps a NaN */
        pooled[t] = pooled[t] <= 0.0f ? 0.0f : pooled[t];
}

/* dz (C, H, W, B), zeroed by the caller, += each output's gradient at its maximum, where ReLU
 * let it pass: tap by tap, the forward's runs again, each input float taking the gradient of the
 * outputs whose maximum it was (no scatter: every pass is a vector of compares and adds). */
static void pool_backward(const window_t *wd, int64_t c, int64_t h, int64_t w, int64_t ho,
                          int64_t wo, int64_t b, const float *restrict pooled,
                          const int32_t *restrict where, float *restrict dpooled,
                          float *restrict dz) {
    int64_t plane = ho * wo * b, in_plane = h * w * b;
    for (int64_t t = 0; t < c * plane; t++) /* ReLU's mask, torch's: none where the output is NaN */
        dpooled[t] = pooled[t] <= 0.0f ? 0.0f : dpooled[t];
    for (int64_t ic = 0; ic < c; ic++) {
        const float *d = dpooled + ic * plane;
        const int32_t *at = where + ic * plane;
        for (int64_t i = 0; i < wd->kh; i++)
            for (int64_t j = 0; j < wd->kw; j++) {
                span_t sp = tap_span(wd, h, w, ho, wo, b, i, j);
                for (int64_t y = sp.y0; y < sp.y1; y++) {
                    runs_t r = row_runs(&sp, y);
                    for (int64_t n = 0; n < r.count; n++) {
                        int64_t in = ic * in_plane + r.in_first + n * r.in_step;
                        const float *g = d + r.out_first + n * r.out_step;
                        const int32_t *a = at + r.out_first + n * r.out_step, tap = i * wd->kw + j;
                        float *dst = dz + in;
                        for (int64_t t = 0; t < r.len; t++) dst[t] += a[t] == tap ? g[t] : 0.0f;
                    }
                }
            }
    }
}

/* How many floats of scratch one member needs (the int32 indices count as floats). */
int64_t lines_scratch(const arch_t *a, int64_t b) {
    int64_t z1 = a->c1 * a->h1 * a->w1 * b, p1 = a->c1 * a->q1h * a->q1w * b;
    int64_t z2 = a->c2 * a->h2 * a->w2 * b, p2 = a->c2 * a->q2h * a->q2w * b;
    int64_t k = a->classes * b, x = a->c0 * a->h0 * a->w0 * b;
    return 2 * z1 + 3 * p1 + 2 * z2 + 3 * p2 + 2 * k + x;
}

/* The step's arithmetic for `members` members, batch b: logits (K, B) in logits[r] if logits is
 * given; with labels, each member's mean loss in loss[r] and, if grads is given, the gradient
 * of the loss in grads' row r (same layout as params' rows, `row` floats apart).
 *
 * images: per member `image_stride` floats apart (0: every member the same), either planes
 * (C0, H0, W0, B), the images innermost, if `planes` is 1, or B images (C0, H0, W0) each,
 * `image_step` floats apart, as torch holds them: those are copied into planes in the scratch
 * (a member's 1,210 numbers at the notebook's size, where a pass of torch's over all members'
 * images would stream them through memory once more);
 * labels: (B) per member, `label_stride` apart, each in [0, K): a label outside is refused
 * before anything is computed (returns 1 + r * B + t for member r's label t; 0 when done);
 * scratch: lines_scratch(a, b) floats. */
int64_t lines_step(const arch_t *a, int64_t members, int64_t b, const float *images,
                int64_t image_stride, int64_t planes, int64_t image_step, const int64_t *labels,
                int64_t label_stride, const float *params, float *grads, int64_t row,
                float *loss, float *logits, float *scratch) {
    const int64_t c0 = a->c0, c1 = a->c1, c2 = a->c2, k = a->classes;
    const int64_t n1 = c1 * a->h1 * a->w1 * b, m1 = c1 * a->q1h * a->q1w * b;
    const int64_t n2 = c2 * a->h2 * a->w2 * b, m2 = c2 * a->q2h * a->q2w * b;
    const int64_t f = c2 * a->q2h * a->q2w;
    const int64_t w1 = c1 * c0 * a->conv1.kh * a->conv1.kw;
    const int64_t w2 = c2 * c1 * a->conv2.kh * a->conv2.kw;
    float *z1 = scratch, *dz1 = z1 + n1, *p1 = dz1 + n1, *dp1 = p1 + m1;
    int32_t *where1 = (int32_t *)(dp1 + m1);
    float *z2 = (float *)(where1 + m1), *dz2 = z2 + n2, *p2 = dz2 + n2, *dp2 = p2 + m2;
    int32_t *where2 = (int32_t *)(dp2 + m2);
    float *zk = (float *)(where2 + m2), *dk = zk + k * b, *own = dk + k * b;
    const int64_t pixels = c0 * a->h0 * a->w0;

    for (int64_t r = 0; labels && r < members; r++)
        for (int64_t t = 0; t < b; t++)
            if (labels[r * label_stride + t] < 0 || labels[r * label_stride + t] >= k)
                return 1 + r * b + t;

    for (int64_t r = 0; r < members; r++) {
        const float *x = images + r * image_stride, *p = params + r * row;
        if (!planes) { /* B images (C0, H0, W0) -> planes (C0, H0, W0, B) */
            for (int64_t i = 0; i < pixels; i++)
                for (int64_t t = 0; t < b; t++) own[i * b + t] = x[t * image_step + i];
            x = own;
        }
        const int64_t *y = labels ? labels + r * label_stride : NULL;
        const float *cw1 = p, *cb1 = cw1 + w1, *cw2 = cb1 + c1, *cb2 = cw2 + w2;
        const float *fw = cb2 + c2, *fb = fw + k * f;

        conv_forward(&a->conv1, c0, a->h0, a->w0, c1, a->h1, a->w1, b, x, cw1, cb1, z1);
        pool_forward(&a->pool1, c1, a->h1, a->w1, a->q1h, a->q1w, b, z1, p1, where1);
        conv_forward(&a->conv2, c1, a->q1h, a->q1w, c2, a->h2, a->w2, b, p1, cw2, cb2, z2);
        pool_forward(&a->pool2, c2, a->h2, a->w2, a->q2h, a->q2w, b, z2, p2, where2);
        for (int64_t o = 0; o < k; o++) { /* logits (K, B) = fc_w @ features (F, B) + fc_b */
            float *zo = zk + o * b;
            for (int64_t t = 0; t < b; t++) zo[t] = fb[o];
            for (int64_t i = 0; i < f; i++) {
                float wt = fw[o * f + i];
                const float *v = p2 + i * b;
                for (int64_t t = 0; t < b; t++) zo[t] += wt * v[t];
            }
        }
        if (logits) memcpy(logits + r * k * b, zk, sizeof(float) * k * b);
        if (!labels) continue; /* evaluation: the logits only */

        /* cross-entropy and its gradient (softmax - onehot) / B, per image, as torch does it:
         * log p = (z - max) - log(sum(exp(z - max))), so that a confident answer's small loss
         * and gradient keep their digits (max + log(sum) rounded at the logits' scale would
         * lose them: the notebook's curve drifted by 0.5% in ten epochs so) */
        double total = 0.0;
        for (int64_t t = 0; t < b; t++) {
            float top = zk[t];
            for (int64_t o = 1; o < k; o++) top = zk[o * b + t] > top ? zk[o * b + t] : top;
            float sum = 0.0f;
            for (int64_t o = 0; o < k; o++) sum += expf(zk[o * b + t] - top);
            float log_sum = logf(sum);
            total -= (zk[y[t] * b + t] - top) - log_sum;
            for (int64_t o = 0; o < k; o++)
                dk[o * b + t] = expf((zk[o * b + t] - top) - log_sum) * (1.0f / b);
            dk[y[t] * b + t] -= 1.0f / b;
        }
        loss[r] = (float)(total / b);
        if (!grads) continue;

        float *g = grads + r * row;
        float *gw1 = g, *gb1 = gw1 + w1, *gw2 = gb1 + c1, *gb2 = gw2 + w2;
        float *gfw = gb2 + c2, *gfb = gfw + k * f;
        for (int64_t o = 0; o < k; o++) { /* the fc layer */
            const float *d = dk + o * b;
            float s = 0.0f;
            for (int64_t t = 0; t < b; t++) s += d[t];
            gfb[o] = s;
            for (int64_t i = 0; i < f; i++) {
                const float *v = p2 + i * b;
                float acc = 0.0f;
                for (int64_t t = 0; t < b; t++) acc += d[t] * v[t];
                gfw[o * f + i] = acc;
            }
        }
        for (int64_t i = 0; i < f; i++) { /* d features (F, B) = fc_w^T @ d logits */
            float *dv = dp2 + i * b;
            for (int64_t t = 0; t < b; t++) dv[t] = 0.0f;
            for (int64_t o = 0; o < k; o++) {
                float wt = fw[o * f + i];
                const float *d = dk + o * b;
                for (int64_t t = 0; t < b; t++) dv[t] += wt * d[t];
            }
        }
        memset(dz2, 0, sizeof(float) * n2);
        pool_backward(&a->pool2, c2, a->h2, a->w2, a->q2h, a->q2w, b, p2, where2, dp2, dz2);
        memset(dp1, 0, sizeof(float) * m1);
        conv_backward(&a->conv2, c1, a->q1h, a->q1w, c2, a->h2, a->w2, b, p1, cw2, dz2, gw2, gb2,
                      dp1);
        memset(dz1, 0, sizeof(float) * n1);
        pool_backward(&a->pool1, c1, a->h1, a->w1, a->q1h, a->q1w, b, p1, where1, dp1, dz1);
        conv_backward(&a->conv1, c0, a->h0, a->w0, c1, a->h1, a->w1, b, x, cw1, dz1, gw1, gb1,
                      NULL);
    }
    return 0;
}
