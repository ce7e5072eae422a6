/* Single-threaded row-major float32 GEMM, C = op(A) @ op(B) (+ C when beta is 1),
 * for the shapes of a small or medium MLP step, where scipy's OpenBLAS spends a
 * good part of its time packing both operands (docs/gemm.md).
 *
 * Scheme: K is cut into blocks of FSG_KC; for each block and each panel of NR
 * columns of op(B), the panel is copied once into a small contiguous buffer on
 * the stack (kc x NR floats, zero past the last column). An untransposed panel
 * is copied by the panel's first row tile as it computes (the copy overlaps the
 * arithmetic); a transposed one (B^T) beforehand, by 8x8 register transposes.
 * The next panel's source is prefetched into L2 while this one's tiles run.
 * Every MR-row tile of C runs a register-tile micro-kernel over the panel: MR x
 * NR accumulators, one broadcast of op(A)[i, k] and NR/VL vector loads per k.
 * op(A) is never copied: its tile is read where it lies (rows of A for NN/NT,
 * contiguous runs of A's rows for TN), the A block staying in L2 while the
 * panels pass. Edge tiles use masked loads and stores.
 *
 * Paths: AVX-512F (FSG_MR512 rows x 32 columns of zmm accumulators) and
 * AVX2+FMA (FSG_MR256 rows x 16 columns of ymm), compiled with
 * __attribute__((target)); the caller picks one (at most fsg_cpu_level()) and
 * decides which shapes come here. There is no portable loop: without either
 * ISA the caller keeps BLAS.
 *
 * Pure function: no state is shared between calls except the cached CPU check,
 * so any number of threads may call it at once. The stack buffer is FSG_KC * 32
 * floats (32 KiB) on the AVX-512 path, half that on AVX2. */
#ifndef FASTNN_SGEMM_H
#define FASTNN_SGEMM_H

#include <stddef.h>

enum { FSG_NONE = 0, FSG_AVX2 = 1, FSG_AVX512 = 2 };

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FSG_X86 1
#include <immintrin.h>
#endif

/* The best path the CPU runs, found once. */
static int fsg_cpu_level_cached = -1;

static int fsg_cpu_level(void) {
    int l = fsg_cpu_level_cached; /* a benign race: every thread computes the same answer */
    if (l < 0) {
        l = FSG_NONE;
#ifdef FSG_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            l = FSG_AVX2;
            if (__builtin_cpu_supports("avx512f")) l = FSG_AVX512;
        }
#endif
        fsg_cpu_level_cached = l;
    }
    return l;
}

#ifndef FSG_KC
#define FSG_KC 256
#endif
#ifndef FSG_MR512
#define FSG_MR512 12
#endif
#ifndef FSG_MR256
#define FSG_MR256 6
#endif

#define FSG_INLINE static inline __attribute__((always_inline))

#ifdef FSG_X86

/* ---------------------------------------- AVX2 + FMA (also used by AVX-512) */
#define FSG_T256 __attribute__((target("avx2,fma")))

/* Lane masks for maskload/maskstore: the first r lanes of 8. */
FSG_T256 FSG_INLINE __m256i fsg_mask256(ptrdiff_t r) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(r < 0 ? 0 : r > 8 ? 8 : r)), lanes);
}

/* 8x8 transpose of rows s, s+ld, ..., s+7ld into d, d+dst, ..., d+7dst. */
FSG_T256 FSG_INLINE void fsg_transpose8(const float* s, ptrdiff_t ld, float* d, ptrdiff_t dst) {
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ld);
    __m256 r2 = _mm256_loadu_ps(s + 2 * ld), r3 = _mm256_loadu_ps(s + 3 * ld);
    __m256 r4 = _mm256_loadu_ps(s + 4 * ld), r5 = _mm256_loadu_ps(s + 5 * ld);
    __m256 r6 = _mm256_loadu_ps(s + 6 * ld), r7 = _mm256_loadu_ps(s + 7 * ld);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d + 0 * dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + 1 * dst, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * dst, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * dst, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * dst, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * dst, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * dst, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * dst, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* Pack op(B)[p0:p0+kc, j0:j0+nr] into bp (kc rows of W floats, zero past nr),
 * W = 16 or 32: whole 8x8 blocks transposed in registers, the edges by scalars. */
FSG_T256 FSG_INLINE void fsg_pack_t(const float* b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t kc,
                                ptrdiff_t j0, ptrdiff_t nr, float* bp, ptrdiff_t W) {
    const float* src = b + j0 * ldb + p0;
    ptrdiff_t k8 = kc / 8 * 8, j = 0;
    /* Eight source rows at a time, walked along K, so each source line is read
     * by two consecutive transposes while it is in L1. */
    for (; j + 8 <= nr; j += 8)
        for (ptrdiff_t p = 0; p < k8; p += 8)
            fsg_transpose8(src + j * ldb + p, ldb, bp + p * W + j, W);
    for (; j < W; j++)
        for (ptrdiff_t p = 0; p < k8; p++) bp[p * W + j] = j < nr ? src[j * ldb + p] : 0.0f;
    for (ptrdiff_t p = k8; p < kc; p++)
        for (j = 0; j < W; j++) bp[p * W + j] = j < nr ? src[j * ldb + p] : 0.0f;
}

/* Prefetch into L2 the share of tile t (of nt) of the source of the next panel
 * (columns j1..j1+w of op(B), K rows p0..p0+kc), so that its packing reads L2
 * rather than L3 while this panel's tiles compute. */
FSG_INLINE void fsg_prefetch_panel(int trans_b, const float* b, ptrdiff_t ldb, ptrdiff_t p0,
                                   ptrdiff_t kc, ptrdiff_t j1, ptrdiff_t w, ptrdiff_t n,
                                   ptrdiff_t t, ptrdiff_t nt) {
    if (j1 >= n) return;
    if (w > n - j1) w = n - j1;
    if (!trans_b) { /* kc rows of w floats, ldb apart */
        ptrdiff_t lo = kc * t / nt, hi = kc * (t + 1) / nt;
        for (ptrdiff_t p = lo; p < hi; p++) {
            const char* r = (const char*)(b + (p0 + p) * ldb + j1);
            for (ptrdiff_t off = 0; off < w * 4; off += 64) _mm_prefetch(r + off, _MM_HINT_T1);
            _mm_prefetch(r + w * 4 - 1, _MM_HINT_T1);
        }
    } else { /* w rows of kc floats */
        ptrdiff_t lo = w * t / nt, hi = w * (t + 1) / nt;
        for (ptrdiff_t j = lo; j < hi; j++) {
            const char* r = (const char*)(b + (j1 + j) * ldb + p0);
            for (ptrdiff_t off = 0; off < kc * 4; off += 64) _mm_prefetch(r + off, _MM_HINT_T1);
            _mm_prefetch(r + kc * 4 - 1, _MM_HINT_T1);
        }
    }
}

/* ------------------------------------------------------------------ AVX-512 */
#define FSG_T512 __attribute__((target("avx2,fma,avx512f")))

/* MR x (16*NV) tile of C from kc steps: A element (i, p) at a[i*rsa + p*csa],
 * packed panel row p at bp + 32p. acc: add to C (a later K block, or beta 1).
 * Store masks m0/m1 cover the columns that exist. PACK: read the panel from
 * op(B) itself (row p at src + p*lds, not transposed) and write bp on the way,
 * so the copy overlaps the arithmetic of the panel's first tile. */
FSG_T512 FSG_INLINE void fsg_tile512(const int MR, const int NV, const int PACK, ptrdiff_t kc,
                                     const float* a, ptrdiff_t rsa, ptrdiff_t csa, float* bp,
                                     const float* src, ptrdiff_t lds, float* c, ptrdiff_t ldc,
                                     __mmask16 m0, __mmask16 m1, int acc) {
    __m512 s[FSG_MR512][2];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) s[i][v] = _mm512_setzero_ps();
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m512 b0, b1;
        if (PACK) { /* the first tile packs the panel as it goes */
            b0 = _mm512_maskz_loadu_ps(m0, src + p * lds);
            _mm512_store_ps(bp + p * 32, b0);
            b1 = b0;
            if (NV > 1) {
                b1 = _mm512_maskz_loadu_ps(m1, src + p * lds + 16);
                _mm512_store_ps(bp + p * 32 + 16, b1);
            }
        } else {
            b0 = _mm512_load_ps(bp + p * 32);
            b1 = NV > 1 ? _mm512_load_ps(bp + p * 32 + 16) : b0;
        }
        const float* ap = a + p * csa;
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(ap[i * rsa]);
            s[i][0] = _mm512_fmadd_ps(ai, b0, s[i][0]);
            if (NV > 1) s[i][1] = _mm512_fmadd_ps(ai, b1, s[i][1]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        float* cr = c + i * ldc;
        if (acc) {
            s[i][0] = _mm512_add_ps(s[i][0], _mm512_maskz_loadu_ps(m0, cr));
            if (NV > 1) s[i][1] = _mm512_add_ps(s[i][1], _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, m0, s[i][0]);
        if (NV > 1) _mm512_mask_storeu_ps(cr + 16, m1, s[i][1]);
    }
}

/* Instantiations per row count, for A read along rows (rsa = lda, csa = 1) or
 * along columns (rsa = 1, csa = lda): the constant stride lets the compiler use
 * fixed offsets. */
#define FSG_CASES512(NV, PACK, RSA, CSA) \
    switch (mr) { \
        case 1: fsg_tile512(1, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 2: fsg_tile512(2, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 3: fsg_tile512(3, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 4: fsg_tile512(4, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 5: fsg_tile512(5, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 6: fsg_tile512(6, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 7: fsg_tile512(7, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 8: fsg_tile512(8, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 9: fsg_tile512(9, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 10: fsg_tile512(10, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        case 11: fsg_tile512(11, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); break; \
        default: fsg_tile512(FSG_MR512, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, acc); \
    }

FSG_T512 static void fsg_tile512_rows(int mr, int nv, int pack, ptrdiff_t kc, const float* a,
                                      ptrdiff_t lda, float* bp, const float* src, ptrdiff_t lds,
                                      float* c, ptrdiff_t ldc, __mmask16 m0, __mmask16 m1,
                                      int acc) {
    if (pack) {
        if (nv == 2) { FSG_CASES512(2, 1, lda, 1) } else { FSG_CASES512(1, 1, lda, 1) }
    } else {
        if (nv == 2) { FSG_CASES512(2, 0, lda, 1) } else { FSG_CASES512(1, 0, lda, 1) }
    }
}

FSG_T512 static void fsg_tile512_cols(int mr, int nv, int pack, ptrdiff_t kc, const float* a,
                                      ptrdiff_t lda, float* bp, const float* src, ptrdiff_t lds,
                                      float* c, ptrdiff_t ldc, __mmask16 m0, __mmask16 m1,
                                      int acc) {
    if (pack) {
        if (nv == 2) { FSG_CASES512(2, 1, 1, lda) } else { FSG_CASES512(1, 1, 1, lda) }
    } else {
        if (nv == 2) { FSG_CASES512(2, 0, 1, lda) } else { FSG_CASES512(1, 0, 1, lda) }
    }
}

FSG_T512 static void fsg_sgemm512(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n,
                                  ptrdiff_t k, const float* a, ptrdiff_t lda, const float* b,
                                  ptrdiff_t ldb, int beta1, float* c, ptrdiff_t ldc) {
    float bp[FSG_KC * 32] __attribute__((aligned(64)));
    for (ptrdiff_t p0 = 0; p0 < k; p0 += FSG_KC) {
        ptrdiff_t kc = k - p0 < FSG_KC ? k - p0 : FSG_KC;
        int acc = beta1 || p0 > 0;
        for (ptrdiff_t j0 = 0; j0 < n; j0 += 32) {
            ptrdiff_t nr = n - j0 < 32 ? n - j0 : 32;
            /* Transposed panels are packed here; plain ones by the first tile. */
            if (trans_b) fsg_pack_t(b, ldb, p0, kc, j0, nr, bp, 32);
            const float* src = b + p0 * ldb + j0;
            int nv = nr > 16 ? 2 : 1;
            __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
            __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffff : nr <= 16 ? 0 : (1u << (nr - 16)) - 1);
            ptrdiff_t nt = (m + FSG_MR512 - 1) / FSG_MR512;
            for (ptrdiff_t i0 = 0; i0 < m; i0 += FSG_MR512) {
                int mr = (int)(m - i0 < FSG_MR512 ? m - i0 : FSG_MR512);
                int pack = !trans_b && i0 == 0;
                fsg_prefetch_panel(trans_b, b, ldb, p0, kc, j0 + 32, 32, n, i0 / FSG_MR512, nt);
                float* ct = c + i0 * ldc + j0;
                if (trans_a)
                    fsg_tile512_cols(mr, nv, pack, kc, a + p0 * lda + i0, lda, bp, src, ldb, ct,
                                     ldc, m0, m1, acc);
                else
                    fsg_tile512_rows(mr, nv, pack, kc, a + i0 * lda + p0, lda, bp, src, ldb, ct,
                                     ldc, m0, m1, acc);
            }
        }
    }
}

/* --------------------------------------------------------------- AVX2 + FMA */
/* MR x (8*NV) tile of C, as fsg_tile512 with ymm and panels of 16 (full: every
 * column of the tile exists, plain stores). */
FSG_T256 FSG_INLINE void fsg_tile256(const int MR, const int NV, const int PACK, ptrdiff_t kc,
                                     const float* a, ptrdiff_t rsa, ptrdiff_t csa, float* bp,
                                     const float* src, ptrdiff_t lds, float* c, ptrdiff_t ldc,
                                     __m256i m0, __m256i m1, int full, int acc) {
    __m256 s[FSG_MR256][2];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) s[i][v] = _mm256_setzero_ps();
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m256 b0, b1;
        if (PACK) { /* the first tile packs the panel as it goes */
            b0 = _mm256_maskload_ps(src + p * lds, m0);
            _mm256_store_ps(bp + p * 16, b0);
            b1 = b0;
            if (NV > 1) {
                b1 = _mm256_maskload_ps(src + p * lds + 8, m1);
                _mm256_store_ps(bp + p * 16 + 8, b1);
            }
        } else {
            b0 = _mm256_load_ps(bp + p * 16);
            b1 = NV > 1 ? _mm256_load_ps(bp + p * 16 + 8) : b0;
        }
        const float* ap = a + p * csa;
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(ap + i * rsa);
            s[i][0] = _mm256_fmadd_ps(ai, b0, s[i][0]);
            if (NV > 1) s[i][1] = _mm256_fmadd_ps(ai, b1, s[i][1]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        float* cr = c + i * ldc;
        if (full) {
            if (acc) {
                s[i][0] = _mm256_add_ps(s[i][0], _mm256_loadu_ps(cr));
                if (NV > 1) s[i][1] = _mm256_add_ps(s[i][1], _mm256_loadu_ps(cr + 8));
            }
            _mm256_storeu_ps(cr, s[i][0]);
            if (NV > 1) _mm256_storeu_ps(cr + 8, s[i][1]);
        } else {
            if (acc) {
                s[i][0] = _mm256_add_ps(s[i][0], _mm256_maskload_ps(cr, m0));
                if (NV > 1) s[i][1] = _mm256_add_ps(s[i][1], _mm256_maskload_ps(cr + 8, m1));
            }
            _mm256_maskstore_ps(cr, m0, s[i][0]);
            if (NV > 1) _mm256_maskstore_ps(cr + 8, m1, s[i][1]);
        }
    }
}

#define FSG_CASES256(NV, PACK, RSA, CSA) \
    switch (mr) { \
        case 1: fsg_tile256(1, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, full, acc); break; \
        case 2: fsg_tile256(2, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, full, acc); break; \
        case 3: fsg_tile256(3, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, full, acc); break; \
        case 4: fsg_tile256(4, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, full, acc); break; \
        case 5: fsg_tile256(5, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, full, acc); break; \
        default: fsg_tile256(FSG_MR256, NV, PACK, kc, a, RSA, CSA, bp, src, lds, c, ldc, m0, m1, full, acc); \
    }

FSG_T256 static void fsg_tile256_rows(int mr, int nv, int pack, ptrdiff_t kc, const float* a,
                                      ptrdiff_t lda, float* bp, const float* src, ptrdiff_t lds,
                                      float* c, ptrdiff_t ldc, __m256i m0, __m256i m1, int full,
                                      int acc) {
    if (pack) {
        if (nv == 2) { FSG_CASES256(2, 1, lda, 1) } else { FSG_CASES256(1, 1, lda, 1) }
    } else {
        if (nv == 2) { FSG_CASES256(2, 0, lda, 1) } else { FSG_CASES256(1, 0, lda, 1) }
    }
}

FSG_T256 static void fsg_tile256_cols(int mr, int nv, int pack, ptrdiff_t kc, const float* a,
                                      ptrdiff_t lda, float* bp, const float* src, ptrdiff_t lds,
                                      float* c, ptrdiff_t ldc, __m256i m0, __m256i m1, int full,
                                      int acc) {
    if (pack) {
        if (nv == 2) { FSG_CASES256(2, 1, 1, lda) } else { FSG_CASES256(1, 1, 1, lda) }
    } else {
        if (nv == 2) { FSG_CASES256(2, 0, 1, lda) } else { FSG_CASES256(1, 0, 1, lda) }
    }
}

FSG_T256 static void fsg_sgemm256(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n,
                                  ptrdiff_t k, const float* a, ptrdiff_t lda, const float* b,
                                  ptrdiff_t ldb, int beta1, float* c, ptrdiff_t ldc) {
    float bp[FSG_KC * 16] __attribute__((aligned(64)));
    for (ptrdiff_t p0 = 0; p0 < k; p0 += FSG_KC) {
        ptrdiff_t kc = k - p0 < FSG_KC ? k - p0 : FSG_KC;
        int acc = beta1 || p0 > 0;
        for (ptrdiff_t j0 = 0; j0 < n; j0 += 16) {
            ptrdiff_t nr = n - j0 < 16 ? n - j0 : 16;
            if (trans_b) fsg_pack_t(b, ldb, p0, kc, j0, nr, bp, 16);
            const float* src = b + p0 * ldb + j0;
            int nv = nr > 8 ? 2 : 1, full = nr == 16 || nr == 8;
            __m256i m0 = fsg_mask256(nr), m1 = fsg_mask256(nr - 8);
            ptrdiff_t nt = (m + FSG_MR256 - 1) / FSG_MR256;
            for (ptrdiff_t i0 = 0; i0 < m; i0 += FSG_MR256) {
                int mr = (int)(m - i0 < FSG_MR256 ? m - i0 : FSG_MR256);
                int pack = !trans_b && i0 == 0;
                fsg_prefetch_panel(trans_b, b, ldb, p0, kc, j0 + 16, 16, n, i0 / FSG_MR256, nt);
                float* ct = c + i0 * ldc + j0;
                if (trans_a)
                    fsg_tile256_cols(mr, nv, pack, kc, a + p0 * lda + i0, lda, bp, src, ldb, ct,
                                     ldc, m0, m1, full, acc);
                else
                    fsg_tile256_rows(mr, nv, pack, kc, a + i0 * lda + p0, lda, bp, src, ldb, ct,
                                     ldc, m0, m1, full, acc);
            }
        }
    }
}

#endif /* FSG_X86 */

/* C (m x n, ldc) = op(A) @ op(B) (+ C when beta1) on path `level`; returns 0 when
 * that path is not compiled in (the caller then uses BLAS). An empty product
 * (m, n or k zero) is done on any path: with k zero, C = 0 (or kept, beta 1). */
static int fsg_sgemm(int level, int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n,
                     ptrdiff_t k, const float* a, ptrdiff_t lda, const float* b,
                     ptrdiff_t ldb, int beta1, float* c, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return 1;
    if (k <= 0) { /* an empty sum: C = 0, or C unchanged with beta 1 (as BLAS) */
        if (!beta1)
            for (ptrdiff_t i = 0; i < m; i++)
                for (ptrdiff_t j = 0; j < n; j++) c[i * ldc + j] = 0.0f;
        return 1;
    }
#ifdef FSG_X86
    if (level >= FSG_AVX512) {
        fsg_sgemm512(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta1, c, ldc);
        return 1;
    }
    if (level >= FSG_AVX2) {
        fsg_sgemm256(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta1, c, ldc);
        return 1;
    }
#endif
    (void)level; (void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)a;
    (void)lda; (void)b; (void)ldb; (void)beta1; (void)c; (void)ldc;
    return 0;
}

#endif
