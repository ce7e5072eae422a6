/* Which instruction sets the running CPU has, for kernels compiled twice (a
 * baseline loop and an AVX2+FMA one under __attribute__((target))) that pick one
 * at their first call. */
#ifndef FASTNN_CPU_FEATURES_H
#define FASTNN_CPU_FEATURES_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTNN_X86_DISPATCH 1

static int fastnn_has_avx2_fma(void) {
    static int cached = -1; /* a benign race: every thread computes the same answer */
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}
#endif

#endif
