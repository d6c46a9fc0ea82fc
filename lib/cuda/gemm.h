/*
 * gemm.h - every projection of the CUDA engine is one cuBLASLt matmul:
 * Y[m, n] = X[m, k] . W[n, k]^T, row-major, bf16 out, fp32 accumulation.
 *
 *   bf16        X and W bf16.
 *   FP8 rows    X and W e4m3 with one fp32 scale per row of each (per token,
 *               per output channel): CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
 *               on both operands, so Y[i][j] = sx[i] * sw[j] * sum_k x q w q.
 *   FP8 tensor  the fallback where the heuristic refuses OUTER_VEC: one scale
 *               per operand (CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F).
 *
 * cuBLAS is column-major, so the call computes Y^T = W . X^T: A = W with
 * transa = T, B = X with transb = N (the "TN" layout FP8 requires on Hopper).
 * A plan (descriptors, layouts, the heuristic's algorithm) is chosen once per
 * shape, stride and pointer alignment and cached; the same shape always gets
 * the same algorithm, so results do not depend on what ran before.
 * CUBLASLT_MATMUL_DESC_FAST_ACCUM on FP8 is off by default (accuracy first:
 * the accumulator is promoted to fp32 periodically); the benchmark measures
 * both (cu_gemm.fast_accum).
 */
#ifndef RM_CUDA_GEMM_H
#define RM_CUDA_GEMM_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "common.h"

typedef enum cu_gemm_kind { CU_GEMM_BF16 = 0, CU_GEMM_FP8_ROWS = 1, CU_GEMM_FP8_TENSOR = 2 } cu_gemm_kind;

typedef struct cu_gemm_call {
    cu_gemm_kind kind;
    int m, n, k;                /* Y is m x n; the sum runs over k */
    const void *x;              /* m rows of k values (bf16 or e4m3), rows ldx elements apart */
    size_t ldx;
    const float *x_scale;       /* FP8: m scales (rows) or 1 (tensor), on the device */
    const void *w;              /* n rows of k values: the output channels, rows ldw apart */
    size_t ldw;
    const float *w_scale;       /* FP8: n scales (rows) or 1 (tensor), on the device */
    uint16_t *y;                /* m rows of n bf16 values, rows ldy apart */
    size_t ldy;
} cu_gemm_call;

typedef struct cu_gemm_plan cu_gemm_plan;

typedef struct cu_gemm {
    int gpu;
    cublasLtHandle_t lt;
    void *workspace;            /* allocated once, at create */
    size_t workspace_bytes;
    int fast_accum;             /* FP8: CUBLASLT_MATMUL_DESC_FAST_ACCUM */
    cu_gemm_plan *plans;        /* open-addressed cache */
    size_t n_plans, cap_plans;
    /* Profiling: when record is not NULL, each call run is appended (up to
     * cap_record) so the benchmark can replay the pass's GEMMs alone. */
    cu_gemm_call *record;
    size_t n_record, cap_record;
} cu_gemm;

/* Creates the cuBLASLt handle and the workspace on the current device. */
RM_INTERNAL rm_status cu_gemm_init(cu_gemm *g, int gpu, size_t workspace_bytes, rm_err *err);
RM_INTERNAL void cu_gemm_free(cu_gemm *g);
/* Runs one GEMM on stream (an empty one is a no-op). */
RM_INTERNAL rm_status cu_gemm_run(cu_gemm *g, const cu_gemm_call *c, cudaStream_t stream, rm_err *err);
/* Does the heuristic give an algorithm for this kind at this shape (dense,
 * aligned operands)? RM_OK, RM_ERR_UNSUPPORTED when it gives none, or
 * RM_ERR_DEVICE when cuBLASLt itself failed. */
RM_INTERNAL rm_status cu_gemm_check(cu_gemm *g, cu_gemm_kind kind, int m, int n, int k, rm_err *err);

#endif
