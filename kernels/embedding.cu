/*
 * embedding.cu - the first step of the forward pass: each packed token's row
 * of the bf16 embedding table, widened to the fp32 residual stream.
 * Twin: rm_cpu_embedding (lib/cpu_ops.c); the widening is exact, so the two
 * agree bit for bit.
 */
#include "common.cuh"

#define EMBED_THREADS 256

/* grid.x covers the columns, grid.y strides over the rows. */
__global__ void embedding_kernel(float *x, const uint16_t *embed, const int32_t *tokens, size_t n_rows,
                                 size_t hidden) {
    size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= hidden) return;
    for (size_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
        /* tokens are ids the tokenizer produced: 0 <= id < vocab (the engine's contract). */
        size_t row = (size_t)(uint32_t)tokens[r];
        x[r * hidden + c] = rm_bf16_f32(embed[row * hidden + c]);
    }
}

extern "C" cudaError_t rm_cu_embedding(float *x, const uint16_t *embed, const int32_t *tokens, size_t n_rows,
                                       size_t hidden, cudaStream_t stream) {
    if (n_rows == 0 || hidden == 0) return cudaSuccess;
    size_t col_blocks = rm_ceil_div(hidden, EMBED_THREADS);
    if (col_blocks > RM_GRID_X_MAX) return cudaErrorInvalidValue;
    dim3 grid((unsigned)col_blocks, rm_grid_yz(n_rows));
    embedding_kernel<<<grid, EMBED_THREADS, 0, stream>>>(x, embed, tokens, n_rows, hidden);
    return rm_launch_status();
}
