/*
 * fp8.cu - row-wise FP8 (e4m3) quantisation of bf16 rows: the activations
 * before each FP8 GEMM (one scale per token) and the weights at load (one per
 * output channel).
 *
 * One block per row (grid-stride): amax over the row (NaN ignored), the
 * scale amax / 448 (1 when amax is 0 or not finite), then each value divided
 * by the scale (IEEE fp32 division) and converted. The conversion is
 * rm_fp8_e4m3_from_f32 of lib/cpu_ops.c rewritten line for line in integer
 * operations rather than __nv_cvt_float_to_fp8: the two are meant to agree,
 * but integer code matches the CPU by construction on every target (sm_80
 * has no e4m3 instruction), which is what lets a pack quantised on a CPU
 * equal one quantised here. tests/test_kernels checks the bytes and scales
 * against rm_cpu_quantize_fp8_rows.
 *
 * To tune on the H200: the row is read twice (L2 hits); for long rows keep
 * it in registers, and store 4 codes per 32-bit write.
 */
#include "common.cuh"

#define FP8_THREADS 256

/* rm_fp8_e4m3_from_f32: round to nearest even, saturate to +-448, NaN stays NaN. */
__device__ __forceinline__ uint8_t fp8_e4m3_from_f32(float x) {
    uint32_t bits = __float_as_uint(x);
    uint32_t sign = (bits >> 24) & 0x80u;
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint8_t)(sign | 0x7fu);       /* NaN */
    if (abs >= 0x43e00000u) return (uint8_t)(sign | 0x7eu);      /* >= 448 (and inf): saturate */
    int exp = (int)(abs >> 23) - 127;                            /* unbiased fp32 exponent */
    uint32_t mant = abs & 0x7fffffu;
    if (exp >= -6) {                                             /* normal in e4m3 */
        uint32_t keep = mant >> 20, rest = mant & 0xfffffu, half = 0x80000u;
        uint32_t v = ((uint32_t)(exp + 7) << 3) | keep;
        if (rest > half || (rest == half && (keep & 1u))) v++;  /* may carry into the exponent */
        if (v > 0x7eu) v = 0x7eu;
        return (uint8_t)(sign | v);
    }
    if (exp < -10) return (uint8_t)sign;                         /* below half of 2^-9: rounds to 0 */
    uint32_t full = mant | 0x800000u;                            /* subnormal in e4m3: m * 2^-9 */
    int shift = 23 - 9 - exp;
    uint32_t m = full >> shift, rest = full & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (m & 1u))) m++;          /* m == 8 is the smallest normal */
    return (uint8_t)(sign | m);
}

__global__ void quantize_fp8_rows_kernel(const uint16_t *x, size_t stride, size_t n_rows, size_t cols, uint8_t *q,
                                         float *scales) {
    __shared__ float partial[32];
    for (size_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        const uint16_t *xr = x + r * stride;
        float amax = 0;
        for (size_t j = threadIdx.x; j < cols; j += blockDim.x)
            amax = rm_max_ignore_nan(amax, fabsf(rm_bf16_f32(xr[j])));
        amax = rm_block_max(amax, partial);
        float scale = amax > 0 && isfinite(amax) ? __fdiv_rn(amax, 448.0f) : 1.0f;
        if (threadIdx.x == 0) scales[r] = scale;
        uint8_t *qr = q + r * cols;
        for (size_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float v = rm_bf16_f32(xr[j]);
            /* A NaN keeps its sign, as the CPU's division passes it through
             * (the GPU's would return the canonical positive NaN). */
            qr[j] = isnan(v) ? (uint8_t)(signbit(v) ? 0xff : 0x7f) : fp8_e4m3_from_f32(__fdiv_rn(v, scale));
        }
    }
}

extern "C" cudaError_t rm_cu_quantize_fp8_rows(const uint16_t *x, size_t stride, size_t n_rows, size_t cols,
                                               uint8_t *q, float *scales, cudaStream_t stream) {
    if (n_rows == 0) return cudaSuccess;
    quantize_fp8_rows_kernel<<<rm_grid_x(n_rows), FP8_THREADS, 0, stream>>>(x, stride, n_rows, cols, q, scales);
    return rm_launch_status();
}
