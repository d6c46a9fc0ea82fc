/*
 * gemm_avx2.c - the AVX2 + FMA fp32 kernel (6 rows x 16 columns: twelve
 * 8-lane accumulators, the shape that keeps both FMA ports busy with 16
 * registers) and the W packers every x86 kernel uses: W's rows are
 * transposed 8 x 8 in registers, bf16 widened on the way.
 *
 * Every function carries its target attribute: the library is built for
 * plain x86-64 and only calls these when cpuid reports AVX2 and FMA.
 */
#include "cpu/gemm_kernel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

#define MR 6
#define NR 16

/* Rows r[0..8) of 8 values -> r[p] holds element p of every row. */
AVX2_INLINE void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Bytes ahead of the packing position that each W row is prefetched. */
#ifndef PACK_PREFETCH
#define PACK_PREFETCH 1024
#endif

/* 8 consecutive 32-bit elements of a row, as floats: fp32 values, or bf16
 * widened (kind 1), or bf16 pairs moved as they are (kind 2). */
AVX2_INLINE __m256 load8(const char *row, size_t p, int kind) {
    if (kind == 1)
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * p))), 16));
    return _mm256_loadu_ps((const float *)(row + 4 * p));
}

/* The shared body of the three nk packers: `steps` 32-bit elements per
 * column j of W (row j, starting at byte offset `start`, `stride` bytes
 * apart) into b[p * nr + j]. Elements [0, full) are whole; one more, when
 * steps > full, is the lone last k of a pair-packed row. Leftovers of the
 * 8 x 8 blocks go through `scalar`. */
typedef float (*scalar_fn)(const char *row, size_t p, int lone);

AVX2_INLINE void pack_nk(const char *w, size_t stride, size_t start, size_t cols, size_t steps, size_t full,
                         float *b, size_t nr, int kind, scalar_fn scalar, int ahead) {
    size_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        const char *rows[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) rows[r] = w + (j + (size_t)r) * stride + start;
        size_t p = 0, es = kind == 1 ? 2 : 4;
        /* 16 elements of each row per step: a whole 64-byte line of fp32,
         * so the 8 rows' lines (which a power-of-two row stride puts in one
         * L1 set) are used up before they can evict each other; with
         * `ahead`, the rows ahead are prefetched (W comes straight from
         * memory). */
        for (; p + 16 <= full; p += 16) {
            if (ahead)
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) _mm_prefetch(rows[r] + es * p + PACK_PREFETCH, _MM_HINT_T0);
#pragma GCC unroll 2
            for (int h = 0; h < 16; h += 8) {
                __m256 v[8];
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) v[r] = load8(rows[r], p + (size_t)h, kind);
                transpose8(v);
#pragma GCC unroll 8
                for (int q = 0; q < 8; q++) _mm256_store_ps(b + (p + (size_t)(h + q)) * nr + j, v[q]);
            }
        }
        for (; p + 8 <= full; p += 8) {
            __m256 v[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) v[r] = load8(rows[r], p, kind);
            transpose8(v);
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) _mm256_store_ps(b + (p + (size_t)q) * nr + j, v[q]);
        }
        for (; p < steps; p++)
            for (int r = 0; r < 8; r++) b[p * nr + j + (size_t)r] = scalar(rows[r], p, p >= full);
    }
    for (; j < cols; j++) {
        const char *row = w + j * stride + start;
        for (size_t p = 0; p < steps; p++) b[p * nr + j] = scalar(row, p, p >= full);
    }
    if (cols < nr)
        for (size_t p = 0; p < steps; p++) memset(b + p * nr + cols, 0, (nr - cols) * sizeof(float));
}

/* Element p of a row, one at a time. */
static float scalar_f32(const char *row, size_t p, int lone) {
    float f;
    memcpy(&f, row + 4 * p, 4);
    return f;
}

static float scalar_bf16(const char *row, size_t p, int lone) {
    uint16_t h;
    memcpy(&h, row + 2 * p, 2);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float scalar_pairs(const char *row, size_t p, int lone) {
    uint32_t u = 0;
    if (lone) memcpy(&u, row + 4 * p, 2);   /* the last k alone, paired with zero (little-endian) */
    else memcpy(&u, row + 4 * p, 4);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

AVX2 void rm_pack_b_f32_nk_avx2(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst, size_t nr,
                                int ahead) {
    pack_nk(w, ldw * 4, k0 * 4, cols, kc, kc, dst, nr, 0, scalar_f32, ahead);
}

AVX2 void rm_pack_b_bf16_nk_avx2(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                 size_t nr, int ahead) {
    pack_nk(w, ldw * 2, k0 * 2, cols, kc, kc, dst, nr, 1, scalar_bf16, ahead);
}

/* k0 is even (blocks are whole k-steps), so a pair never straddles blocks. */
AVX2 void rm_pack_b_pairs_nk_avx2(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                  size_t nr, int ahead) {
    pack_nk(w, ldw * 2, k0 * 2, cols, (kc + 1) / 2, kc / 2, dst, nr, 2, scalar_pairs, ahead);
}

/* X panel of 6 rows (rm_pack_a_f32's layout: a[p * 6 + i]): 8 k of the 6
 * rows (and 2 zero rows) transposed 8 x 8, each column stored as 8 floats
 * of which the next store overwrites the last 2; the last column of the
 * panel is stored masked to its 6. */
AVX2 static void pack_a_6(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst, size_t mr) {
    if (rows != MR || mr != MR || kc < 8) {
        rm_pack_a_f32(x, ldx, rows, k0, kc, dst, mr);
        return;
    }
    float *a = dst;
    const float *src[MR];
    for (int i = 0; i < MR; i++) src[i] = x + (size_t)i * ldx + k0;
    const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
    size_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        __m256 v[8];
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) v[i] = _mm256_loadu_ps(src[i] + p);
        v[6] = v[7] = _mm256_setzero_ps();
        transpose8(v);
#pragma GCC unroll 7
        for (int q = 0; q < 7; q++) _mm256_storeu_ps(a + (p + (size_t)q) * MR, v[q]);
        if (p + 8 < kc) _mm256_storeu_ps(a + (p + 7) * MR, v[7]);
        else _mm256_maskstore_ps(a + (p + 7) * MR, six, v[7]);
    }
    for (; p < kc; p++)
        for (int i = 0; i < MR; i++) a[p * MR + (size_t)i] = src[i][p];
}

/* ---------------------------------------------------------------- the 6 x 16 tile */

/* m (1..6) is a constant in each instantiation below, so the accumulators
 * of the rows present stay in registers and absent rows cost nothing. */
AVX2_INLINE void tile_rows(size_t steps, const float *a, const float *b, float *c, size_t ldc, int accumulate,
                           const int m) {
    __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        if (i < m) {
            c0[i] = c1[i] = _mm256_setzero_ps();
            /* C is read (or written) after the k loop: fetch it meanwhile
             * (a large Y is far out of cache on each k block's visit). */
            _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + (size_t)i * ldc + NR - 1), _MM_HINT_T0);
        }
#pragma GCC unroll 2
    for (size_t p = 0; p < steps; p++) {
        __m256 b0 = _mm256_load_ps(b + NR * p), b1 = _mm256_load_ps(b + NR * p + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++)
            if (i < m) {
                __m256 ai = _mm256_broadcast_ss(a + MR * p + i);
                c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
            }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        if (i < m) {
            float *ci = c + (size_t)i * ldc;
            if (accumulate) {
                c0[i] = _mm256_add_ps(_mm256_loadu_ps(ci), c0[i]);
                c1[i] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), c1[i]);
            }
            _mm256_storeu_ps(ci, c0[i]);
            _mm256_storeu_ps(ci + 8, c1[i]);
        }
}

AVX2 static void tile(size_t steps, const void *a, const void *b, float *c, size_t ldc, int m, int accumulate) {
    switch (m) {
    case 1: tile_rows(steps, a, b, c, ldc, accumulate, 1); break;
    case 2: tile_rows(steps, a, b, c, ldc, accumulate, 2); break;
    case 3: tile_rows(steps, a, b, c, ldc, accumulate, 3); break;
    case 4: tile_rows(steps, a, b, c, ldc, accumulate, 4); break;
    case 5: tile_rows(steps, a, b, c, ldc, accumulate, 5); break;
    default: tile_rows(steps, a, b, c, ldc, accumulate, 6); break;
    }
}

const rm_gemm_kernel rm_gemm_avx2_fp32 = {
    .name = "avx2 fp32 6x16",
    .isa = RM_ISA_AVX2,
    .arith = RM_GEMM_FP32,
    .mr = MR, .nr = NR, .kstep = 1, .a_bytes = 4, .b_bytes = 4,
    .kc = RM_GEMM_KC, .mc = 144, .nc = 1024, .stream_rows = 24,
    .pack_a = pack_a_6,
    .pack_b = {{rm_pack_b_f32_nk_avx2, rm_pack_b_f32_kn}, {rm_pack_b_bf16_nk_avx2, rm_pack_b_bf16_kn}},
    .tile = tile,
};

#endif
