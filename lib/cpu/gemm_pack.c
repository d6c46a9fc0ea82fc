/*
 * gemm_pack.c - portable packing of X and W into the kernels' panel layouts
 * (gemm_kernel.h). The AVX2 file has faster versions of the W packers that
 * run on every W element when few rows stream through the kernel.
 */
#include "cpu/gemm_kernel.h"

#include <string.h>

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void rm_pack_a_f32(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst, size_t mr) {
    float *a = dst;
    for (size_t i = 0; i < rows; i++) {
        const float *src = x + i * ldx + k0;
        for (size_t p = 0; p < kc; p++) a[p * mr + i] = src[p];
    }
    for (size_t i = rows; i < mr; i++)
        for (size_t p = 0; p < kc; p++) a[p * mr + i] = 0;
}

/* Two bf16 in one 32-bit word, the lower k in the low half (little-endian
 * memory order, as VDPBF16PS and TDPBF16PS read pairs). */
static inline uint32_t pair(uint16_t lo, uint16_t hi) { return (uint32_t)lo | (uint32_t)hi << 16; }

void rm_pack_a_pairs(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst, size_t mr) {
    uint32_t *a = dst;
    size_t steps = (kc + 1) / 2;
    for (size_t i = 0; i < rows; i++) {
        const float *src = x + i * ldx + k0;
        for (size_t p = 0; p < kc / 2; p++)
            a[p * mr + i] = pair(rm_f32_to_bf16(src[2 * p]), rm_f32_to_bf16(src[2 * p + 1]));
        if (kc % 2) a[(steps - 1) * mr + i] = pair(rm_f32_to_bf16(src[kc - 1]), 0);
    }
    for (size_t i = rows; i < mr; i++)
        for (size_t p = 0; p < steps; p++) a[p * mr + i] = 0;
}

void rm_pack_b_f32_nk(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst, size_t nr, int ahead) {
    const float *W = w;
    float *b = dst;
    for (size_t j = 0; j < cols; j++) {
        const float *src = W + j * ldw + k0;
        for (size_t p = 0; p < kc; p++) b[p * nr + j] = src[p];
    }
    for (size_t p = 0; p < kc; p++)
        for (size_t j = cols; j < nr; j++) b[p * nr + j] = 0;
}

void rm_pack_b_f32_kn(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst, size_t nr, int ahead) {
    const float *W = w;
    float *b = dst;
    for (size_t p = 0; p < kc; p++) {
        memcpy(b + p * nr, W + (k0 + p) * ldw, cols * sizeof(float));
        for (size_t j = cols; j < nr; j++) b[p * nr + j] = 0;
    }
}

void rm_pack_b_bf16_nk(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst, size_t nr, int ahead) {
    const uint16_t *W = w;
    float *b = dst;
    for (size_t j = 0; j < cols; j++) {
        const uint16_t *src = W + j * ldw + k0;
        for (size_t p = 0; p < kc; p++) b[p * nr + j] = bf16_to_f32(src[p]);
    }
    for (size_t p = 0; p < kc; p++)
        for (size_t j = cols; j < nr; j++) b[p * nr + j] = 0;
}

void rm_pack_b_bf16_kn(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst, size_t nr, int ahead) {
    const uint16_t *W = w;
    float *b = dst;
    for (size_t p = 0; p < kc; p++) {
        for (size_t j = 0; j < cols; j++) b[p * nr + j] = bf16_to_f32(W[(k0 + p) * ldw + j]);
        for (size_t j = cols; j < nr; j++) b[p * nr + j] = 0;
    }
}

void rm_pack_b_pairs_nk(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst, size_t nr, int ahead) {
    const uint16_t *W = w;
    uint32_t *b = dst;
    size_t steps = (kc + 1) / 2;
    for (size_t j = 0; j < cols; j++) {
        const uint16_t *src = W + j * ldw + k0;
        for (size_t p = 0; p < kc / 2; p++) b[p * nr + j] = pair(src[2 * p], src[2 * p + 1]);
        if (kc % 2) b[(steps - 1) * nr + j] = pair(src[kc - 1], 0);
    }
    for (size_t p = 0; p < steps; p++)
        for (size_t j = cols; j < nr; j++) b[p * nr + j] = 0;
}
