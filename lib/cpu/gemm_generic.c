/*
 * gemm_generic.c - the portable kernels: any CPU, and the references the
 * SIMD kernels are tested against.
 *   generic fp32: fmaf chains, the same operations in the same order as the
 *     AVX2 / AVX-512 fp32 kernels, so all of them agree bit for bit.
 *   generic bf16: the arithmetic of VDPBF16PS in C (each lane adds the
 *     product of the odd pair members, then of the even ones, each an fp32
 *     fused multiply-add; bf16 x bf16 products are exact in fp32). The
 *     engine never picks it (the converting path is faster and more exact);
 *     tests use it to check the bf16 kernels and the accuracy of bf16
 *     activations on any machine. It differs from VDPBF16PS only in
 *     denormals, which the instruction flushes to zero.
 */
#include "cpu/gemm_kernel.h"

#include <math.h>
#include <string.h>

#define GEN_MR 4
#define GEN_NR 16

static void store_tile(float t[GEN_MR][GEN_NR], float *c, size_t ldc, int m, int accumulate) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < GEN_NR; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
}

static void tile_fp32(size_t steps, const void *ap, const void *bp, float *c, size_t ldc, int m, int accumulate) {
    const float *a = ap, *b = bp;
    float t[GEN_MR][GEN_NR];
    memset(t, 0, sizeof t);
    for (size_t p = 0; p < steps; p++)
        for (int i = 0; i < m; i++) {
            float ai = a[p * GEN_MR + i];
            for (int j = 0; j < GEN_NR; j++) t[i][j] = fmaf(ai, b[p * GEN_NR + j], t[i][j]);
        }
    store_tile(t, c, ldc, m, accumulate);
}

static inline float lo_half(uint32_t w) {
    uint32_t u = w << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float hi_half(uint32_t w) {
    uint32_t u = w & 0xffff0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void tile_bf16(size_t steps, const void *ap, const void *bp, float *c, size_t ldc, int m, int accumulate) {
    const uint32_t *a = ap, *b = bp;
    float t[GEN_MR][GEN_NR];
    memset(t, 0, sizeof t);
    for (size_t p = 0; p < steps; p++)
        for (int i = 0; i < m; i++) {
            uint32_t ai = a[p * GEN_MR + i];
            float a_odd = hi_half(ai), a_even = lo_half(ai);
            for (int j = 0; j < GEN_NR; j++) {
                uint32_t bj = b[p * GEN_NR + j];
                t[i][j] = fmaf(a_odd, hi_half(bj), t[i][j]);
                t[i][j] = fmaf(a_even, lo_half(bj), t[i][j]);
            }
        }
    store_tile(t, c, ldc, m, accumulate);
}

const rm_gemm_kernel rm_gemm_generic_fp32 = {
    .name = "generic fp32 4x16",
    .isa = RM_ISA_GENERIC,
    .arith = RM_GEMM_FP32,
    .mr = GEN_MR, .nr = GEN_NR, .kstep = 1, .a_bytes = 4, .b_bytes = 4,
    .kc = RM_GEMM_KC, .mc = 64, .nc = 1024, .stream_rows = 8,
    .pack_a = rm_pack_a_f32,
    .pack_b = {{rm_pack_b_f32_nk, rm_pack_b_f32_kn}, {rm_pack_b_bf16_nk, rm_pack_b_bf16_kn}},
    .tile = tile_fp32,
};

const rm_gemm_kernel rm_gemm_generic_bf16 = {
    .name = "generic bf16 4x16 (reference)",
    .isa = RM_ISA_GENERIC,
    .arith = RM_GEMM_BF16,
    .mr = GEN_MR, .nr = GEN_NR, .kstep = 2, .a_bytes = 4, .b_bytes = 4,
    .kc = RM_GEMM_KC, .mc = 64, .nc = 1024, .stream_rows = 8,
    .pack_a = rm_pack_a_pairs,
    .pack_b = {{NULL, NULL}, {rm_pack_b_pairs_nk, NULL}},
    .tile = tile_bf16,
};
