/*
 * gemm_amx.c - the AMX kernel: bf16 tiles, TDPBF16PS, 32 rows x 32 columns
 * per tile product. Eight tile registers of 16 rows x 64 bytes: four hold
 * the fp32 sums C[2][2], two hold 16 rows x 32 k of X (bf16), two hold
 * 16 k-pairs x 16 columns of W (the same bf16-pair panel the AVX512_BF16
 * kernel reads, 32 columns wide: a tile takes one half of each row).
 *
 * Runs only where cpuid reports AMX-TILE and AMX-BF16, XCR0 enables the tile
 * state and Linux granted this process the tile permission (cpuid.c). Each
 * thread loads the tile configuration before its share and releases it
 * after (thread_begin / thread_end).
 *
 * GCC's tile intrinsics are asm statements that do not tell the compiler
 * which memory they read or write, so compiler barriers surround them:
 * buffers written in C are complete before a tile load, and memory a tile
 * store wrote is re-read after.
 */
#include "cpu/gemm_kernel.h"

#if defined(RM_ISA_EMULATION)  /* tests/test_gemm.c: the same code on portable C intrinsics */
#include "isa_emulation.h"
#define AMX
#elif defined(__x86_64__)
#include <immintrin.h>
#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#endif

#if defined(__x86_64__)
#include <string.h>

#define MR 32
#define NR 32
#define KSTEP 32            /* k per tile product: 16 bf16 pairs */

#define BARRIER() __asm__ volatile("" ::: "memory")

typedef struct tile_config {
    uint8_t palette;        /* 1: 8 tiles of up to 16 rows x 64 bytes */
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];     /* bytes per row of each tile */
    uint8_t rows[16];
} tile_config;

AMX static void amx_begin(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    BARRIER();
    _tile_loadconfig(&cfg);
    BARRIER();
}

AMX static void amx_end(void) { _tile_release(); }

/* X panel: per k-step s, MR rows of 32 bf16 (64 bytes), the tile rows as
 * they are; VCVTNE2PS2BF16 rounds to nearest even (AMX CPUs have AVX512_BF16:
 * cpuid.c's levels). */
AMX static void pack_a_amx(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst, size_t mr) {
    char *a = dst;
    size_t steps = (kc + KSTEP - 1) / KSTEP;
    for (size_t s = 0; s < steps; s++)
        for (size_t i = 0; i < mr; i++) {
            size_t k = s * KSTEP, n = i < rows ? (kc - k < KSTEP ? kc - k : KSTEP) : 0;
            __mmask16 lo = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
            __mmask16 hi = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
            __m512i v = _mm512_setzero_si512();
            if (n) {
                const float *src = x + i * ldx + k0 + k;
                v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + 16), _mm512_maskz_loadu_ps(lo, src));
            }
            _mm512_store_si512(a + (s * mr + i) * 64, v);
        }
}

/* W panel: bf16 pairs, zero up to a whole k-step. */
static void pack_b_amx(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst, size_t nr, int ahead) {
    rm_pack_b_pairs_nk_avx2(w, ldw, cols, k0, kc, dst, nr, ahead);
    size_t pairs = (kc + 1) / 2, padded = (kc + KSTEP - 1) / KSTEP * (KSTEP / 2);
    memset((uint32_t *)dst + pairs * nr, 0, (padded - pairs) * nr * sizeof(uint32_t));
}

AMX static void tile(size_t steps, const void *ap, const void *bp, float *c, size_t ldc, int m, int accumulate) {
    const char *a = ap, *b = bp;
    float buf[MR * NR] __attribute__((aligned(64)));
    float *dst = c;
    size_t ld = ldc;
    if (m < MR) {           /* tiles always hold 32 rows: go through buf */
        dst = buf, ld = NR;
        if (accumulate) {
            for (int i = 0; i < m; i++) memcpy(buf + i * NR, c + (size_t)i * ldc, NR * sizeof(float));
            memset(buf + m * NR, 0, (size_t)(MR - m) * NR * sizeof(float));
        }
    }
    long stride = (long)(ld * sizeof(float));
    BARRIER();
    if (accumulate) {
        _tile_loadd(0, dst, stride);
        _tile_loadd(1, dst + 16, stride);
        _tile_loadd(2, dst + 16 * ld, stride);
        _tile_loadd(3, dst + 16 * ld + 16, stride);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (size_t s = 0; s < steps; s++) {
        const char *as = a + s * MR * 64, *bs = b + s * 16 * NR * 4;
        _tile_loadd(4, as, 64);             /* X rows 0-15 */
        _tile_loadd(5, as + 16 * 64, 64);   /* X rows 16-31 */
        _tile_loadd(6, bs, NR * 4);         /* W columns 0-15 */
        _tile_loadd(7, bs + 64, NR * 4);    /* W columns 16-31 */
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, dst, stride);
    _tile_stored(1, dst + 16, stride);
    _tile_stored(2, dst + 16 * ld, stride);
    _tile_stored(3, dst + 16 * ld + 16, stride);
    BARRIER();
    if (dst == buf)
        for (int i = 0; i < m; i++) memcpy(c + (size_t)i * ldc, buf + i * NR, NR * sizeof(float));
}

const rm_gemm_kernel rm_gemm_amx_bf16 = {
    .name = "amx bf16 32x32",
    .isa = RM_ISA_AMX,
    .arith = RM_GEMM_BF16,
    .mr = MR, .nr = NR, .kstep = KSTEP, .a_bytes = KSTEP * 2, .b_bytes = KSTEP * 2,
    .kc = 2 * RM_GEMM_KC, .mc = 128, .nc = 4096, .stream_rows = 64,
    .pack_a = pack_a_amx,
    .pack_b = {{NULL, NULL}, {pack_b_amx, NULL}},
    .tile = tile,
    .thread_begin = amx_begin,
    .thread_end = amx_end,
};

#endif
