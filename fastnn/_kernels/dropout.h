/* The counter-based dropout mask: entry i keeps (value 1 / (1 - rate)) when
 * splitmix64(seed + i) >> 40, a uniform 24-bit integer k, satisfies k / 2^24 >= rate,
 * i.e. k >= ceil(rate * 2^24) (exact: scaling by a power of two does not round), so
 * the loop needs no floating-point conversion and vectorizes on 64-bit integer lanes.
 * ops._uniform24 draws the same numbers. With x, y = x * mask is written in the same
 * pass. Compiled for AVX-512 (vpmullq), AVX2 and the baseline; the first call picks. */
#include <stddef.h>
#include <stdint.h>

#include "cpu_features.h"

#define FASTNN_DROPOUT_HASH(i)                                                        \
    uint64_t z = seed + (uint64_t)(i) + 0x9E3779B97F4A7C15ULL;                        \
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;                                      \
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;                                      \
    z = z ^ (z >> 31);

#define FASTNN_DROPOUT_BODY(T)                                                        \
    if (x) {                                                                          \
        for (ptrdiff_t i = lo; i < hi; i++) {                                         \
            FASTNN_DROPOUT_HASH(i)                                                    \
            T m = (z >> 40) >= thresh ? keep : (T)0;                                  \
            mask[i] = m;                                                              \
            y[i] = x[i] * m;                                                          \
        }                                                                             \
    } else {                                                                          \
        for (ptrdiff_t i = lo; i < hi; i++) {                                         \
            FASTNN_DROPOUT_HASH(i)                                                    \
            mask[i] = (z >> 40) >= thresh ? keep : (T)0;                              \
        }                                                                             \
    }

#define FASTNN_DROPOUT_ARGS(T)                                                        \
    const T* restrict x, T* restrict mask, T* restrict y, uint64_t seed,             \
    uint64_t thresh, T keep, ptrdiff_t lo, ptrdiff_t hi

static void fastnn_dropout_f32_portable(FASTNN_DROPOUT_ARGS(float)) { FASTNN_DROPOUT_BODY(float) }
static void fastnn_dropout_f64(FASTNN_DROPOUT_ARGS(double)) { FASTNN_DROPOUT_BODY(double) }

#ifdef FASTNN_X86_DISPATCH
__attribute__((target("avx2"))) static void fastnn_dropout_f32_avx2(
        FASTNN_DROPOUT_ARGS(float)) { FASTNN_DROPOUT_BODY(float) }
__attribute__((target("avx512f,avx512dq,avx512vl"))) static void fastnn_dropout_f32_avx512(
        FASTNN_DROPOUT_ARGS(float)) { FASTNN_DROPOUT_BODY(float) }

static int fastnn_has_avx512dq(void) {
    static int cached = -1; /* a benign race: every thread computes the same answer */
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                 && __builtin_cpu_supports("avx512vl");
    }
    return cached;
}

static void fastnn_dropout_f32(FASTNN_DROPOUT_ARGS(float)) {
    if (fastnn_has_avx512dq()) fastnn_dropout_f32_avx512(x, mask, y, seed, thresh, keep, lo, hi);
    else if (fastnn_has_avx2_fma())
        fastnn_dropout_f32_avx2(x, mask, y, seed, thresh, keep, lo, hi);
    else fastnn_dropout_f32_portable(x, mask, y, seed, thresh, keep, lo, hi);
}
#else
static void fastnn_dropout_f32(FASTNN_DROPOUT_ARGS(float)) {
    fastnn_dropout_f32_portable(x, mask, y, seed, thresh, keep, lo, hi);
}
#endif
