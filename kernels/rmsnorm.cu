/*
 * rmsnorm.cu - the residual add fused with the RMSNorm that follows it
 * (input_layernorm, post_attention_layernorm, the final norm).
 *
 * One block per row (grid-stride). Pass 1 adds the bf16 delta into the fp32
 * residual, writes it back and sums the squares; pass 2 re-reads the row
 * (its own writes, from L1/L2) and writes the normalised output.
 *
 * The sum of squares is taken in double, as the CPU engine's rmsnorm does:
 * every fp32 square is exact in double and the sum's rounding is far below
 * fp32's, so the block's tree order and the twin's sequential order give the
 * same fp32 variance (a differing last bit is possible only when the mean
 * lies within ~1e-16 relative of an fp32 rounding boundary). The rest is
 * fp32 with explicit rounding, so rm_cpu_add_rmsnorm matches bit for bit
 * in practice; the test allows one bf16 ulp.
 *
 * To tune on the H200: 16-byte vector loads (float4 / 8 x bf16) when dim %
 * 8 == 0; keeping the row in registers between the passes (dim <= 8192 fits
 * 256 threads x 32 values).
 */
#include "common.cuh"

#define RMS_THREADS 256

__global__ void add_rmsnorm_kernel(float *x, const uint16_t *delta, size_t delta_stride, const uint16_t *w,
                                   uint16_t *out, float *out_f32, size_t n_rows, size_t dim, float eps) {
    __shared__ double partial[32];
    for (size_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        float *xr = x + r * dim;
        double ss = 0;
        if (delta) {
            const uint16_t *dr = delta + r * delta_stride;
            for (size_t i = threadIdx.x; i < dim; i += blockDim.x) {
                float v = __fadd_rn(xr[i], rm_bf16_f32(dr[i]));
                xr[i] = v;
                ss += (double)v * v;
            }
        } else {
            for (size_t i = threadIdx.x; i < dim; i += blockDim.x) {
                float v = xr[i];
                ss += (double)v * v;
            }
        }
        ss = rm_block_sum(ss, partial);
        /* transformers: variance in fp32, then rsqrt(variance + eps); the
         * reciprocal square root in double, rounded once, like the CPU engine. */
        float var = (float)(ss / (double)dim);
        float rs = (float)(1.0 / sqrt((double)__fadd_rn(var, eps)));
        for (size_t i = threadIdx.x; i < dim; i += blockDim.x) {
            float y = __fmul_rn(xr[i], rs);
            float wi = rm_bf16_f32(w[i]);
            /* LlamaRMSNorm in bf16: cast the normalised value, then times the
             * bf16 weight (an exact product in fp32, rounded once). */
            if (out) out[r * dim + i] = rm_f32_bf16(__fmul_rn(rm_bf16_f32(rm_f32_bf16(y)), wi));
            if (out_f32) out_f32[r * dim + i] = __fmul_rn(y, wi);
        }
    }
}

extern "C" cudaError_t rm_cu_add_rmsnorm(float *x, const uint16_t *delta, size_t delta_stride, const uint16_t *w,
                                         uint16_t *out, float *out_f32, size_t n_rows, size_t dim, float eps,
                                         cudaStream_t stream) {
    if (n_rows == 0 || dim == 0) return cudaSuccess;
    add_rmsnorm_kernel<<<rm_grid_x(n_rows), RMS_THREADS, 0, stream>>>(x, delta, delta_stride, w, out, out_f32,
                                                                      n_rows, dim, eps);
    return rm_launch_status();
}
