/*
 * gemm.h - the CPU engine's matrix products, Y[m, n] = X[m, k] . W^T (+ bias),
 * with kernels chosen by the CPU's features (cpuid.h): AMX or AVX512_BF16
 * dot products on bf16, AVX-512 or AVX2 FMA on fp32, portable C elsewhere.
 *
 * X and Y are fp32. W is fp32 or bf16, stored [n, k] (a weight matrix, rows
 * are output features) or [k, n] (attention's values). One call is one
 * GEMM; with n_threads > 1 the output columns are split over an OpenMP team.
 *
 * Exactness (docs/performance.md): an fp32 kernel computes every element of
 * Y the same way whatever the thread count, the number of rows m and the
 * ISA: a chain of fused multiply-adds along k in blocks of RM_GEMM_KC, each
 * block's sum added to the previous ones in order, then the bias. So a row's
 * result does not depend on the batch it was computed in, and fp32 results
 * are bitwise the same on AVX2, AVX-512 and the portable kernel (which uses
 * fmaf). bf16 weights through an fp32 kernel are widened exactly, so they
 * give the same numbers as an fp32 copy of the same weights.
 * The bf16 kernels round X to bf16 and accumulate pairs of products in fp32
 * (as VDPBF16PS / TDPBF16PS do): the same per-row independence holds for
 * each kernel, but AMX and AVX512_BF16 differ from each other in rounding.
 */
#ifndef RM_CPU_GEMM_H
#define RM_CPU_GEMM_H

#include "common.h"
#include "cpu/cpuid.h"

/* k per block of the fp32 kernels: part of the numbers' definition (above). */
#define RM_GEMM_KC 256

/* The arithmetic of a kernel. */
typedef enum rm_gemm_arith {
    RM_GEMM_FP32 = 0,       /* fp32 products and sums (bf16 weights widened exactly) */
    RM_GEMM_BF16 = 1,       /* X rounded to bf16, bf16 x bf16 products, fp32 sums */
} rm_gemm_arith;

/* How W is stored. */
typedef enum rm_gemm_wtype { RM_GEMM_W_F32 = 0, RM_GEMM_W_BF16 = 1 } rm_gemm_wtype;

typedef struct rm_gemm_kernel rm_gemm_kernel;

/* The kernel of this arithmetic at this ISA level exactly, or NULL when
 * there is none or the CPU lacks the level. Levels: fp32 kernels at
 * GENERIC, AVX2, AVX512; bf16 kernels at GENERIC (a portable reference of
 * the AVX512_BF16 arithmetic, for tests), AVX512_BF16, AMX. */
RM_INTERNAL const rm_gemm_kernel *rm_gemm_kernel_at(rm_isa isa, rm_gemm_arith arith);

/* The kernel the engine uses for weights of type w under `arith` on this
 * CPU, at most at level max_isa (RM_ISA_COUNT: no limit):
 *   RM_GEMM_FP32: the widest fp32 kernel (bf16 weights widened in packing).
 *   RM_GEMM_BF16: AMX, else AVX512_BF16, else the widest fp32 kernel on the
 *                 bf16 weights (the converting path: fp32 products of the
 *                 same bf16 weights, more accurate and as fast as it gets
 *                 without bf16 dot-product instructions).
 * Never NULL. */
RM_INTERNAL const rm_gemm_kernel *rm_gemm_kernel_pick(rm_gemm_arith arith, rm_isa max_isa);

/* "avx2 fp32 6x16", ...; its ISA level and arithmetic. */
RM_INTERNAL const char *rm_gemm_kernel_name(const rm_gemm_kernel *k);
RM_INTERNAL rm_isa rm_gemm_kernel_isa(const rm_gemm_kernel *k);
RM_INTERNAL rm_gemm_arith rm_gemm_kernel_arith(const rm_gemm_kernel *k);
/* 1 when the kernel takes W of this type and layout (w_kn: stored [k, n]). */
RM_INTERNAL int rm_gemm_kernel_takes(const rm_gemm_kernel *k, rm_gemm_wtype w, int w_kn);

typedef struct rm_gemm_args {
    size_t m, n, k;
    const float *x;         /* [m, k], row stride ldx */
    size_t ldx;
    const void *w;          /* [n, k] (w_kn = 0) or [k, n] (w_kn = 1), row stride ldw, elements of wtype */
    size_t ldw;
    rm_gemm_wtype wtype;
    int w_kn;
    const float *bias;      /* [n] or NULL */
    float *y;               /* [m, n], row stride ldy; must not overlap x or w */
    size_t ldy;
    /* The row count at or below which W is streamed through the kernel a few
     * columns at a time (read once, no block of it packed for reuse: the
     * GEMV-shaped path of the last layer and short passes) rather than
     * packed in blocks reused over many rows. The numbers are the same
     * either way. 0: the kernel's default (tests move it to reach both). */
    size_t stream_rows;
} rm_gemm_args;

/* The default stream_rows for products of this k: the rows whose packed X
 * takes at most 4 MB, and at least the kernel's own minimum. */
RM_INTERNAL size_t rm_gemm_stream_rows(const rm_gemm_kernel *kern, size_t k);

/* fp32 -> bf16, rounding to nearest even; NaN stays NaN (quiet). The one
 * rounding of activations (portable packing) and of resident bf16 copies. */
static inline uint16_t rm_f32_to_bf16(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Scratch (bytes) one thread needs for products with k <= max_k and the
 * given stream_rows (0: the default). */
RM_INTERNAL size_t rm_gemm_scratch_bytes(const rm_gemm_kernel *k, size_t max_k, size_t stream_rows);

/* Y = X . W^T (+ bias) on up to n_threads threads (one OpenMP team; a call
 * from inside a parallel region runs on the calling thread). scratch holds
 * n_threads * rm_gemm_scratch_bytes(kern, >= a->k, a->stream_rows)
 * bytes, or is NULL: then
 * it is allocated here and RM_ERR_NOMEM is the only failure. Returns
 * RM_ERR_INVALID_ARG when the kernel does not take this W (rm_gemm_kernel_takes). */
RM_INTERNAL rm_status rm_gemm(const rm_gemm_kernel *kern, const rm_gemm_args *a, void *scratch, int n_threads);

#endif
