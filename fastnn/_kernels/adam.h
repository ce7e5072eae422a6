/* The float32 Adam step without AMSGrad, the step every default model runs.
 *
 * Bound by its square root and division, so it is compiled twice, for AVX2+FMA and
 * for the baseline x86-64, and the first call picks what the CPU runs: 9 us against
 * 18 us for 26k parameters on the development VM. Other compilers get the portable
 * loop. Same formula as Ops.adam_step:
 *   m += (1-b1)(g-m);  v += (1-b2)(g^2-v);  p = p - decay*p - alpha*m/(sqrt(v)+eps). */
#include <math.h>
#include <stddef.h>

#include "cpu_features.h"

#define FASTNN_ADAM_BODY                                                              \
    for (ptrdiff_t i = lo; i < hi; i++) {                                             \
        const float gi = g[i];                                                        \
        const float mi = m[i] + one_minus_b1 * (gi - m[i]);                           \
        const float vi = v[i] + one_minus_b2 * (gi * gi - v[i]);                      \
        m[i] = mi;                                                                    \
        v[i] = vi;                                                                    \
        p[i] = (p[i] - decay * p[i]) - alpha * mi / (sqrtf(vi) + eps);                \
    }

#define FASTNN_ADAM_ARGS                                                              \
    float* restrict p, const float* restrict g, float* restrict m, float* restrict v,  \
    ptrdiff_t lo, ptrdiff_t hi, float decay, float alpha, float one_minus_b1,           \
    float one_minus_b2, float eps

static void fastnn_adam_portable(FASTNN_ADAM_ARGS) { FASTNN_ADAM_BODY }

#ifdef FASTNN_X86_DISPATCH
__attribute__((target("avx2,fma"))) static void fastnn_adam_avx2(FASTNN_ADAM_ARGS) {
    FASTNN_ADAM_BODY
}

static void fastnn_adam_f32(FASTNN_ADAM_ARGS) {
    if (fastnn_has_avx2_fma())
        fastnn_adam_avx2(p, g, m, v, lo, hi, decay, alpha, one_minus_b1, one_minus_b2, eps);
    else
        fastnn_adam_portable(p, g, m, v, lo, hi, decay, alpha, one_minus_b1, one_minus_b2, eps);
}
#else
static void fastnn_adam_f32(FASTNN_ADAM_ARGS) {
    fastnn_adam_portable(p, g, m, v, lo, hi, decay, alpha, one_minus_b1, one_minus_b2, eps);
}
#endif
