/*
 * gemm_avx512.c - the AVX-512 kernels, 12 rows x 32 columns (24 of the 32
 * zmm registers accumulate, two hold W, one X):
 *   fp32:        vfmadd231ps, the same chains as the AVX2 and portable
 *                kernels (same numbers, twice the lanes);
 *   AVX512_BF16: vdpbf16ps on bf16 pairs, 32 multiply-adds per instruction.
 * They run only where cpuid reports the features (rm_cpu_isa()); the W
 * packers are the AVX2 ones (every AVX-512 CPU has AVX2).
 */
#include "cpu/gemm_kernel.h"

#if defined(RM_ISA_EMULATION)  /* tests/test_gemm.c: the same code on portable C intrinsics */
#include "isa_emulation.h"
#define F512_INLINE static inline
#define F512
#define BF16_INLINE static inline
#define BF16
#elif defined(__x86_64__)
#include <immintrin.h>
#define F512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl")))
#define F512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define BF16_INLINE \
    static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#endif

#if defined(__x86_64__)

#define MR 12
#define NR 32

/* Adds the accumulators of rows [0, m) to C or stores them. */
F512_INLINE void store_rows(__m512 *c0, __m512 *c1, float *c, size_t ldc, int accumulate, const int m) {
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        if (i < m) {
            float *ci = c + (size_t)i * ldc;
            if (accumulate) {
                c0[i] = _mm512_add_ps(_mm512_loadu_ps(ci), c0[i]);
                c1[i] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), c1[i]);
            }
            _mm512_storeu_ps(ci, c0[i]);
            _mm512_storeu_ps(ci + 16, c1[i]);
        }
}

F512_INLINE void fp32_rows(size_t steps, const float *a, const float *b, float *c, size_t ldc, int accumulate,
                           const int m) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        if (i < m) c0[i] = c1[i] = _mm512_setzero_ps();
    for (size_t p = 0; p < steps; p++) {
        __m512 b0 = _mm512_load_ps(b + NR * p), b1 = _mm512_load_ps(b + NR * p + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++)
            if (i < m) {
                __m512 ai = _mm512_set1_ps(a[MR * p + i]);
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
    }
    store_rows(c0, c1, c, ldc, accumulate, m);
}

/* One pair of bf16 per lane per step: VDPBF16PS adds x.odd * w.odd, then
 * x.even * w.even, into each fp32 lane. */
BF16_INLINE void bf16_rows(size_t steps, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                           int accumulate, const int m) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        if (i < m) c0[i] = c1[i] = _mm512_setzero_ps();
    for (size_t p = 0; p < steps; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b + NR * p), b1 = (__m512bh)_mm512_load_si512(b + NR * p + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++)
            if (i < m) {
                __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[MR * p + i]);
                c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
                c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
            }
    }
    store_rows(c0, c1, c, ldc, accumulate, m);
}

/* X -> bf16 pairs (rm_pack_a_pairs' layout) with VCVTNE2PS2BF16, which
 * rounds to nearest even like rm_f32_to_bf16 (and flushes denormals). */
BF16 static void pack_a_pairs(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst, size_t mr) {
    uint32_t *a = dst, words[16] __attribute__((aligned(64)));
    size_t steps = (kc + 1) / 2;
    for (size_t i = 0; i < rows; i++) {
        const float *src = x + i * ldx + k0;
        for (size_t k = 0; k < kc; k += 32) {
            size_t n = kc - k < 32 ? kc - k : 32;
            __mmask16 lo = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
            __mmask16 hi = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
            __m512 vlo = _mm512_maskz_loadu_ps(lo, src + k), vhi = _mm512_maskz_loadu_ps(hi, src + k + 16);
            _mm512_store_si512(words, (__m512i)_mm512_cvtne2ps_pbh(vhi, vlo));
            for (size_t p = 0; p < (n + 1) / 2; p++) a[(k / 2 + p) * mr + i] = words[p];
        }
    }
    for (size_t i = rows; i < mr; i++)
        for (size_t p = 0; p < steps; p++) a[p * mr + i] = 0;
}

/* m is a constant in each case, so each instantiation keeps only its rows. */
#define ROWS_SWITCH(fn, ...)                      \
    switch (m) {                                  \
    case 1: fn(__VA_ARGS__, 1); break;            \
    case 2: fn(__VA_ARGS__, 2); break;            \
    case 3: fn(__VA_ARGS__, 3); break;            \
    case 4: fn(__VA_ARGS__, 4); break;            \
    case 5: fn(__VA_ARGS__, 5); break;            \
    case 6: fn(__VA_ARGS__, 6); break;            \
    case 7: fn(__VA_ARGS__, 7); break;            \
    case 8: fn(__VA_ARGS__, 8); break;            \
    case 9: fn(__VA_ARGS__, 9); break;            \
    case 10: fn(__VA_ARGS__, 10); break;          \
    case 11: fn(__VA_ARGS__, 11); break;          \
    default: fn(__VA_ARGS__, 12); break;          \
    }

F512 static void tile_fp32(size_t steps, const void *a, const void *b, float *c, size_t ldc, int m, int accumulate) {
    ROWS_SWITCH(fp32_rows, steps, a, b, c, ldc, accumulate)
}

BF16 static void tile_bf16(size_t steps, const void *a, const void *b, float *c, size_t ldc, int m, int accumulate) {
    ROWS_SWITCH(bf16_rows, steps, a, b, c, ldc, accumulate)
}

const rm_gemm_kernel rm_gemm_avx512_fp32 = {
    .name = "avx512 fp32 12x32",
    .isa = RM_ISA_AVX512,
    .arith = RM_GEMM_FP32,
    .mr = MR, .nr = NR, .kstep = 1, .a_bytes = 4, .b_bytes = 4,
    .kc = RM_GEMM_KC, .mc = 192, .nc = 4096, .stream_rows = 48,
    .pack_a = rm_pack_a_f32,
    .pack_b = {{rm_pack_b_f32_nk_avx2, rm_pack_b_f32_kn}, {rm_pack_b_bf16_nk_avx2, rm_pack_b_bf16_kn}},
    .tile = tile_fp32,
};

const rm_gemm_kernel rm_gemm_avx512_bf16 = {
    .name = "avx512_bf16 bf16 12x32",
    .isa = RM_ISA_AVX512_BF16,
    .arith = RM_GEMM_BF16,
    .mr = MR, .nr = NR, .kstep = 2, .a_bytes = 4, .b_bytes = 4,
    .kc = RM_GEMM_KC, .mc = 192, .nc = 4096, .stream_rows = 48,   /* the portable bf16 kernel's blocks */
    .pack_a = pack_a_pairs,
    .pack_b = {{NULL, NULL}, {rm_pack_b_pairs_nk_avx2, NULL}},
    .tile = tile_bf16,
};

#endif
