/*
 * convert.cu - fp32 and fp16 checkpoints become bf16 on the GPU at load
 * (kernels/extras.h): the bytes travel over PCIe as stored and are rounded
 * here, once.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "extras.h"

#define THREADS 256
#define MAX_BLOCKS 4096

static unsigned blocks_for(size_t n) {
    size_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < MAX_BLOCKS ? b : MAX_BLOCKS);
}

__global__ void f32_to_bf16_kernel(uint16_t *out, const float *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(in[i]));
}

__global__ void f16_to_bf16_kernel(uint16_t *out, const uint16_t *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(__half2float(__ushort_as_half(in[i]))));
}

extern "C" cudaError_t rm_cu_f32_to_bf16(uint16_t *out, const float *in, size_t n, cudaStream_t stream) {
    if (!n) return cudaSuccess;
    f32_to_bf16_kernel<<<blocks_for(n), THREADS, 0, stream>>>(out, in, n);
    return cudaGetLastError();
}

extern "C" cudaError_t rm_cu_f16_to_bf16(uint16_t *out, const uint16_t *in, size_t n, cudaStream_t stream) {
    if (!n) return cudaSuccess;
    f16_to_bf16_kernel<<<blocks_for(n), THREADS, 0, stream>>>(out, in, n);
    return cudaGetLastError();
}

extern "C" cudaError_t rm_cu_extras_image_check(void) {
    cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, (const void *)f32_to_bf16_kernel);
}
