/*
 * random.cu - fills a bf16 tensor from the counter-based generator of
 * lib/random.h: element i is bf16(rm_random_value(seed, tensor, i) * scale),
 * a pure function of its index, so the GPU builds the same random model as
 * the CPU (rm_cpu_random_bf16, bit for bit) without a file or any order.
 */
#include "common.cuh"
#include "random.h"

#define RANDOM_THREADS 256

__global__ void random_bf16_kernel(uint16_t *out, size_t n, uint64_t seed, uint64_t tensor, float scale) {
    size_t step = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        out[i] = rm_f32_bf16(__fmul_rn(rm_random_value(seed, tensor, i), scale));
}

extern "C" cudaError_t rm_cu_random_bf16(uint16_t *out, size_t n, uint64_t seed, uint64_t tensor, float scale,
                                         cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    /* A few waves of blocks, each thread striding: enough to fill any GPU. */
    size_t blocks = rm_ceil_div(n, RANDOM_THREADS);
    if (blocks > 65536) blocks = 65536;
    random_bf16_kernel<<<(unsigned)blocks, RANDOM_THREADS, 0, stream>>>(out, n, seed, tensor, scale);
    return rm_launch_status();
}
