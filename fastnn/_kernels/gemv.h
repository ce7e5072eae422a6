/* y[:, lo:hi] = x @ W[:, lo:hi] + b[lo:hi] for a few rows of x (row-major W: din x dout).
 *
 * Each output row is a sum of W's rows scaled by x, four W rows at a time, and up
 * to four x rows share each pass, so their blocks of y stay in L1 while W streams
 * through once: batch-1 inference reads every weight exactly once, batch-n n/4
 * times (scipy's OpenBLAS sgemm took 280-380 us for one 784x512 layer at 1 to 16
 * rows on the development VM; this loop streams the same weights in ~25 us). The loop is compiled twice, for AVX2+FMA and for
 * the baseline x86-64 (SSE2), and the first call picks the one the CPU runs:
 * measured 41 us against 65 us for a 784x512 + 512x512 pair on the development
 * VM. Other compilers and CPUs get the portable loop only. */
#include <stddef.h>

#include "cpu_features.h"

/* Rows r0 .. r0+R-1 of y (R a compile-time constant) in one pass over W: each
 * weight loaded is used R times, so a batch of R rows reads W once, not R times. */
#define FASTNN_GEMV_ROWS(R)                                                           \
    do {                                                                              \
        float* restrict yr[R];                                                        \
        const float* restrict xr[R];                                                  \
        for (int q = 0; q < R; q++) {                                                 \
            yr[q] = y + (r0 + q) * dout;                                              \
            xr[q] = x + (r0 + q) * din;                                               \
            for (ptrdiff_t j = lo; j < hi; j++) yr[q][j] = b ? b[j] : 0.0f;           \
        }                                                                             \
        ptrdiff_t k = 0;                                                              \
        for (; k + 4 <= din; k += 4) {                                                \
            const float* restrict w0 = W + k * dout;                                  \
            const float* restrict w1 = w0 + dout;                                     \
            const float* restrict w2 = w1 + dout;                                     \
            const float* restrict w3 = w2 + dout;                                     \
            float x0[R], x1[R], x2[R], x3[R];                                         \
            for (int q = 0; q < R; q++) {                                             \
                x0[q] = xr[q][k];                                                     \
                x1[q] = xr[q][k + 1];                                                 \
                x2[q] = xr[q][k + 2];                                                 \
                x3[q] = xr[q][k + 3];                                                 \
            }                                                                         \
            for (ptrdiff_t j = lo; j < hi; j++) {                                     \
                const float a0 = w0[j], a1 = w1[j], a2 = w2[j], a3 = w3[j];           \
                for (int q = 0; q < R; q++)                                           \
                    yr[q][j] += x0[q] * a0 + x1[q] * a1 + x2[q] * a2 + x3[q] * a3;    \
            }                                                                         \
        }                                                                             \
        for (; k < din; k++) {                                                        \
            const float* restrict w0 = W + k * dout;                                  \
            for (ptrdiff_t j = lo; j < hi; j++) {                                     \
                const float a0 = w0[j];                                               \
                for (int q = 0; q < R; q++) yr[q][j] += xr[q][k] * a0;                \
            }                                                                         \
        }                                                                             \
    } while (0)

/* Four rows at a time, then the remaining one to three together. */
#define FASTNN_GEMV_BODY                                                              \
    ptrdiff_t r0 = 0;                                                                 \
    for (; r0 + 4 <= n; r0 += 4) FASTNN_GEMV_ROWS(4);                                 \
    switch (n - r0) {                                                                 \
        case 3: FASTNN_GEMV_ROWS(3); break;                                           \
        case 2: FASTNN_GEMV_ROWS(2); break;                                           \
        case 1: FASTNN_GEMV_ROWS(1); break;                                           \
        default: break;                                                               \
    }

#define FASTNN_GEMV_ARGS                                                              \
    const float* restrict x, const float* restrict W, const float* restrict b,        \
    float* restrict y, ptrdiff_t n, ptrdiff_t din, ptrdiff_t dout, ptrdiff_t lo,       \
    ptrdiff_t hi

static void fastnn_gemv_portable(FASTNN_GEMV_ARGS) { FASTNN_GEMV_BODY }

#ifdef FASTNN_X86_DISPATCH
__attribute__((target("avx2,fma"))) static void fastnn_gemv_avx2(FASTNN_GEMV_ARGS) {
    FASTNN_GEMV_BODY
}

static void fastnn_gemv_rows(FASTNN_GEMV_ARGS) {
    if (fastnn_has_avx2_fma()) fastnn_gemv_avx2(x, W, b, y, n, din, dout, lo, hi);
    else fastnn_gemv_portable(x, W, b, y, n, din, dout, lo, hi);
}
#else
static void fastnn_gemv_rows(FASTNN_GEMV_ARGS) {
    fastnn_gemv_portable(x, W, b, y, n, din, dout, lo, hi);
}
#endif
