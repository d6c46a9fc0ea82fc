/*
 * swiglu.cu - the MLP's SwiGLU: out = bf16(silu(gate) * up), gate and up the
 * two halves of the fused gate_up GEMM output row.
 *
 * silu(g) = g / (1 + exp(-g)) in fp32 (torch's formula), times up in fp32,
 * rounded to bf16 once. The twin rm_cpu_silu_mul_bf16 uses glibc's expf,
 * this one CUDA's (within 2 ulp), so an element may differ by one bf16 ulp
 * when the product lies next to a bf16 rounding boundary; all else is the
 * same IEEE arithmetic.
 *
 * To tune on the H200: 16-byte accesses (8 x bf16) when ffn % 8 == 0 and the
 * stride keeps rows aligned.
 */
#include "common.cuh"

#define SWIGLU_THREADS 256

/* grid.x covers the columns, grid.y strides over the rows. */
__global__ void silu_mul_kernel(uint16_t *out, const uint16_t *gate_up, size_t stride, size_t n_rows, size_t ffn) {
    size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= ffn) return;
    for (size_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
        const uint16_t *row = gate_up + r * stride;
        float g = rm_bf16_f32(row[c]), u = rm_bf16_f32(row[ffn + c]);
        float silu = __fdiv_rn(g, __fadd_rn(1.0f, expf(-g)));
        out[r * ffn + c] = rm_f32_bf16(__fmul_rn(silu, u));
    }
}

extern "C" cudaError_t rm_cu_silu_mul(uint16_t *out, const uint16_t *gate_up, size_t stride, size_t n_rows,
                                      size_t ffn, cudaStream_t stream) {
    if (n_rows == 0 || ffn == 0) return cudaSuccess;
    size_t col_blocks = rm_ceil_div(ffn, SWIGLU_THREADS);
    if (col_blocks > RM_GRID_X_MAX) return cudaErrorInvalidValue;
    dim3 grid((unsigned)col_blocks, rm_grid_yz(n_rows));
    silu_mul_kernel<<<grid, SWIGLU_THREADS, 0, stream>>>(out, gate_up, stride, n_rows, ffn);
    return rm_launch_status();
}
