/*
 * rope.cu - rotary position embedding of q and k, in place on bf16 rows
 * (rotate_half convention: element i pairs with i + head_dim / 2).
 *
 * One block per row (grid-stride). The block first takes cos / sin of the
 * row's half-dim angles into shared memory, once for all its heads, then
 * rotates every (head, pair). The angle is the fp32 product
 * (float)pos * inv_freq[i], as transformers forms it; cos and sin are taken
 * in double and rounded to fp32, as rm_cpu_rope_table does (the correctly
 * rounded value, which torch's fp32 kernels approximate within an ulp); the
 * rotation is fp32 with explicit roundings and one final bf16 rounding. The
 * twin rm_cpu_rope_bf16 agrees bit for bit unless CUDA's double cos/sin
 * (within 2 ulp of double) rounds to a different float, which needs the
 * value within ~1e-16 of an fp32 rounding boundary.
 *
 * To tune on the H200: one thread per pair with 32-bit (bf16x2) accesses
 * where head_dim / 2 is even; the double sincos costs little (head_dim / 2
 * per row, shared by all heads).
 */
#include "common.cuh"

#define ROPE_THREADS 256
/* Shared memory holds cos and sin of head_dim / 2 angles. */
#define ROPE_MAX_HEAD_DIM 8192

__global__ void rope_kernel(uint16_t *x, size_t stride, size_t n_rows, unsigned n_heads, unsigned head_dim,
                            const int32_t *pos, const float *inv_freq) {
    extern __shared__ float cos_sin[];   /* cos[half], then sin[half] */
    const unsigned half = head_dim / 2, n_pairs = n_heads * half;
    float *cos_r = cos_sin, *sin_r = cos_sin + half;
    for (size_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        float p = (float)pos[r];
        for (unsigned i = threadIdx.x; i < half; i += blockDim.x) {
            double s, c;
            sincos((double)__fmul_rn(p, inv_freq[i]), &s, &c);
            cos_r[i] = (float)c;
            sin_r[i] = (float)s;
        }
        __syncthreads();
        uint16_t *row = x + r * stride;
        for (unsigned k = threadIdx.x; k < n_pairs; k += blockDim.x) {
            unsigned i = k % half;
            uint16_t *v = row + (size_t)(k / half) * head_dim;
            float a = rm_bf16_f32(v[i]), b = rm_bf16_f32(v[i + half]), c = cos_r[i], s = sin_r[i];
            /* q * cos + rotate_half(q) * sin, rotate_half(q) = cat(-q2, q1) */
            v[i] = rm_f32_bf16(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
            v[i + half] = rm_f32_bf16(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
        }
        __syncthreads();   /* the next row overwrites cos_sin */
    }
}

extern "C" cudaError_t rm_cu_rope(uint16_t *x, size_t stride, size_t n_rows, size_t n_heads, size_t head_dim,
                                  const int32_t *pos, const float *inv_freq, cudaStream_t stream) {
    if (n_rows == 0 || n_heads == 0 || head_dim == 0) return cudaSuccess;
    if (head_dim % 2 != 0 || head_dim > ROPE_MAX_HEAD_DIM || n_heads > 0x7fffffffu / head_dim)
        return cudaErrorInvalidValue;
    size_t smem = head_dim * sizeof(float);   /* half cos + half sin */
    rope_kernel<<<rm_grid_x(n_rows), ROPE_THREADS, smem, stream>>>(x, stride, n_rows, (unsigned)n_heads,
                                                                  (unsigned)head_dim, pos, inv_freq);
    return rm_launch_status();
}
