/*
 * module.c - the one symbol the CUDA module exports (lib/cuda_module.h):
 * the table libnimreward checks and calls through. Also runs the engine's
 * extra kernels on host data, for tests.
 */
#include <string.h>

#include "cuda/collective_device.h"
#include "cuda/collective_nccl.h"
#include "cuda_engine.h"
#include "extras.h"

#ifndef RM_CUDA_ARCH
#define RM_CUDA_ARCH "?"
#endif

static rm_status run_kernel(int gpu, rm_cuda_kernel which, const void *in, size_t rows, size_t cols, void *out,
                            float *scales, rm_err *err) {
    if (!in || !out || (which == RM_CUDA_KERNEL_FP8_TENSOR && !scales))
        return rm_fail(err, RM_ERR_INVALID_ARG, "run_kernel: NULL argument");
    size_t n = rows * cols, in_elt = which == RM_CUDA_KERNEL_F32_TO_BF16 ? 4 : 2,
           out_elt = which == RM_CUDA_KERNEL_FP8_TENSOR ? 1 : 2;
    if (which < RM_CUDA_KERNEL_F32_TO_BF16 || which > RM_CUDA_KERNEL_FP8_TENSOR)
        return rm_fail(err, RM_ERR_INVALID_ARG, "run_kernel: no kernel %d", (int)which);
    rm_cu_device_guard g;
    rm_status st = rm_cu_device_enter(&g, gpu, err);
    if (st) return st;
    void *d_in = NULL, *d_out = NULL;
    float *d_amax = NULL;
    cudaStream_t s = NULL;
    CU_TRY_GOTO(gpu, err, st, done, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CU_TRY_GOTO(gpu, err, st, done, cudaMalloc(&d_in, n * in_elt + 1));
    CU_TRY_GOTO(gpu, err, st, done, cudaMalloc(&d_out, n * out_elt + 1));
    CU_TRY_GOTO(gpu, err, st, done, cudaMalloc((void **)&d_amax, 2 * sizeof(float)));
    CU_TRY_GOTO(gpu, err, st, done, cudaMemcpyAsync(d_in, in, n * in_elt, cudaMemcpyHostToDevice, s));
    /* Poisoned output: an element the kernel does not write shows. */
    CU_TRY_GOTO(gpu, err, st, done, cudaMemsetAsync(d_out, 0xA5, n * out_elt, s));
    if (which == RM_CUDA_KERNEL_F32_TO_BF16)
        CU_TRY_GOTO(gpu, err, st, done, rm_cu_f32_to_bf16(d_out, d_in, n, s));
    else if (which == RM_CUDA_KERNEL_F16_TO_BF16)
        CU_TRY_GOTO(gpu, err, st, done, rm_cu_f16_to_bf16(d_out, d_in, n, s));
    else {
        CU_TRY_GOTO(gpu, err, st, done, cudaMemsetAsync(d_amax, 0, sizeof(float), s));
        CU_TRY_GOTO(gpu, err, st, done, rm_cu_amax_bf16(d_in, cols, rows, cols, d_amax, s));
        CU_TRY_GOTO(gpu, err, st, done, rm_cu_quantize_fp8_tensor(d_in, cols, rows, cols, d_amax, d_out, cols,
                                                                   d_amax + 1, s));
        CU_TRY_GOTO(gpu, err, st, done, cudaMemcpyAsync(scales, d_amax + 1, sizeof(float), cudaMemcpyDeviceToHost, s));
    }
    CU_TRY_GOTO(gpu, err, st, done, cudaMemcpyAsync(out, d_out, n * out_elt, cudaMemcpyDeviceToHost, s));
    CU_TRY_GOTO(gpu, err, st, done, cudaStreamSynchronize(s));
done:
    if (s) cudaStreamSynchronize(s);
    cudaFree(d_in);
    cudaFree(d_out);
    cudaFree(d_amax);
    if (s) cudaStreamDestroy(s);
    rm_cu_device_leave(&g);
    return st;
}

static const rm_cuda_module table = {
    .abi = RM_CUDA_MODULE_ABI,
    .struct_size = sizeof(rm_cuda_module),
    .version = RM_VERSION_STRING,
    .arch = RM_CUDA_ARCH,
    .layout = RM_CUDA_LAYOUT_INIT,
    .ops = &rm_engine_cuda,
    .probe = rm_cu_probe,
    .create_random = cu_create_random,
    .profile = cu_profile,
    .set_option = cu_set_option,
    .run_kernel = run_kernel,
    .comm_nccl_create = rm_comm_nccl_plan_create,
    .comm_device = &rm_cu_comm_device,
};

__attribute__((visibility("default"))) const rm_cuda_module *rm_cuda_module_v1(void) { return &table; }
