/* y[:, lo:hi] = x @ W[:, lo:hi] + b[lo:hi] for a few rows of x (row-major W: din x dout).
 * Each output row is a sum of W's rows scaled by x, four rows at a time, so the
 * block of y stays in L1 while W streams through once: batch-1 inference is
 * bound by how fast the weights can be read, and this reads them once. */
#include <stddef.h>

static void fastnn_gemv_rows(const float* restrict x, const float* restrict W,
                             const float* restrict b, float* restrict y, ptrdiff_t n,
                             ptrdiff_t din, ptrdiff_t dout, ptrdiff_t lo, ptrdiff_t hi) {
    for (ptrdiff_t r = 0; r < n; r++) {
        float* restrict yr = y + r * dout;
        const float* restrict xr = x + r * din;
        for (ptrdiff_t j = lo; j < hi; j++) yr[j] = b ? b[j] : 0.0f;
        ptrdiff_t k = 0;
        for (; k + 4 <= din; k += 4) {
            const float x0 = xr[k], x1 = xr[k + 1], x2 = xr[k + 2], x3 = xr[k + 3];
            const float* restrict w0 = W + k * dout;
            const float* restrict w1 = w0 + dout;
            const float* restrict w2 = w1 + dout;
            const float* restrict w3 = w2 + dout;
            for (ptrdiff_t j = lo; j < hi; j++)
                yr[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j];
        }
        for (; k < din; k++) {
            const float xk = xr[k];
            const float* restrict w0 = W + k * dout;
            for (ptrdiff_t j = lo; j < hi; j++) yr[j] += xk * w0[j];
        }
    }
}
