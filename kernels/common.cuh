/*
 * common.cuh - what every kernel file shares: bf16 bit conversions, grid
 * sizing, warp and block reductions. Device code only (included by the .cu
 * files, never by host C).
 *
 * Arithmetic that the CPU twins must reproduce bit for bit is written with
 * the explicit IEEE intrinsics (__fmul_rn, __fadd_rn, __fdiv_rn): nvcc would
 * otherwise contract a * b + c into one FMA, which rounds once where the
 * twin (compiled without FMA) rounds twice.
 */
#ifndef RM_KERNELS_COMMON_CUH
#define RM_KERNELS_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels.h"

/* bf16 is the top half of an fp32: widening is a shift, exact. */
__device__ __forceinline__ float rm_bf16_f32(uint16_t b) { return __uint_as_float((uint32_t)b << 16); }

/* Round to nearest even (cvt.rn.bf16.f32); rm_bf16_from_f32 in lib/cpu_ops.c is its twin. */
__device__ __forceinline__ uint16_t rm_f32_bf16(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }

/* Two values in one 32-bit word, the lower-indexed in the low half (the
 * order mma.sync and a little-endian store both expect). */
__device__ __forceinline__ uint32_t rm_pack_bf16x2(float lo, float hi) {
    return (uint32_t)rm_f32_bf16(lo) | ((uint32_t)rm_f32_bf16(hi) << 16);
}

/* Grid limits: x up to 2^31 - 1 blocks, y and z up to 65535. Kernels loop
 * with a grid stride, so a capped grid still covers every row. */
#define RM_GRID_X_MAX 0x7fffffffu
#define RM_GRID_YZ_MAX 65535u

static inline unsigned rm_grid_x(size_t n) { return n < RM_GRID_X_MAX ? (unsigned)n : RM_GRID_X_MAX; }
static inline unsigned rm_grid_yz(size_t n) { return n < RM_GRID_YZ_MAX ? (unsigned)n : RM_GRID_YZ_MAX; }
static inline size_t rm_ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

/* Every launcher ends with this: the launch's own error (bad configuration,
 * too much shared memory), which also clears a non-sticky error state. */
static inline cudaError_t rm_launch_status(void) { return cudaGetLastError(); }

__device__ __forceinline__ double rm_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float rm_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The larger of the two; a NaN never wins (comparisons with NaN are false),
 * which is how the CPU's amax loop ignores NaN too. */
__device__ __forceinline__ float rm_max_ignore_nan(float a, float b) { return b > a ? b : a; }

__device__ __forceinline__ float rm_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = rm_max_ignore_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum / max; every thread gets the result. `partial` is 32 slots
 * of shared memory; the trailing barrier lets the caller reuse it at once
 * (the row loops call these once per row). blockDim.x is a multiple of 32. */
__device__ __forceinline__ double rm_block_sum(double v, double *partial) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = rm_warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double w = lane < n_warps ? partial[lane] : 0.0;
        w = rm_warp_sum(w);
        if (lane == 0) partial[0] = w;
    }
    __syncthreads();
    double total = partial[0];
    __syncthreads();
    return total;
}

/* (rm_block_max is for non-negative values: idle lanes contribute 0.) */
__device__ __forceinline__ float rm_block_max(float v, float *partial) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = rm_warp_max(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < n_warps ? partial[lane] : 0.0f;
        w = rm_warp_max(w);
        if (lane == 0) partial[0] = w;
    }
    __syncthreads();
    float total = partial[0];
    __syncthreads();
    return total;
}

#endif
