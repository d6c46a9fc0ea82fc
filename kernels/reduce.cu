/*
 * reduce.cu - the sum of tensor-parallel ranks' partial outputs when the
 * ranks are threads of one process on one GPU (lib/cuda/collective_device.c
 * serves lib/parallel/comm_threads.c): each element summed over the ranks in
 * rank order, in fp32, and rounded to bf16 once, so every rank gets the same
 * bits whichever rank computed its slice. Twin: rm_cpu_sum_ranks, bit for bit.
 */
#include "common.cuh"

#define SUM_THREADS 256
#define SUM_BLOCKS_MAX 4096u   /* a grid-stride loop covers the rest */

/* The ranks' buffers, passed by value (kernel parameters: 8 bytes each). */
struct sum_srcs {
    const void *p[RM_CU_SUM_MAX_SRCS];
};

template <bool BF16>
__global__ void sum_ranks_kernel(void *dst, sum_srcs s, int n_srcs, size_t offset, size_t count) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        size_t at = offset + i;
        if (BF16) {
            float acc = rm_bf16_f32(((const uint16_t *)s.p[0])[at]);
            for (int r = 1; r < n_srcs; r++) acc = __fadd_rn(acc, rm_bf16_f32(((const uint16_t *)s.p[r])[at]));
            ((uint16_t *)dst)[at] = rm_f32_bf16(acc);
        } else {
            float acc = ((const float *)s.p[0])[at];
            for (int r = 1; r < n_srcs; r++) acc = __fadd_rn(acc, ((const float *)s.p[r])[at]);
            ((float *)dst)[at] = acc;
        }
    }
}

extern "C" cudaError_t rm_cu_sum_ranks(void *dst, const void *const *srcs, int n_srcs, size_t offset, size_t count,
                                       int bf16, cudaStream_t stream) {
    if (n_srcs < 1 || n_srcs > RM_CU_SUM_MAX_SRCS || !dst || !srcs) return cudaErrorInvalidValue;
    if (count == 0) return cudaSuccess;
    sum_srcs s = {};
    for (int r = 0; r < n_srcs; r++) s.p[r] = srcs[r];
    size_t blocks = rm_ceil_div(count, SUM_THREADS);
    unsigned grid = blocks < SUM_BLOCKS_MAX ? (unsigned)blocks : SUM_BLOCKS_MAX;
    if (bf16) sum_ranks_kernel<true><<<grid, SUM_THREADS, 0, stream>>>(dst, s, n_srcs, offset, count);
    else sum_ranks_kernel<false><<<grid, SUM_THREADS, 0, stream>>>(dst, s, n_srcs, offset, count);
    return rm_launch_status();
}
