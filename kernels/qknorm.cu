/*
 * qknorm.cu - Qwen3's per-head RMSNorm of q and k, in place on the bf16
 * projection output (before RoPE).
 *
 * One warp per (row, head) vector, eight warps per block, grid-stride over
 * the vectors. The arithmetic is rm_cu_add_rmsnorm's bf16 output: the sum of
 * squares in double (exact for bf16 inputs whatever the order, since each
 * square has 16 significant bits), variance and scale in fp32, the
 * normalised value cast to bf16 before the bf16 weight multiplies it. The
 * twin rm_cpu_head_rmsnorm_bf16 therefore agrees bit for bit.
 */
#include "common.cuh"

#define QKNORM_WARPS 8

__global__ void head_rmsnorm_kernel(uint16_t *x, size_t stride, const uint16_t *w, size_t n_rows, size_t n_heads,
                                    size_t head_dim, float eps) {
    const unsigned lane = threadIdx.x & 31;
    const size_t n_vec = n_rows * n_heads, warp_stride = (size_t)gridDim.x * QKNORM_WARPS;
    /* v is the same for the whole warp, so the shuffles below see every lane. */
    for (size_t v = (size_t)blockIdx.x * QKNORM_WARPS + (threadIdx.x >> 5); v < n_vec; v += warp_stride) {
        uint16_t *xv = x + (v / n_heads) * stride + (v % n_heads) * head_dim;
        double ss = 0;
        for (size_t i = lane; i < head_dim; i += 32) {
            float f = rm_bf16_f32(xv[i]);
            ss += (double)f * f;
        }
        ss = rm_warp_sum(ss);
        float var = (float)(ss / (double)head_dim);
        float rs = (float)(1.0 / sqrt((double)__fadd_rn(var, eps)));
        for (size_t i = lane; i < head_dim; i += 32) {
            float y = __fmul_rn(rm_bf16_f32(xv[i]), rs);
            xv[i] = rm_f32_bf16(__fmul_rn(rm_bf16_f32(rm_f32_bf16(y)), rm_bf16_f32(w[i])));
        }
    }
}

extern "C" cudaError_t rm_cu_head_rmsnorm(uint16_t *x, size_t stride, const uint16_t *w, size_t n_rows,
                                          size_t n_heads, size_t head_dim, float eps, cudaStream_t stream) {
    if (n_rows == 0 || n_heads == 0 || head_dim == 0) return cudaSuccess;
    size_t blocks = rm_ceil_div(n_rows * n_heads, QKNORM_WARPS);
    head_rmsnorm_kernel<<<rm_grid_x(blocks), QKNORM_WARPS * 32, 0, stream>>>(x, stride, w, n_rows, n_heads,
                                                                             head_dim, eps);
    return rm_launch_status();
}
