/*
 * fp8_tensor.cu - per-tensor e4m3 quantisation (kernels/extras.h): the
 * fallback of the FP8 GEMMs where cuBLASLt refuses per-row scales. One scale
 * for the whole tensor, defined as rm_cpu_quantize_fp8_rows defines a row's.
 */
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "extras.h"

#define THREADS 256
#define MAX_BLOCKS 4096

static unsigned blocks_for_rows(size_t n_rows) { return (unsigned)(n_rows < MAX_BLOCKS ? n_rows : MAX_BLOCKS); }

/* |x| >= 0, so its float bits order as unsigned integers: one atomicMax per block. */
__global__ void amax_kernel(const uint16_t *x, size_t stride, size_t n_rows, size_t cols, float *amax) {
    float m = 0.0f;
    for (size_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        const uint16_t *row = x + r * stride;
        for (size_t c = threadIdx.x; c < cols; c += blockDim.x) {
            float a = fabsf(__bfloat162float(__ushort_as_bfloat16(row[c])));
            if (a > m) m = a;   /* NaN compares false: ignored, as on the CPU */
        }
    }
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    __shared__ float warp_max[THREADS / 32];
    if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) m = fmaxf(m, warp_max[w]);
        atomicMax((unsigned int *)amax, __float_as_uint(m));
    }
}

__device__ __forceinline__ float tensor_scale(float amax) {
    return amax > 0.0f && isfinite(amax) ? __fdiv_rn(amax, 448.0f) : 1.0f;
}

__global__ void quantize_kernel(const uint16_t *x, size_t stride, size_t n_rows, size_t cols, const float *amax,
                                uint8_t *q, size_t q_stride, float *scale_out) {
    float scale = tensor_scale(*amax);
    if (blockIdx.x == 0 && threadIdx.x == 0) *scale_out = scale;
    for (size_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        const uint16_t *row = x + r * stride;
        uint8_t *qrow = q + r * q_stride;
        for (size_t c = threadIdx.x; c < cols; c += blockDim.x) {
            float v = __fdiv_rn(__bfloat162float(__ushort_as_bfloat16(row[c])), scale);
            qrow[c] = (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
        }
    }
}

extern "C" cudaError_t rm_cu_amax_bf16(const uint16_t *x, size_t stride, size_t n_rows, size_t cols, float *amax,
                                       cudaStream_t stream) {
    if (!n_rows || !cols) return cudaSuccess;
    amax_kernel<<<blocks_for_rows(n_rows), THREADS, 0, stream>>>(x, stride, n_rows, cols, amax);
    return cudaGetLastError();
}

extern "C" cudaError_t rm_cu_quantize_fp8_tensor(const uint16_t *x, size_t stride, size_t n_rows, size_t cols,
                                                 const float *amax, uint8_t *q, size_t q_stride, float *scale,
                                                 cudaStream_t stream) {
    if (!n_rows || !cols) return cudaSuccess;
    quantize_kernel<<<blocks_for_rows(n_rows), THREADS, 0, stream>>>(x, stride, n_rows, cols, amax, q, q_stride,
                                                                    scale);
    return cudaGetLastError();
}
