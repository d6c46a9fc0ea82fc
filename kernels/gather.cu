/*
 * gather.cu - copies chosen fp32 rows: dst[i] = src[rows[i]], e.g. the
 * residual rows of the tokens the heads read, before the last layer's MLP.
 * Twin: rm_cpu_gather_rows, bit for bit.
 */
#include "common.cuh"

#define GATHER_THREADS 256

/* grid.x covers the columns, grid.y strides over the rows. */
__global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *rows, size_t n, size_t cols) {
    size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    for (size_t i = blockIdx.y; i < n; i += gridDim.y)
        dst[i * cols + c] = src[(size_t)(uint32_t)rows[i] * cols + c];
}

extern "C" cudaError_t rm_cu_gather_rows(float *dst, const float *src, const int32_t *rows, size_t n, size_t cols,
                                         cudaStream_t stream) {
    if (n == 0 || cols == 0) return cudaSuccess;
    size_t col_blocks = rm_ceil_div(cols, GATHER_THREADS);
    if (col_blocks > RM_GRID_X_MAX) return cudaErrorInvalidValue;
    dim3 grid((unsigned)col_blocks, rm_grid_yz(n));
    gather_rows_kernel<<<grid, GATHER_THREADS, 0, stream>>>(dst, src, rows, n, cols);
    return rm_launch_status();
}
