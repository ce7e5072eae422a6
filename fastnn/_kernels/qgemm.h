/* Low-precision weight products for inference: y = x @ W + b with W stored as
 * int8 (per-column scales, activations quantized per row at run time) or as
 * bfloat16 (widened to float32 while streaming, the arithmetic in float32).
 *
 * int8, the arithmetic every path shares (the NumPy reference in
 * fastnn/backend/ops.py is the same formula). A row with no sign bit set (the
 * output of a ReLU, pixels, probabilities) is quantized to uint8, the others to
 * symmetric int8 (qmax = 255 or 127; uint8 only while k <= FQ_U8_MAX_K, where
 * 255 * 127 * k cannot overflow int32):
 *   s_x[i]  = max_k |x[i,k]| / qmax       (float32; 1 where that is 0: a zero row)
 *   v[i,k]  = x[i,k] * (1 / s_x[i])       (float32, two roundings; x[i,k] / s_x[i] where
 *                                          s_x[i] is subnormal or not finite)
 *   xq[i,k] = clip(rint(v[i,k]), -127 or 0, qmax)      (ties to even)
 *   acc     = sum_k xq[i,k] * Wq[k,j]     (int32, exact on every path)
 *   y[i,j]  = (float)acc * (s_x[i] * s_w[j]) + b[j]    (three float32 roundings, no FMA)
 * The epilogue is compiled with FP contraction off, so every path gives the same
 * bits as the reference.
 *
 * Packed int8 weights: column blocks of 16; within a block, k in groups of 4,
 * each group 64 bytes: [c0 k0..k3, c1 k0..k3, ..., c15 k0..k3]. k is padded to a
 * multiple of 4 and n to a multiple of 16 with zero weights. One layout serves
 * every path: a zmm load is one group of 16 columns, a ymm load 8 of them.
 * Quantized rows are stored as uint8 on every path: the uint8 rows as they are, the
 * int8 rows as xq + 128, with a per-row offset (0 or 128) that the epilogue takes
 * back out as offset * colsum[j] (int32 column sums of the weights).
 * Paths:
 *   avx512vnni: vpdpbusd (u8 x s8, four products a lane, no saturation) on zmm.
 *   avxvnni:    the same on ymm (VEX vpdpbusd).
 *   avx2:       for uint8 rows vpmaddubsw would saturate (two u8*s8 products reach
 *               2*255*127 > 32767), so both operands are widened to int16 and vpmaddwd
 *               sums pairs into int32 lanes, two lanes a column, added at the end; int8
 *               rows multiply |xq| by sign(xq) * w with vpmaddubsw (pairs at most
 *               2*127*127, exact) and need no offset taken out.
 *   portable:   plain C on the same layout.
 *
 * Packed bf16 weights: column blocks of 32; per k, 16 32-bit words, word w holding
 * column w in its low half and column w+16 in its high half, so a load followed by
 * a shift left by 16 (low halves) and an AND with 0xffff0000 (high halves) gives
 * two vectors of float32 in column order. n is padded to a multiple of 32.
 *
 * Column blocks are split between OpenMP threads when the caller asks for more
 * than one thread and the product is large (a thread hand-off costs more than a
 * small product). No state is shared between calls except the path choice. */
#ifndef FASTNN_QGEMM_H
#define FASTNN_QGEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTNN_Q_X86 1
#include <immintrin.h>
#endif

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

/* ---------------------------------------------------------------- path choice */
/* Levels, lowest first. The cap (FASTNN_ISA, set_isa) may only lower the choice. */
enum { FQ_PORTABLE = 0, FQ_AVX2 = 1, FQ_AVXVNNI = 2, FQ_AVX512 = 3 };

static int fq_cap = FQ_AVX512;
/* Test hook: on the AVX-512 level, run the ymm (AVX-VNNI) tiling with EVEX vpdpbusd. */
static int fq_ymm_evex = 0;

static int fq_cpu_has(int level) {
#ifdef FASTNN_Q_X86
    __builtin_cpu_init();
    switch (level) {
        case FQ_PORTABLE: return 1;
        case FQ_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case FQ_AVXVNNI:
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("avxvnni");
#else
            return 0;
#endif
        case FQ_AVX512:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
        default: return 0;
    }
#else
    return level == FQ_PORTABLE;
#endif
}

/* The int8 path in use: the highest level at or below the cap that the CPU runs. */
static int fq_int8_level(void) {
    for (int l = fq_cap; l > FQ_PORTABLE; l--)
        if (fq_cpu_has(l)) return l;
    return FQ_PORTABLE;
}

/* The bf16 path in use: AVX-512 (zmm loads and FMA), AVX2+FMA, or portable. */
static int fq_bf16_level(void) {
    if (fq_cap >= FQ_AVX512 && fq_cpu_has(FQ_AVX512)) return FQ_AVX512;
    if (fq_cap >= FQ_AVX2 && fq_cpu_has(FQ_AVX2)) return FQ_AVX2;
    return FQ_PORTABLE;
}

#define FQ_TARGET_AVX2 "avx2,fma"
#define FQ_TARGET_AVXVNNI "avx2,fma,avxvnni"
#define FQ_TARGET_AVX512 "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni"
#define FQ_INLINE static inline __attribute__((always_inline))

static inline int32_t fq_load32(const void* p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Whether a product of m x k x n multiply-adds is worth an OpenMP team. */
#define FQ_THREAD_MIN_MACS ((double)(1 << 24))

/* ------------------------------------------------------------ int8 packing */
#define FQ_NB 16 /* columns per packed int8 block */

static ptrdiff_t fq_round_up(ptrdiff_t v, ptrdiff_t to) { return (v + to - 1) / to * to; }

/* wq: (k, n) int8 row-major -> packed (kp/4 groups x 64 bytes per 16-column block)
 * and colsum[np] (sums of each column's int8 weights, zero for padding). */
static void fq_pack_int8(const int8_t* wq, ptrdiff_t k, ptrdiff_t n, int8_t* packed,
                         int32_t* colsum) {
    ptrdiff_t kp = fq_round_up(k, 4), np_ = fq_round_up(n, FQ_NB), kg = kp / 4;
    memset(packed, 0, (size_t)(kp * np_));
    memset(colsum, 0, sizeof(int32_t) * (size_t)np_);
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        const int8_t* row = wq + kk * n;
        for (ptrdiff_t j = 0; j < n; j++) {
            ptrdiff_t blk = j / FQ_NB, c = j % FQ_NB;
            packed[blk * kg * 64 + (kk / 4) * 64 + c * 4 + kk % 4] = row[j];
            colsum[j] += row[j];
        }
    }
}

/* ------------------------------------------------------- row quantization */
/* Row i of x -> xq (kp bytes: xq + offset, padding = offset), s_x[i] and xo[i], the
 * row's offset: 0 for a uint8 row (no sign bit in the row), 128 for an int8 row. */

/* The deepest product a uint8 row may take: 255 * 127 * k < 2^31. */
#define FQ_U8_MAX_K ((ptrdiff_t)(2147483647 / (255 * 127)))

/* A row's scale and offset from its largest |x| (as bits) and whether a sign bit is set. */
static inline float fq_row_scale(uint32_t mbits, int neg, ptrdiff_t k, int32_t* offset) {
    float m;
    memcpy(&m, &mbits, 4);
    int u8 = !neg && k <= FQ_U8_MAX_K;
    *offset = u8 ? 0 : 128;
    float s = m / (u8 ? 255.0f : 127.0f);
    return s == 0.0f ? 1.0f : s; /* all zero, or so small that the scale underflows */
}

/* Whether a row multiplies by 1 / s_x (a normal, finite scale: 1 / s_x is finite and
 * every v lies within the levels), else divides and clips. */
static inline int fq_row_multiplies(float s) { return s >= 1.17549435e-38f && s <= 3.40282347e38f; }

/* One value's level (before the offset): rint(v) clipped to [lo, hi], NaN -> lo. */
static inline int fq_level(float xv, float s, float inv, int mul, float lo, float hi) {
    float v = rintf(mul ? xv * inv : xv / s);
    v = v > hi ? hi : (v < lo ? lo : v);
    return v == v ? (int)v : (int)lo;
}

/* The largest |x| of xr[from, k) (as bits: ordered like the floats) and the OR of the
 * values' bits (its sign bit: a negative value or -0.0), folded into *mbits, *signs. */
static inline void fq_scan_row(const float* xr, ptrdiff_t from, ptrdiff_t k, uint32_t* mbits,
                               uint32_t* signs) {
    for (ptrdiff_t kk = from; kk < k; kk++) {
        uint32_t b;
        memcpy(&b, xr + kk, 4);
        *signs |= b;
        b &= 0x7fffffffu;
        *mbits = b > *mbits ? b : *mbits;
    }
}

/* Row i's scale and offset, stored in sx[i] and xo[i]; counts it in *nonfinite when
 * its largest |x| is NaN or an infinity. Returns the scale. */
static inline float fq_row_begin(uint32_t mbits, int neg, ptrdiff_t k, ptrdiff_t i,
                                 float* sx, int32_t* xo, int32_t* offset,
                                 ptrdiff_t* nonfinite) {
    float s = fq_row_scale(mbits, neg, k, offset);
    sx[i] = s;
    xo[i] = *offset;
    *nonfinite += mbits >= 0x7f800000u;
    return s;
}

static ptrdiff_t fq_quantize_rows_portable(const float* x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t kp,
                                      uint8_t* xq, float* sx, int32_t* xo) {
    ptrdiff_t nonfinite = 0; /* rows holding NaN or an infinity */
    for (ptrdiff_t i = 0; i < m; i++) {
        const float* xr = x + i * k;
        uint8_t* qr = xq + i * kp;
        uint32_t mbits = 0, signs = 0;
        fq_scan_row(xr, 0, k, &mbits, &signs);
        int32_t offset;
        float s = fq_row_begin(mbits, (int)(signs >> 31), k, i, sx, xo, &offset, &nonfinite);
        const float lo = offset ? -127.0f : 0.0f, hi = offset ? 127.0f : 255.0f;
        const float inv = 1.0f / s;
        const int mul = fq_row_multiplies(s);
        for (ptrdiff_t kk = 0; kk < k; kk++)
            qr[kk] = (uint8_t)(fq_level(xr[kk], s, inv, mul, lo, hi) + offset);
        for (ptrdiff_t kk = k; kk < kp; kk++) qr[kk] = (uint8_t)offset;
    }
    return nonfinite;
}

#ifdef FASTNN_Q_X86
__attribute__((target(FQ_TARGET_AVX2)))
static ptrdiff_t fq_quantize_rows_avx2(const float* x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t kp,
                                  uint8_t* xq, float* sx, int32_t* xo) {
    ptrdiff_t nonfinite = 0; /* rows holding NaN or an infinity */
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    for (ptrdiff_t i = 0; i < m; i++) {
        const float* xr = x + i * k;
        uint8_t* qr = xq + i * kp;
        __m256i vm = _mm256_setzero_si256(), vs_or = _mm256_setzero_si256();
        ptrdiff_t kk = 0;
        for (; kk + 8 <= k; kk += 8) {
            __m256i b = _mm256_loadu_si256((const __m256i*)(xr + kk));
            vs_or = _mm256_or_si256(vs_or, b);
            vm = _mm256_max_epu32(vm, _mm256_and_si256(b, absmask));
        }
        uint32_t lanes[8], olanes[8], mbits = 0, signs = 0;
        _mm256_storeu_si256((__m256i*)lanes, vm);
        _mm256_storeu_si256((__m256i*)olanes, vs_or);
        for (int q = 0; q < 8; q++) {
            mbits = lanes[q] > mbits ? lanes[q] : mbits;
            signs |= olanes[q];
        }
        fq_scan_row(xr, kk, k, &mbits, &signs);
        int32_t offset;
        float s = fq_row_begin(mbits, (int)(signs >> 31), k, i, sx, xo, &offset, &nonfinite);
        const __m256i lo = _mm256_set1_epi32(offset ? -127 : 0);
        const __m256i hi = _mm256_set1_epi32(offset ? 127 : 255);
        const __m256i off = _mm256_set1_epi32(offset);
        const float flo = offset ? -127.0f : 0.0f, fhi = offset ? 127.0f : 255.0f;
        const float inv = 1.0f / s;
        const int mul = fq_row_multiplies(s);
        const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(inv);
        for (kk = 0; kk + 8 <= k; kk += 8) {
            __m256 xv = _mm256_loadu_ps(xr + kk);
            __m256 v = mul ? _mm256_mul_ps(xv, vinv) : _mm256_div_ps(xv, vs);
            v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m256i q = _mm256_cvtps_epi32(v); /* NaN and overflow -> INT_MIN -> lo */
            q = _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
            q = _mm256_add_epi32(q, off); /* in [0, 255] */
            __m256i p = _mm256_packs_epi32(q, q);
            p = _mm256_packus_epi16(p, p);
            int32_t a = _mm_cvtsi128_si32(_mm256_castsi256_si128(p));
            int32_t c = _mm_cvtsi128_si32(_mm256_extracti128_si256(p, 1));
            memcpy(qr + kk, &a, 4);
            memcpy(qr + kk + 4, &c, 4);
        }
        for (; kk < k; kk++) qr[kk] = (uint8_t)(fq_level(xr[kk], s, inv, mul, flo, fhi) + offset);
        for (kk = k; kk < kp; kk++) qr[kk] = (uint8_t)offset;
    }
    return nonfinite;
}
#endif

#ifdef FASTNN_Q_X86
/* The same as fq_quantize_rows_avx2 with 16 lanes, masked tails and the saturating
 * int32 -> int8 stores of AVX-512. */
__attribute__((target(FQ_TARGET_AVX512)))
static ptrdiff_t fq_quantize_rows_avx512(const float* x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t kp,
                                    uint8_t* xq, float* sx, int32_t* xo) {
    ptrdiff_t nonfinite = 0; /* rows holding NaN or an infinity */
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    const __mmask16 tail = (__mmask16)((1u << (k % 16)) - 1u);
    const ptrdiff_t kfull = k - k % 16;
    for (ptrdiff_t i = 0; i < m; i++) {
        const float* xr = x + i * k;
        uint8_t* qr = xq + i * kp;
        __m512i vm = _mm512_setzero_si512(), vs_or = _mm512_setzero_si512();
        for (ptrdiff_t kk = 0; kk < kfull; kk += 16) {
            __m512i b = _mm512_loadu_si512(xr + kk);
            vs_or = _mm512_or_si512(vs_or, b);
            vm = _mm512_max_epu32(vm, _mm512_and_si512(b, absmask));
        }
        if (tail) {
            __m512i b = _mm512_maskz_loadu_epi32(tail, xr + kfull);
            vs_or = _mm512_or_si512(vs_or, b);
            vm = _mm512_max_epu32(vm, _mm512_and_si512(b, absmask));
        }
        uint32_t mbits = (uint32_t)_mm512_reduce_max_epu32(vm);
        int neg = _mm512_test_epi32_mask(vs_or, _mm512_set1_epi32((int)0x80000000u)) != 0;
        int32_t offset;
        float s = fq_row_begin(mbits, neg, k, i, sx, xo, &offset, &nonfinite);
        const __m512i lo = _mm512_set1_epi32(offset ? -127 : 0);
        const __m512i hi = _mm512_set1_epi32(offset ? 127 : 255);
        const __m512i off = _mm512_set1_epi32(offset);
        const __m512 vs = _mm512_set1_ps(s), vinv = _mm512_set1_ps(1.0f / s);
        /* the bytes of four vectors in order: two saturating packs (values in [0, 255]
         * stay as they are), then per 128-bit lane l: q0[4l..4l+3] q1[..] q2[..] q3[..]
         * -> q0[0..15] q1[0..15] .. by a dword permutation */
        const __m512i order =
            _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        ptrdiff_t kk = 0;
        if (fq_row_multiplies(s)) {
            /* |v| <= qmax (1 + 2^-22) rounds within the levels: no clipping */
            for (; kk + 64 <= k; kk += 64) {
                __m512i q[4];
                for (int u = 0; u < 4; u++) {
                    __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xr + kk + 16 * u), vinv);
                    q[u] = _mm512_add_epi32(off, _mm512_cvt_roundps_epi32(
                        v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                }
                __m512i b = _mm512_packus_epi16(_mm512_packus_epi32(q[0], q[1]),
                                                _mm512_packus_epi32(q[2], q[3]));
                _mm512_storeu_si512(qr + kk, _mm512_permutexvar_epi32(order, b));
            }
        }
        /* the rest 16 at a time, and every value of a row that divides */
        for (; kk < k; kk += 16) {
            __mmask16 mask = kk < kfull ? (__mmask16)0xffff : tail;
            __m512 xv = _mm512_maskz_loadu_ps(mask, xr + kk);
            __m512 v = fq_row_multiplies(s) ? _mm512_mul_ps(xv, vinv) : _mm512_div_ps(xv, vs);
            __m512i q = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi); /* NaN: INT_MIN -> lo */
            q = _mm512_add_epi32(q, off); /* in [0, 255] */
            /* the register form of vpmovusdb: the store form is slow on some CPUs */
            __m128i b = _mm512_cvtusepi32_epi8(q);
            _mm_mask_storeu_epi8(qr + kk, mask, b);
        }
        for (ptrdiff_t kk = k; kk < kp; kk++) qr[kk] = (uint8_t)offset;
    }
    return nonfinite;
}
#endif

/* ------------------------------------------------------------- epilogue */
/* acc (MR rows x ncols int32, row stride ldacc) -> y rows; the row's offset times
 * the column sums is subtracted first. mode 1 writes the int32 accumulators (as
 * int32) instead of floats (for tests). */
typedef struct {
    const float* sx;    /* (m,) row scales */
    const int32_t* xo;  /* (m,) row offsets: 0 (uint8 row) or 128 (int8 row + 128) */
    const float* sw;    /* (n,) column scales */
    const float* bias;  /* (n,) or NULL */
    const int32_t* colsum; /* (np,) */
    float* y;           /* (m, n) */
    int32_t* yacc;      /* (m, n) when mode 1 */
    ptrdiff_t m, n, k, kp, kg;
    int relu, mode;
} fq_args;

#define FQ_EPILOGUE_BODY                                                                  \
    for (int r = 0; r < MR; r++) {                                                        \
        const int32_t* ar = acc + r * ldacc;                                              \
        ptrdiff_t i = i0 + r;                                                             \
        const int32_t* cs = a->colsum + j0;                                               \
        const uint32_t xo = (uint32_t)a->xo[i]; /* wrapping int32 arithmetic */           \
        if (a->mode == 1) {                                                               \
            int32_t* yr = a->yacc + i * a->n + j0;                                        \
            for (ptrdiff_t j = 0; j < nc; j++)                                            \
                yr[j] = (int32_t)((uint32_t)ar[j] - xo * (uint32_t)cs[j]);                \
            continue;                                                                     \
        }                                                                                 \
        float* yr = a->y + i * a->n + j0;                                                 \
        const float* sw = a->sw + j0;                                                     \
        const float s = a->sx[i];                                                         \
        for (ptrdiff_t j = 0; j < nc; j++)                                                \
            yr[j] = (float)(int32_t)((uint32_t)ar[j] - xo * (uint32_t)cs[j]) * (s * sw[j]); \
        if (a->bias) {                                                                    \
            const float* b = a->bias + j0;                                                \
            for (ptrdiff_t j = 0; j < nc; j++) yr[j] = yr[j] + b[j];                      \
        }                                                                                 \
        if (a->relu)                                                                      \
            for (ptrdiff_t j = 0; j < nc; j++) yr[j] = yr[j] > 0.0f ? yr[j] : 0.0f;       \
    }

#define FQ_EPILOGUE_ARGS                                                                  \
    const fq_args* a, const int32_t* acc, ptrdiff_t ldacc, int MR, ptrdiff_t i0,          \
    ptrdiff_t j0, ptrdiff_t nc

static void fq_epilogue_portable(FQ_EPILOGUE_ARGS) { FQ_EPILOGUE_BODY }
#ifdef FASTNN_Q_X86
__attribute__((target(FQ_TARGET_AVX2))) static void fq_epilogue_avx2(FQ_EPILOGUE_ARGS) {
    FQ_EPILOGUE_BODY
}
__attribute__((target(FQ_TARGET_AVX512))) static void fq_epilogue_avx512(FQ_EPILOGUE_ARGS) {
    FQ_EPILOGUE_BODY
}
#endif

/* Columns of blocks [b0, b1) of the output, all rows, into the epilogue. */
#define FQ_BLOCK_COLS(a, blk, nc)                                                        \
    ptrdiff_t nc = (a)->n - (blk) * FQ_NB;                                               \
    if (nc > FQ_NB) nc = FQ_NB

/* ------------------------------------------------------ int8: portable */
static void fq_int8_tile_portable(const fq_args* a, const uint8_t* xq, const int8_t* w,
                                  ptrdiff_t b0, ptrdiff_t b1) {
    /* Sums of int8 rows stored as xq + 128 can pass 2^31 before the epilogue takes
     * 128 * colsum back out: they wrap modulo 2^32 as the SIMD paths' lanes do, in
     * unsigned arithmetic (signed overflow would be undefined behaviour). */
    uint32_t sum[FQ_NB];
    int32_t acc[FQ_NB];
    for (ptrdiff_t blk = b0; blk < b1; blk++) {
        const int8_t* wb = w + blk * a->kg * 64;
        FQ_BLOCK_COLS(a, blk, nc);
        for (ptrdiff_t i = 0; i < a->m; i++) {
            const uint8_t* xr = xq + i * a->kp;
            for (int c = 0; c < FQ_NB; c++) sum[c] = 0;
            for (ptrdiff_t g = 0; g < a->kg; g++) {
                const int8_t* wg = wb + g * 64;
                const int32_t x0 = xr[4 * g], x1 = xr[4 * g + 1], x2 = xr[4 * g + 2],
                              x3 = xr[4 * g + 3];
                for (int c = 0; c < FQ_NB; c++)
                    sum[c] += (uint32_t)(x0 * wg[4 * c] + x1 * wg[4 * c + 1] +
                                         x2 * wg[4 * c + 2] + x3 * wg[4 * c + 3]);
            }
            for (int c = 0; c < FQ_NB; c++) acc[c] = (int32_t)sum[c];
            fq_epilogue_portable(a, acc, FQ_NB, 1, i, blk * FQ_NB, nc);
        }
    }
}

#ifdef FASTNN_Q_X86
/* ------------------------------------------------------- int8: AVX2 */
/* MR rows x NB blocks of 16 columns; xq uint8. Weights and activations widened to
 * int16, vpmaddwd: accumulator q of a block holds columns 4q..4q+3, two int32 lanes
 * each (products k0+k1 and k2+k3), added pairwise at the end. */
FQ_INLINE __attribute__((target(FQ_TARGET_AVX2))) void fq_mk_avx2(
    const int MR, const int NB, const uint8_t* x, ptrdiff_t kp, const int8_t* w,
    ptrdiff_t bstride, ptrdiff_t kg, int32_t* out /* MR x NB*16 */) {
    __m256i c[2][3][4];
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++)
            for (int q = 0; q < 4; q++) c[r][b][q] = _mm256_setzero_si256();
    for (ptrdiff_t g = 0; g < kg; g++) {
        __m256i xb[2];
        for (int r = 0; r < MR; r++) /* x0 x1 x2 x3 as int16, repeated */
            xb[r] = _mm256_broadcastq_epi64(
                _mm_cvtepu8_epi16(_mm_cvtsi32_si128(fq_load32(x + r * kp + 4 * g))));
        for (int b = 0; b < NB; b++)
            for (int q = 0; q < 4; q++) {
                __m256i wv = _mm256_cvtepi8_epi16(
                    _mm_loadu_si128((const __m128i*)(w + b * bstride + g * 64 + q * 16)));
                for (int r = 0; r < MR; r++)
                    c[r][b][q] = _mm256_add_epi32(c[r][b][q], _mm256_madd_epi16(xb[r], wv));
            }
    }
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++)
            for (int h = 0; h < 2; h++) {
                /* lanes (128-bit halves): [c0 c1 c4 c5 | c2 c3 c6 c7] -> column order */
                __m256i s = _mm256_hadd_epi32(c[r][b][2 * h], c[r][b][2 * h + 1]);
                s = _mm256_permute4x64_epi64(s, 0xD8);
                _mm256_storeu_si256((__m256i*)(out + r * NB * 16 + b * 16 + h * 8), s);
            }
}

/* Row tiles of MR rows over column blocks in groups of NB; the remainders of both. */
#define FQ_DRIVE_TILE(MK, EPI, ROWS, NBMAX)                                                \
    int32_t acc[8 * NBMAX * 16];                                                           \
    for (ptrdiff_t blk = b0; blk < b1; blk += NBMAX) {                                     \
        int nb = (int)(b1 - blk < NBMAX ? b1 - blk : NBMAX);                               \
        const int8_t* wb = w + blk * a->kg * 64;                                           \
        ptrdiff_t ncols = a->n - blk * FQ_NB;                                              \
        if (ncols > nb * FQ_NB) ncols = nb * FQ_NB;                                        \
        ptrdiff_t i = 0;                                                                   \
        for (; i + ROWS <= a->m; i += ROWS) {                                              \
            const uint8_t* xr = xq + i * a->kp;                                          \
            switch (nb) { FQ_NB_CASES(MK, ROWS, NBMAX) }                                   \
            EPI(a, acc, nb * FQ_NB, ROWS, i, blk * FQ_NB, ncols);                          \
        }                                                                                  \
        /* the last rows: four, then two, then one at a time */                            \
        for (; ROWS > 4 && i + 4 <= a->m; i += 4) {                                        \
            const uint8_t* xr = xq + i * a->kp;                                          \
            switch (nb) { FQ_NB_CASES(MK, (ROWS > 4 ? 4 : 1), NBMAX) }                     \
            EPI(a, acc, nb * FQ_NB, (ROWS > 4 ? 4 : 1), i, blk * FQ_NB, ncols);            \
        }                                                                                  \
        for (; ROWS > 2 && i + 2 <= a->m; i += 2) {                                        \
            const uint8_t* xr = xq + i * a->kp;                                          \
            switch (nb) { FQ_NB_CASES(MK, (ROWS > 2 ? 2 : 1), NBMAX) }                     \
            EPI(a, acc, nb * FQ_NB, (ROWS > 2 ? 2 : 1), i, blk * FQ_NB, ncols);            \
        }                                                                                  \
        for (; i < a->m; i++) {                                                            \
            const uint8_t* xr = xq + i * a->kp;                                          \
            switch (nb) { FQ_NB_CASES(MK, 1, NBMAX) }                                      \
            EPI(a, acc, nb * FQ_NB, 1, i, blk * FQ_NB, ncols);                             \
        }                                                                                  \
    }

#define FQ_NB_CASES(MK, R, NBMAX)                                                          \
    case 4: if (NBMAX >= 4) { MK(R, 4, xr, a->kp, wb, a->kg * 64, a->kg, acc); break; }    \
    /* fallthrough */                                                                      \
    case 3: if (NBMAX >= 3) { MK(R, 3, xr, a->kp, wb, a->kg * 64, a->kg, acc); break; }    \
    /* fallthrough */                                                                      \
    case 2: if (NBMAX >= 2) { MK(R, 2, xr, a->kp, wb, a->kg * 64, a->kg, acc); break; }    \
    /* fallthrough */                                                                      \
    default: MK(R, 1, xr, a->kp, wb, a->kg * 64, a->kg, acc); break;

/* MR rows x NB blocks of 16 columns (2 ymm each) for int8 rows (stored xq + 128: a XOR
 * with 0x80 gives xq): vpmaddubsw of |xq| (<= 127) with sign(xq) * w, a pair of products
 * at most 2 * 127 * 127, exact in int16; vpmaddwd with ones widens the pairs. The sums
 * are xq @ Wq itself: the epilogue takes no offset back out. Fewer instructions than
 * fq_mk_avx2, so int8 rows take this one. */
FQ_INLINE __attribute__((target(FQ_TARGET_AVX2))) void fq_mk_avx2_s8(
    const int MR, const int NB, const uint8_t* x, ptrdiff_t kp, const int8_t* w,
    ptrdiff_t bstride, ptrdiff_t kg, int32_t* out /* MR x NB*16 */) {
    __m256i c[2][4][2];
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++) c[r][b][0] = c[r][b][1] = _mm256_setzero_si256();
    for (ptrdiff_t g = 0; g < kg; g++) {
        __m256i xs[2], xa[2];
        for (int r = 0; r < MR; r++) {
            xs[r] = _mm256_xor_si256(_mm256_set1_epi32(fq_load32(x + r * kp + 4 * g)), flip);
            xa[r] = _mm256_abs_epi8(xs[r]);
        }
        for (int b = 0; b < NB; b++)
            for (int h = 0; h < 2; h++) {
                __m256i wv =
                    _mm256_loadu_si256((const __m256i*)(w + b * bstride + g * 64 + h * 32));
                for (int r = 0; r < MR; r++) {
                    __m256i t = _mm256_maddubs_epi16(xa[r], _mm256_sign_epi8(wv, xs[r]));
                    c[r][b][h] = _mm256_add_epi32(c[r][b][h], _mm256_madd_epi16(t, ones));
                }
            }
    }
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++)
            for (int h = 0; h < 2; h++)
                _mm256_storeu_si256((__m256i*)(out + r * NB * 16 + b * 16 + h * 8), c[r][b][h]);
}

/* Row offsets of zero for the rows fq_mk_avx2_s8 serves (its sums need no correction). */
#define FQ_AVX2_RUN 64
static const int32_t fq_zero_offsets[FQ_AVX2_RUN] = {0};

/* Rows in runs of one kind (at most FQ_AVX2_RUN): int8 rows through fq_mk_avx2_s8,
 * uint8 rows through fq_mk_avx2. */
__attribute__((target(FQ_TARGET_AVX2)))
static void fq_int8_tile_avx2(const fq_args* all, const uint8_t* xq_all, const int8_t* w,
                              ptrdiff_t b0, ptrdiff_t b1) {
    for (ptrdiff_t i0 = 0; i0 < all->m;) {
        ptrdiff_t i1 = i0 + 1;
        while (i1 < all->m && i1 - i0 < FQ_AVX2_RUN && all->xo[i1] == all->xo[i0]) i1++;
        fq_args run = *all;
        const fq_args* a = &run;
        const uint8_t* xq = xq_all + i0 * all->kp;
        run.m = i1 - i0;
        if (run.sx) run.sx += i0;
        if (run.y) run.y += i0 * all->n;
        if (run.yacc) run.yacc += i0 * all->n;
        if (all->xo[i0]) {
            run.xo = fq_zero_offsets;
            if (a->m < 2) {
                FQ_DRIVE_TILE(fq_mk_avx2_s8, fq_epilogue_avx2, 1, 4)
            } else {
                FQ_DRIVE_TILE(fq_mk_avx2_s8, fq_epilogue_avx2, 2, 2)
            }
        } else {
            run.xo += i0;
            if (a->m < 2) {
                FQ_DRIVE_TILE(fq_mk_avx2, fq_epilogue_avx2, 1, 3)
            } else {
                FQ_DRIVE_TILE(fq_mk_avx2, fq_epilogue_avx2, 2, 1)
            }
        }
        i0 = i1;
    }
}

/* ------------------------------------------------------- int8: VNNI */
/* The ymm vpdpbusd microkernel and its row/column tiling, written once and compiled
 * for AVX-VNNI (VEX) and, as a test hook on AVX-512 CPUs without AVX-VNNI, for the
 * EVEX ymm form of the same instruction (so the code is exercised there too). */
#define FQ_DEFINE_YMM_VNNI(MKNAME, TILENAME, TARGET, DPBUSD)                               \
    FQ_INLINE __attribute__((target(TARGET))) void MKNAME(                                 \
        const int MR, const int NB, const uint8_t* x, ptrdiff_t kp, const int8_t* w,       \
        ptrdiff_t bstride, ptrdiff_t kg, int32_t* out) {                                   \
        __m256i c[4][4][2];                                                                \
        for (int r = 0; r < MR; r++)                                                       \
            for (int b = 0; b < NB; b++) c[r][b][0] = c[r][b][1] = _mm256_setzero_si256(); \
        for (ptrdiff_t g = 0; g < kg; g++) {                                               \
            __m256i wv[4][2];                                                              \
            for (int b = 0; b < NB; b++)                                                   \
                for (int h = 0; h < 2; h++)                                                \
                    wv[b][h] = _mm256_loadu_si256(                                         \
                        (const __m256i*)(w + b * bstride + g * 64 + h * 32));              \
            for (int r = 0; r < MR; r++) {                                                 \
                __m256i xb = _mm256_set1_epi32(fq_load32(x + r * kp + 4 * g));             \
                for (int b = 0; b < NB; b++)                                               \
                    for (int h = 0; h < 2; h++)                                            \
                        c[r][b][h] = DPBUSD(c[r][b][h], xb, wv[b][h]);                     \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < MR; r++)                                                       \
            for (int b = 0; b < NB; b++)                                                   \
                for (int h = 0; h < 2; h++)                                                \
                    _mm256_storeu_si256((__m256i*)(out + r * NB * 16 + b * 16 + h * 8),    \
                                        c[r][b][h]);                                       \
    }                                                                                      \
    __attribute__((target(TARGET))) static void TILENAME(                                  \
        const fq_args* a, const uint8_t* xq, const int8_t* w, ptrdiff_t b0, ptrdiff_t b1) { \
        if (a->m < 2) {                                                                    \
            FQ_DRIVE_TILE(MKNAME, fq_epilogue_avx2, 1, 2)                                  \
        } else {                                                                           \
            FQ_DRIVE_TILE(MKNAME, fq_epilogue_avx2, 4, 1)                                  \
        }                                                                                  \
    }

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define FQ_HAVE_AVXVNNI 1
FQ_DEFINE_YMM_VNNI(fq_mk_avxvnni, fq_int8_tile_avxvnni, FQ_TARGET_AVXVNNI,
                   _mm256_dpbusd_avx_epi32)
#endif
FQ_DEFINE_YMM_VNNI(fq_mk_ymm_evex, fq_int8_tile_ymm_evex, FQ_TARGET_AVX512, _mm256_dpbusd_epi32)

/* The AVX512-VNNI register tile: 8 rows x 3 blocks (48 columns), 24 zmm accumulators.
 * On the development VM (AMD EPYC, one zmm vpdpbusd a cycle) a 256 x 784 x 512 product
 * took 508 us against 540-560 for 4 x 4, 6 x 4 and 8 x 2 tiles. */
#define FQ_MR512 8
#define FQ_NB512 3
FQ_INLINE __attribute__((target(FQ_TARGET_AVX512))) void fq_mk_avx512(
    const int MR, const int NB, const uint8_t* x, ptrdiff_t kp, const int8_t* w,
    ptrdiff_t bstride, ptrdiff_t kg, int32_t* out) {
    __m512i c[FQ_MR512][4];
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++) c[r][b] = _mm512_setzero_si512();
    for (ptrdiff_t g = 0; g < kg; g++) {
        __m512i wv[4];
        for (int b = 0; b < NB; b++)
            wv[b] = _mm512_loadu_si512((const void*)(w + b * bstride + g * 64));
        for (int r = 0; r < MR; r++) {
            __m512i xb = _mm512_set1_epi32(fq_load32(x + r * kp + 4 * g));
            for (int b = 0; b < NB; b++) c[r][b] = _mm512_dpbusd_epi32(c[r][b], xb, wv[b]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++)
            _mm512_storeu_si512((void*)(out + r * NB * 16 + b * 16), c[r][b]);
}

__attribute__((target(FQ_TARGET_AVX512)))
static void fq_int8_tile_avx512_acc(const fq_args* a, const uint8_t* xq, const int8_t* w,
                                    ptrdiff_t b0, ptrdiff_t b1) {
    if (a->m < 2) {
        FQ_DRIVE_TILE(fq_mk_avx512, fq_epilogue_avx512, 1, 4)
    } else {
        FQ_DRIVE_TILE(fq_mk_avx512, fq_epilogue_avx512, FQ_MR512, FQ_NB512)
    }
}

/* The epilogue of FQ_EPILOGUE_BODY for one MR x NB tile, in AVX-512 vector for vector
 * (the same roundings in the same order): the generic loops cost about a tenth of the
 * product. acc: the tile's int32 sums (row stride NB * 16); rows i0.., columns j0.. (nc
 * of them). */
FQ_INLINE __attribute__((target(FQ_TARGET_AVX512))) void fq_epi_tile_avx512(
    const int MR, const int NB, const fq_args* a, const int32_t* acc, ptrdiff_t i0,
    ptrdiff_t j0, ptrdiff_t nc) {
    __mmask16 cols[4];
    __m512i cs128[4];
    __m512 sw[4], bias[4];
    for (int b = 0; b < NB; b++) {
        ptrdiff_t left = nc - 16 * b;
        cols[b] = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        cs128[b] = _mm512_slli_epi32(_mm512_loadu_si512(a->colsum + j0 + 16 * b), 7);
        sw[b] = _mm512_maskz_loadu_ps(cols[b], a->sw + j0 + 16 * b);
        bias[b] = a->bias ? _mm512_maskz_loadu_ps(cols[b], a->bias + j0 + 16 * b)
                          : _mm512_setzero_ps();
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int r = 0; r < MR; r++) {
        const ptrdiff_t i = i0 + r;
        const __m512 s = _mm512_set1_ps(a->sx[i]);
        const __mmask16 int8_row = a->xo[i] ? (__mmask16)0xffff : (__mmask16)0;
        float* yr = a->y + i * a->n + j0;
        for (int b = 0; b < NB; b++) {
            __m512i v = _mm512_loadu_si512(acc + r * NB * 16 + b * 16);
            v = _mm512_mask_sub_epi32(v, int8_row, v, cs128[b]);
            __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(s, sw[b]));
            if (a->bias) y = _mm512_add_ps(y, bias[b]);
            if (a->relu) y = _mm512_max_ps(y, zero); /* NaN and -0 -> +0, as y > 0 ? y : 0 */
            _mm512_mask_storeu_ps(yr + 16 * b, cols[b], y);
        }
    }
}

FQ_INLINE __attribute__((target(FQ_TARGET_AVX512))) void fq_mke_avx512(
    const int MR, const int NB, const fq_args* a, const uint8_t* x, const int8_t* w,
    ptrdiff_t i0, ptrdiff_t j0, ptrdiff_t nc) {
    int32_t acc[FQ_MR512 * 4 * 16] __attribute__((aligned(64)));
    fq_mk_avx512(MR, NB, x, a->kp, w, a->kg * 64, a->kg, acc);
    fq_epi_tile_avx512(MR, NB, a, acc, i0, j0, nc);
}

#define FQ_NBE_CASES(R, NBMAX)                                                             \
    case 4: if (NBMAX >= 4) { fq_mke_avx512(R, 4, a, xr, wb, i, j0, ncols); break; }       \
    /* fallthrough */                                                                      \
    case 3: if (NBMAX >= 3) { fq_mke_avx512(R, 3, a, xr, wb, i, j0, ncols); break; }       \
    /* fallthrough */                                                                      \
    case 2: if (NBMAX >= 2) { fq_mke_avx512(R, 2, a, xr, wb, i, j0, ncols); break; }       \
    /* fallthrough */                                                                      \
    default: fq_mke_avx512(R, 1, a, xr, wb, i, j0, ncols); break;

#define FQ_DRIVE_TILE_E(ROWS, NBMAX)                                                       \
    for (ptrdiff_t blk = b0; blk < b1; blk += NBMAX) {                                     \
        int nb = (int)(b1 - blk < NBMAX ? b1 - blk : NBMAX);                               \
        const int8_t* wb = w + blk * a->kg * 64;                                           \
        const ptrdiff_t j0 = blk * FQ_NB;                                                  \
        ptrdiff_t ncols = a->n - j0;                                                       \
        if (ncols > nb * FQ_NB) ncols = nb * FQ_NB;                                        \
        ptrdiff_t i = 0;                                                                   \
        for (; i + ROWS <= a->m; i += ROWS) {                                              \
            const uint8_t* xr = xq + i * a->kp;                                            \
            switch (nb) { FQ_NBE_CASES(ROWS, NBMAX) }                                      \
        }                                                                                  \
        for (; ROWS > 4 && i + 4 <= a->m; i += 4) {                                        \
            const uint8_t* xr = xq + i * a->kp;                                            \
            switch (nb) { FQ_NBE_CASES((ROWS > 4 ? 4 : 1), NBMAX) }                        \
        }                                                                                  \
        for (; ROWS > 2 && i + 2 <= a->m; i += 2) {                                        \
            const uint8_t* xr = xq + i * a->kp;                                            \
            switch (nb) { FQ_NBE_CASES((ROWS > 2 ? 2 : 1), NBMAX) }                        \
        }                                                                                  \
        for (; i < a->m; i++) {                                                            \
            const uint8_t* xr = xq + i * a->kp;                                            \
            switch (nb) { FQ_NBE_CASES(1, NBMAX) }                                         \
        }                                                                                  \
    }

__attribute__((target(FQ_TARGET_AVX512)))
static void fq_int8_tile_avx512(const fq_args* a, const uint8_t* xq, const int8_t* w,
                                ptrdiff_t b0, ptrdiff_t b1) {
    if (a->mode == 1) {
        fq_int8_tile_avx512_acc(a, xq, w, b0, b1);
    } else if (a->m < 2) {
        FQ_DRIVE_TILE_E(1, 4)
    } else {
        FQ_DRIVE_TILE_E(FQ_MR512, FQ_NB512)
    }
}
#endif /* FASTNN_Q_X86 */

/* ------------------------------------------------------- int8: driver */
static void fq_int8_tile(int level, const fq_args* a, const uint8_t* xq, const int8_t* w,
                         ptrdiff_t b0, ptrdiff_t b1) {
#ifdef FASTNN_Q_X86
    if (level == FQ_AVX512) {
        if (fq_ymm_evex) fq_int8_tile_ymm_evex(a, xq, w, b0, b1);
        else fq_int8_tile_avx512(a, xq, w, b0, b1);
        return;
    }
#ifdef FQ_HAVE_AVXVNNI
    if (level == FQ_AVXVNNI) { fq_int8_tile_avxvnni(a, xq, w, b0, b1); return; }
#endif
    if (level == FQ_AVX2) { fq_int8_tile_avx2(a, xq, w, b0, b1); return; }
#endif
    fq_int8_tile_portable(a, xq, w, b0, b1);
}

/* Column blocks per OpenMP work item (a multiple of every tile's block count but 4). */
#define FQ_TILE_BLOCKS 6

/* The product over quantized rows xq (m x kp, in the level's format): blocks of
 * columns split between nthreads when the product is large. */
static void fq_int8_run(int level, const fq_args* a, const uint8_t* xq, const int8_t* w,
                        int nthreads) {
    ptrdiff_t nblocks = fq_round_up(a->n, FQ_NB) / FQ_NB;
    ptrdiff_t ntiles = (nblocks + FQ_TILE_BLOCKS - 1) / FQ_TILE_BLOCKS;
    double macs = (double)a->m * (double)a->kp * (double)(nblocks * FQ_NB);
#ifdef _OPENMP
    if (nthreads > 1 && ntiles > 1 && macs >= FQ_THREAD_MIN_MACS) {
        #pragma omp parallel for num_threads(nthreads) schedule(static)
        for (ptrdiff_t t = 0; t < ntiles; t++) {
            ptrdiff_t b0 = t * FQ_TILE_BLOCKS, b1 = b0 + FQ_TILE_BLOCKS;
            fq_int8_tile(level, a, xq, w, b0, b1 < nblocks ? b1 : nblocks);
        }
        return;
    }
#else
    (void)nthreads;
    (void)macs;
#endif
    fq_int8_tile(level, a, xq, w, 0, nblocks);
}

/* Scratch bytes fq_int8_dense needs for m rows of depth k. */
static size_t fq_int8_scratch(ptrdiff_t m, ptrdiff_t k) {
    return (size_t)m * (sizeof(float) + sizeof(int32_t) + (size_t)fq_round_up(k, 4));
}

/* y = dequant(quant(x) @ Wq) (+ b, relu). scratch: fq_int8_scratch(m, k) bytes, aligned
 * for floats, owned by the caller (row scales, row offsets, quantized rows). Returns the
 * number of rows of x that hold NaN or an infinity (their outputs are not finite). */
static ptrdiff_t fq_int8_dense(const float* x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                          const int8_t* packed, const int32_t* colsum, const float* sw,
                          const float* bias, float* y, int relu, int nthreads,
                          void* scratch) {
    int level = fq_int8_level();
    float* sx = (float*)scratch;
    int32_t* xo = (int32_t*)(sx + m);
    uint8_t* xq = (uint8_t*)(xo + m);
    fq_args a = {sx, xo, sw, bias, colsum, y, NULL, m, n, k, fq_round_up(k, 4),
                 fq_round_up(k, 4) / 4, relu, 0};
    ptrdiff_t nonfinite;
#ifdef FASTNN_Q_X86
    if (level == FQ_AVX512) nonfinite = fq_quantize_rows_avx512(x, m, k, a.kp, xq, sx, xo);
    else if (level >= FQ_AVX2) nonfinite = fq_quantize_rows_avx2(x, m, k, a.kp, xq, sx, xo);
    else
#endif
        nonfinite = fq_quantize_rows_portable(x, m, k, a.kp, xq, sx, xo);
    fq_int8_run(level, &a, xq, packed, nthreads);
    return nonfinite;
}

/* The exact int32 accumulators xq @ Wq for given rows (tests): int8 rows (is_u8 0,
 * values in [-127, 127]) or uint8 rows (is_u8 1). scratch: fq_int8_scratch(m, k). */
static void fq_int8_acc(const void* xqin, int is_u8, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                        const int8_t* packed, const int32_t* colsum, int32_t* out,
                        void* scratch) {
    int level = fq_int8_level();
    int32_t* xo = (int32_t*)((float*)scratch + m);
    uint8_t* xq = (uint8_t*)(xo + m);
    fq_args a = {NULL, xo, NULL, NULL, colsum, NULL, out, m, n, k, fq_round_up(k, 4),
                 fq_round_up(k, 4) / 4, 0, 1};
    const int32_t offset = is_u8 ? 0 : 128;
    for (ptrdiff_t i = 0; i < m; i++) {
        xo[i] = offset;
        for (ptrdiff_t kk = 0; kk < a.kp; kk++) {
            int v = kk >= k ? 0 : (is_u8 ? ((const uint8_t*)xqin)[i * k + kk]
                                         : ((const int8_t*)xqin)[i * k + kk]);
            xq[i * a.kp + kk] = (uint8_t)(v + offset);
        }
    }
    fq_int8_run(level, &a, xq, packed, 1);
}

/* ------------------------------------------------------------------ bf16 */
#define FQ_BB 32 /* columns per packed bf16 block */

/* float32 -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t fq_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40u);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

static void fq_to_bf16_array(const float* w, ptrdiff_t size, uint16_t* out) {
    for (ptrdiff_t i = 0; i < size; i++) out[i] = fq_to_bf16(w[i]);
}

/* wb: (k, n) bf16 bits -> packed: per 32-column block, per k, 32 uint16 where
 * element 2*w + h holds column w + 16*h of the block (zero padding). */
static void fq_pack_bf16(const uint16_t* wb, ptrdiff_t k, ptrdiff_t n, uint16_t* packed) {
    ptrdiff_t np_ = fq_round_up(n, FQ_BB);
    memset(packed, 0, sizeof(uint16_t) * (size_t)(k * np_));
    for (ptrdiff_t kk = 0; kk < k; kk++)
        for (ptrdiff_t j = 0; j < n; j++) {
            ptrdiff_t blk = j / FQ_BB, c = j % FQ_BB, wd = c % 16, h = c / 16;
            packed[blk * k * FQ_BB + kk * FQ_BB + 2 * wd + h] = wb[kk * n + j];
        }
}

typedef struct {
    const float* x;
    const uint16_t* w;
    const float* bias;
    float* y;
    ptrdiff_t m, k, n;
    int relu;
} fq_bargs;

/* acc: MR rows x (nblocks*32) floats in column order -> y (bias, relu). */
#define FQ_BEPI_BODY                                                                      \
    for (int r = 0; r < MR; r++) {                                                        \
        const float* ar = acc + r * ldacc;                                                \
        float* yr = a->y + (i0 + r) * a->n + j0;                                          \
        if (a->bias) {                                                                    \
            const float* b = a->bias + j0;                                                \
            for (ptrdiff_t j = 0; j < nc; j++) yr[j] = ar[j] + b[j];                      \
        } else {                                                                          \
            for (ptrdiff_t j = 0; j < nc; j++) yr[j] = ar[j];                             \
        }                                                                                 \
        if (a->relu)                                                                      \
            for (ptrdiff_t j = 0; j < nc; j++) yr[j] = yr[j] > 0.0f ? yr[j] : 0.0f;       \
    }
#define FQ_BEPI_ARGS                                                                      \
    const fq_bargs* a, const float* acc, ptrdiff_t ldacc, int MR, ptrdiff_t i0,           \
    ptrdiff_t j0, ptrdiff_t nc

static void fq_bepi_portable(FQ_BEPI_ARGS) { FQ_BEPI_BODY }

static void fq_bf16_tile_portable(const fq_bargs* a, ptrdiff_t b0, ptrdiff_t b1) {
    float acc[FQ_BB];
    for (ptrdiff_t blk = b0; blk < b1; blk++) {
        const uint16_t* wb = a->w + blk * a->k * FQ_BB;
        ptrdiff_t nc = a->n - blk * FQ_BB;
        if (nc > FQ_BB) nc = FQ_BB;
        for (ptrdiff_t i = 0; i < a->m; i++) {
            const float* xr = a->x + i * a->k;
            for (int c = 0; c < FQ_BB; c++) acc[c] = 0.0f;
            for (ptrdiff_t kk = 0; kk < a->k; kk++) {
                const uint16_t* wk = wb + kk * FQ_BB;
                const float xv = xr[kk];
                for (int c = 0; c < FQ_BB; c++) {
                    uint32_t bits = (uint32_t)wk[2 * (c % 16) + c / 16] << 16;
                    float wf;
                    memcpy(&wf, &bits, 4);
                    acc[c] += xv * wf;
                }
            }
            fq_bepi_portable(a, acc, FQ_BB, 1, i, blk * FQ_BB, nc);
        }
    }
}

#ifdef FASTNN_Q_X86
__attribute__((target(FQ_TARGET_AVX2))) static void fq_bepi_avx2(FQ_BEPI_ARGS) { FQ_BEPI_BODY }
__attribute__((target(FQ_TARGET_AVX512))) static void fq_bepi_avx512(FQ_BEPI_ARGS) {
    FQ_BEPI_BODY
}

/* MR rows x NB blocks of 32 columns (4 ymm each). */
FQ_INLINE __attribute__((target(FQ_TARGET_AVX2))) void fq_bmk_avx2(
    const int MR, const int NB, const float* x, ptrdiff_t k, const uint16_t* w, float* out) {
    __m256 c[4][4][4];
    const __m256i himask = _mm256_set1_epi32((int)0xffff0000u);
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++)
            for (int q = 0; q < 4; q++) c[r][b][q] = _mm256_setzero_ps();
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        __m256 xb[4];
        for (int r = 0; r < MR; r++) xb[r] = _mm256_broadcast_ss(x + r * k + kk);
        for (int b = 0; b < NB; b++)
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256(
                    (const __m256i*)(w + b * k * FQ_BB + kk * FQ_BB + h * 16));
                __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                __m256 hi = _mm256_castsi256_ps(_mm256_and_si256(v, himask));
                for (int r = 0; r < MR; r++) {
                    c[r][b][h] = _mm256_fmadd_ps(xb[r], lo, c[r][b][h]);
                    c[r][b][2 + h] = _mm256_fmadd_ps(xb[r], hi, c[r][b][2 + h]);
                }
            }
    }
    /* c[.][.][0..3]: columns 0-7, 8-15, 16-23, 24-31 */
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++)
            for (int q = 0; q < 4; q++) _mm256_storeu_ps(out + r * NB * 32 + b * 32 + q * 8, c[r][b][q]);
}

FQ_INLINE __attribute__((target(FQ_TARGET_AVX512))) void fq_bmk_avx512(
    const int MR, const int NB, const float* x, ptrdiff_t k, const uint16_t* w, float* out) {
    __m512 c[4][4][2];
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++) c[r][b][0] = c[r][b][1] = _mm512_setzero_ps();
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        __m512 lo[4], hi[4];
        for (int b = 0; b < NB; b++) {
            __m512i v = _mm512_loadu_si512((const void*)(w + b * k * FQ_BB + kk * FQ_BB));
            lo[b] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            hi[b] = _mm512_castsi512_ps(_mm512_and_si512(v, himask));
        }
        for (int r = 0; r < MR; r++) {
            __m512 xb = _mm512_set1_ps(x[r * k + kk]);
            for (int b = 0; b < NB; b++) {
                c[r][b][0] = _mm512_fmadd_ps(xb, lo[b], c[r][b][0]);
                c[r][b][1] = _mm512_fmadd_ps(xb, hi[b], c[r][b][1]);
            }
        }
    }
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NB; b++) {
            _mm512_storeu_ps(out + r * NB * 32 + b * 32, c[r][b][0]);
            _mm512_storeu_ps(out + r * NB * 32 + b * 32 + 16, c[r][b][1]);
        }
}

#define FQ_BDRIVE(MK, EPI, ROWS, NBMAX)                                                    \
    float acc[4 * 4 * FQ_BB];                                                              \
    for (ptrdiff_t blk = b0; blk < b1; blk += NBMAX) {                                     \
        int nb = (int)(b1 - blk < NBMAX ? b1 - blk : NBMAX);                               \
        const uint16_t* wb = a->w + blk * a->k * FQ_BB;                                    \
        ptrdiff_t ncols = a->n - blk * FQ_BB;                                              \
        if (ncols > nb * FQ_BB) ncols = nb * FQ_BB;                                        \
        ptrdiff_t i = 0;                                                                   \
        for (; i + ROWS <= a->m; i += ROWS) {                                              \
            const float* xr = a->x + i * a->k;                                             \
            switch (nb) { FQ_BNB_CASES(MK, ROWS, NBMAX) }                                  \
            EPI(a, acc, nb * FQ_BB, ROWS, i, blk * FQ_BB, ncols);                          \
        }                                                                                  \
        for (; ROWS > 2 && i + 2 <= a->m; i += 2) {                                        \
            const float* xr = a->x + i * a->k;                                             \
            switch (nb) { FQ_BNB_CASES(MK, (ROWS > 2 ? 2 : 1), NBMAX) }                    \
            EPI(a, acc, nb * FQ_BB, (ROWS > 2 ? 2 : 1), i, blk * FQ_BB, ncols);            \
        }                                                                                  \
        for (; i < a->m; i++) {                                                            \
            const float* xr = a->x + i * a->k;                                             \
            switch (nb) { FQ_BNB_CASES(MK, 1, NBMAX) }                                     \
            EPI(a, acc, nb * FQ_BB, 1, i, blk * FQ_BB, ncols);                             \
        }                                                                                  \
    }
#define FQ_BNB_CASES(MK, R, NBMAX)                                                         \
    case 4: if (NBMAX >= 4) { MK(R, 4, xr, a->k, wb, acc); break; }                        \
    /* fallthrough */                                                                      \
    case 3: if (NBMAX >= 3) { MK(R, 3, xr, a->k, wb, acc); break; }                        \
    /* fallthrough */                                                                      \
    case 2: if (NBMAX >= 2) { MK(R, 2, xr, a->k, wb, acc); break; }                        \
    /* fallthrough */                                                                      \
    default: MK(R, 1, xr, a->k, wb, acc); break;

__attribute__((target(FQ_TARGET_AVX2)))
static void fq_bf16_tile_avx2(const fq_bargs* a, ptrdiff_t b0, ptrdiff_t b1) {
    if (a->m < 2) {
        FQ_BDRIVE(fq_bmk_avx2, fq_bepi_avx2, 1, 2)
    } else {
        FQ_BDRIVE(fq_bmk_avx2, fq_bepi_avx2, 2, 1)
    }
}

__attribute__((target(FQ_TARGET_AVX512)))
static void fq_bf16_tile_avx512(const fq_bargs* a, ptrdiff_t b0, ptrdiff_t b1) {
    if (a->m < 2) {
        FQ_BDRIVE(fq_bmk_avx512, fq_bepi_avx512, 1, 4)
    } else {
        FQ_BDRIVE(fq_bmk_avx512, fq_bepi_avx512, 4, 2)
    }
}
#endif

static void fq_bf16_tile(int level, const fq_bargs* a, ptrdiff_t b0, ptrdiff_t b1) {
#ifdef FASTNN_Q_X86
    if (level == FQ_AVX512) { fq_bf16_tile_avx512(a, b0, b1); return; }
    if (level >= FQ_AVX2) { fq_bf16_tile_avx2(a, b0, b1); return; }
#endif
    fq_bf16_tile_portable(a, b0, b1);
}

static void fq_bf16_dense(const float* x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                          const uint16_t* packed, const float* bias, float* y, int relu,
                          int nthreads) {
    int level = fq_bf16_level();
    fq_bargs a = {x, packed, bias, y, m, k, n, relu};
    ptrdiff_t nblocks = fq_round_up(n, FQ_BB) / FQ_BB;
    ptrdiff_t ntiles = (nblocks + 1) / 2;
    double macs = (double)m * (double)k * (double)(nblocks * FQ_BB);
#ifdef _OPENMP
    if (nthreads > 1 && ntiles > 1 && macs >= FQ_THREAD_MIN_MACS) {
        #pragma omp parallel for num_threads(nthreads) schedule(static)
        for (ptrdiff_t t = 0; t < ntiles; t++) {
            ptrdiff_t b0 = 2 * t, b1 = b0 + 2;
            fq_bf16_tile(level, &a, b0, b1 < nblocks ? b1 : nblocks);
        }
        return;
    }
#else
    (void)nthreads;
    (void)macs;
    (void)ntiles;
#endif
    fq_bf16_tile(level, &a, 0, nblocks);
}

#pragma GCC pop_options

#endif
