/*
 * isa_emulation.h - the few AVX-512, AVX512_BF16 and AMX intrinsics the
 * GEMM kernels use, written in portable C after the pseudocode of the Intel
 * SDM (VFMADD231PS, VDPBF16PS, VCVTNE2PS2BF16, LDTILECFG, TILELOADD,
 * TILESTORED, TILEZERO, TDPBF16PS), so tests/test_gemm_emulated.c can run
 * lib/cpu/gemm_avx512.c and gemm_amx.c on a CPU without those
 * instructions: their tile layouts, packing, masks and edges are checked
 * everywhere; test_gemm checks the real instructions where the CPU has them.
 * Not emulated: the instructions' flushing of denormals to zero.
 *
 * The vector types are GCC's own definitions (vector extensions), so the
 * kernels' casts between them compile as they do against <immintrin.h>.
 */
#ifndef RM_TEST_ISA_EMULATION_H
#define RM_TEST_ISA_EMULATION_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* 64-byte vectors passed by value without AVX-512: fine inside this program. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float __m512 __attribute__((vector_size(64), may_alias));
typedef long long __m512i __attribute__((vector_size(64), may_alias));
typedef short __m512bh __attribute__((vector_size(64), may_alias));
typedef uint16_t __mmask16;

#define _MM_HINT_T0 3
static inline void _mm_prefetch(const void *p, int hint) { (void)p, (void)hint; }

static inline __m512 _mm512_setzero_ps(void) { return (__m512){0}; }
static inline __m512i _mm512_setzero_si512(void) { return (__m512i){0}; }
static inline __m512 _mm512_set1_ps(float f) {
    __m512 v;
    for (int i = 0; i < 16; i++) v[i] = f;
    return v;
}
static inline __m512i _mm512_set1_epi32(int x) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)x;
    __m512i v;
    memcpy(&v, w, 64);      /* not through a cast pointer: that would break aliasing rules */
    return v;
}
static inline __m512 _mm512_loadu_ps(const void *p) {
    __m512 v;
    memcpy(&v, p, 64);
    return v;
}
static inline __m512 _mm512_load_ps(const void *p) {
    if ((uintptr_t)p % 64) __builtin_trap();    /* the real one faults on a misaligned address */
    return _mm512_loadu_ps(p);
}
static inline __m512i _mm512_load_si512(const void *p) {
    if ((uintptr_t)p % 64) __builtin_trap();
    __m512i v;
    memcpy(&v, p, 64);
    return v;
}
static inline void _mm512_storeu_ps(void *p, __m512 v) { memcpy(p, &v, 64); }
static inline void _mm512_store_si512(void *p, __m512i v) {
    if ((uintptr_t)p % 64) __builtin_trap();
    memcpy(p, &v, 64);
}
/* Masked-off lanes read nothing (the real load does not fault on them). */
static inline __m512 _mm512_maskz_loadu_ps(__mmask16 k, const void *p) {
    __m512 v = {0};
    const float *f = p;
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) v[i] = f[i];
    return v;
}
static inline __m512 _mm512_add_ps(__m512 a, __m512 b) { return a + b; }
static inline __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c) {
    __m512 r;
    for (int i = 0; i < 16; i++) r[i] = fmaf(a[i], b[i], c[i]);
    return r;
}

static inline float emu_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t emu_to_bf16(float f) {      /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* VDPBF16PS: each lane adds the product of the odd halves, then of the even ones. */
static inline __m512 _mm512_dpbf16_ps(__m512 acc, __m512bh a, __m512bh b) {
    uint16_t ha[32], hb[32];
    memcpy(ha, &a, 64);
    memcpy(hb, &b, 64);
    for (int j = 0; j < 16; j++) {
        acc[j] = fmaf(emu_bf16(ha[2 * j + 1]), emu_bf16(hb[2 * j + 1]), acc[j]);
        acc[j] = fmaf(emu_bf16(ha[2 * j]), emu_bf16(hb[2 * j]), acc[j]);
    }
    return acc;
}
/* VCVTNE2PS2BF16: the low 16 results from b, the high 16 from a. */
static inline __m512bh _mm512_cvtne2ps_pbh(__m512 a, __m512 b) {
    uint16_t h[32];
    for (int i = 0; i < 16; i++) h[i] = emu_to_bf16(b[i]), h[16 + i] = emu_to_bf16(a[i]);
    __m512bh r;
    memcpy(&r, h, 64);
    return r;
}

/* ---------------------------------------------------------------- AMX */

typedef struct emu_tile {
    int rows, colsb;
    uint8_t data[16][64];
} emu_tile;

static _Thread_local emu_tile emu_tiles[8];   /* tile registers are per thread */
static _Thread_local int emu_tiles_configured;

static inline void _tile_loadconfig(const void *config) {
    const uint8_t *c = config;
    if (c[0] != 1) __builtin_trap();            /* palette 1 only */
    for (int t = 0; t < 8; t++) {
        uint16_t colsb;
        memcpy(&colsb, c + 16 + 2 * t, 2);
        emu_tiles[t].colsb = colsb;
        emu_tiles[t].rows = c[48 + t];
        if (colsb > 64 || c[48 + t] > 16) __builtin_trap();
    }
    emu_tiles_configured = 1;
}
static inline void _tile_release(void) { emu_tiles_configured = 0; }

static inline emu_tile *emu_tile_get(int t) {
    if (!emu_tiles_configured || t < 0 || t > 7) __builtin_trap();
    return &emu_tiles[t];
}
#define _tile_loadd(t, base, stride) emu_tile_loadd(t, base, stride)
#define _tile_stored(t, base, stride) emu_tile_stored(t, base, stride)
#define _tile_zero(t) emu_tile_zero(t)
#define _tile_dpbf16ps(c, a, b) emu_tile_dpbf16ps(c, a, b)

static inline void emu_tile_loadd(int t, const void *base, long stride) {
    emu_tile *x = emu_tile_get(t);
    memset(x->data, 0, sizeof x->data);
    for (int r = 0; r < x->rows; r++) memcpy(x->data[r], (const char *)base + r * stride, (size_t)x->colsb);
}
static inline void emu_tile_stored(int t, void *base, long stride) {
    emu_tile *x = emu_tile_get(t);
    for (int r = 0; r < x->rows; r++) memcpy((char *)base + r * stride, x->data[r], (size_t)x->colsb);
}
static inline void emu_tile_zero(int t) { memset(emu_tile_get(t)->data, 0, sizeof emu_tiles[0].data); }

/* TDPBF16PS: dst[m][n] += sum over k of a[m].pair[k] . b[k].pair[n], each
 * pair's even then odd product (SDM pseudocode order). */
static inline void emu_tile_dpbf16ps(int tc, int ta, int tb) {
    emu_tile *c = emu_tile_get(tc), *a = emu_tile_get(ta), *b = emu_tile_get(tb);
    if (a->colsb / 4 != b->rows || c->colsb != b->colsb || c->rows != a->rows) __builtin_trap();
    for (int m = 0; m < c->rows; m++)
        for (int n = 0; n < c->colsb / 4; n++) {
            float acc;
            memcpy(&acc, c->data[m] + 4 * n, 4);
            for (int k = 0; k < a->colsb / 4; k++) {
                uint16_t a0, a1, b0, b1;
                memcpy(&a0, a->data[m] + 4 * k, 2);
                memcpy(&a1, a->data[m] + 4 * k + 2, 2);
                memcpy(&b0, b->data[k] + 4 * n, 2);
                memcpy(&b1, b->data[k] + 4 * n + 2, 2);
                acc = fmaf(emu_bf16(a0), emu_bf16(b0), acc);
                acc = fmaf(emu_bf16(a1), emu_bf16(b1), acc);
            }
            memcpy(c->data[m] + 4 * n, &acc, 4);
        }
}

#endif
