/*
 * extras.h - the kernels the CUDA engine (lib/cuda/) needs beyond the
 * contract of kernels.h, written with the engine: checkpoint dtype
 * conversion at load (convert.cu) and per-tensor FP8, the fallback when
 * cuBLASLt refuses per-row scales (fp8_tensor.cu). Same conventions as
 * kernels.h: bf16 travels as uint16_t, launchers enqueue on `stream`, never
 * synchronise, and return the launch's cudaError_t.
 * Their CPU references: the round-to-nearest-even bf16 conversion, and
 * rm_cpu_quantize_fp8_rows (lib/cpu_ops.h) over the whole tensor taken as one
 * row (tests/test_cuda_engine.c compares them).
 */
#ifndef RM_KERNELS_EXTRAS_H
#define RM_KERNELS_EXTRAS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* convert.cu: out[i] = bf16_rne(in[i]) for n values (fp32, or IEEE fp16 bits),
 * as torch's .to(torch.bfloat16) does. */
cudaError_t rm_cu_f32_to_bf16(uint16_t *out, const float *in, size_t n, cudaStream_t stream);
cudaError_t rm_cu_f16_to_bf16(uint16_t *out, const uint16_t *in, size_t n, cudaStream_t stream);

/* fp8_tensor.cu: per-tensor e4m3 over n_rows rows of cols bf16 values at x + r * stride.
 * rm_cu_amax_bf16 folds max |x| (NaN ignored) into *amax, a device float the
 * caller zeroes first (so several calls fold one tensor made of parts).
 * rm_cu_quantize_fp8_tensor then writes *scale = amax / 448 (1 when amax is 0
 * or not finite) and q[r * cols + c] = e4m3(x / scale) (IEEE division, round
 * to nearest even, saturating): the bytes rm_cpu_quantize_fp8_rows gives for
 * the tensor taken as one row. q_stride is q's row stride in bytes. */
cudaError_t rm_cu_amax_bf16(const uint16_t *x, size_t stride, size_t n_rows, size_t cols, float *amax,
                            cudaStream_t stream);
cudaError_t rm_cu_quantize_fp8_tensor(const uint16_t *x, size_t stride, size_t n_rows, size_t cols,
                                      const float *amax, uint8_t *q, size_t q_stride, float *scale,
                                      cudaStream_t stream);

/* cudaFuncGetAttributes of a kernel of this module on the current device:
 * cudaSuccess when the module carries code (SASS or PTX) the device runs. */
cudaError_t rm_cu_extras_image_check(void);

#ifdef __cplusplus
}
#endif
#endif
