/*
 * bias.cu - Qwen2's q/k/v projection biases, added in place to the bf16
 * GEMM output: y = bf16(fp32(y) + fp32(b)), one rounding, as torch adds a
 * bf16 bias to a bf16 tensor. Twin: rm_cpu_add_bias, bit for bit.
 */
#include "common.cuh"

#define BIAS_THREADS 256

/* grid.x covers the columns, grid.y strides over the rows. */
__global__ void add_bias_kernel(uint16_t *y, size_t stride, const uint16_t *b, size_t n_rows, size_t cols) {
    size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float bc = rm_bf16_f32(b[c]);
    for (size_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
        uint16_t *p = y + r * stride + c;
        *p = rm_f32_bf16(__fadd_rn(rm_bf16_f32(*p), bc));
    }
}

extern "C" cudaError_t rm_cu_add_bias(uint16_t *y, size_t stride, const uint16_t *b, size_t n_rows, size_t cols,
                                      cudaStream_t stream) {
    if (n_rows == 0 || cols == 0) return cudaSuccess;
    size_t col_blocks = rm_ceil_div(cols, BIAS_THREADS);
    if (col_blocks > RM_GRID_X_MAX) return cudaErrorInvalidValue;
    dim3 grid((unsigned)col_blocks, rm_grid_yz(n_rows));
    add_bias_kernel<<<grid, BIAS_THREADS, 0, stream>>>(y, stride, b, n_rows, cols);
    return rm_launch_status();
}
