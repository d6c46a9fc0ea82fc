/*
 * device.h - CUDA and cuBLAS failures as rm_status, and the poison a sticky
 * CUDA error leaves on a GPU. Every call the module makes goes through
 * CU_TRY / LT_TRY, so a failure returns RM_ERR_DEVICE with a message naming
 * the call; nothing exits or aborts.
 *
 * A sticky error (an illegal address, a kernel fault, an uncorrectable ECC
 * error) leaves the process's CUDA context on that GPU unusable: CUDA
 * returns the same error to every later call until the process exits. The
 * first one is recorded per GPU, and every engine, probe and load on that GPU
 * then fails at once with its message.
 */
#ifndef RM_CUDA_DEVICE_H
#define RM_CUDA_DEVICE_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "common.h"

#define RM_CU_MAX_GPUS 64

/* Turns a failed CUDA call into RM_ERR_DEVICE: "CUDA call X failed on GPU n:
 * cudaErrorName (text)". A non-sticky error is cleared; a sticky one poisons
 * the GPU. `call` is the call's source text: the name before '(' is kept. */
RM_INTERNAL rm_status rm_cu_fail(int gpu, rm_err *err, cudaError_t e, const char *call);
/* The same for a cuBLASLt status; an execution failure is checked for a
 * sticky CUDA error underneath. */
RM_INTERNAL rm_status rm_cu_blas_fail(int gpu, rm_err *err, cublasStatus_t s, const char *call);
/* RM_OK, or RM_ERR_DEVICE with the first sticky fault recorded on `gpu`. */
RM_INTERNAL rm_status rm_cu_poisoned(int gpu, rm_err *err);

/* Evaluates a call returning cudaError_t; on failure returns its rm_status
 * from the enclosing function (which has no resources to release). */
#define CU_TRY(gpu, err, call)                                                      \
    do {                                                                            \
        cudaError_t cu_e_ = (call);                                                 \
        if (cu_e_ != cudaSuccess) return rm_cu_fail((gpu), (err), cu_e_, #call);   \
    } while (0)
#define LT_TRY(gpu, err, call)                                                      \
    do {                                                                            \
        cublasStatus_t lt_s_ = (call);                                              \
        if (lt_s_ != CUBLAS_STATUS_SUCCESS) return rm_cu_blas_fail((gpu), (err), lt_s_, #call); \
    } while (0)
/* The same, storing the status in `st` and jumping to `label` for cleanup. */
#define CU_TRY_GOTO(gpu, err, st, label, call)                                      \
    do {                                                                            \
        cudaError_t cu_e_ = (call);                                                 \
        if (cu_e_ != cudaSuccess) { (st) = rm_cu_fail((gpu), (err), cu_e_, #call); goto label; } \
    } while (0)

/* Makes `gpu` current on the calling thread and remembers what was current,
 * so the caller's thread (a trainer's, say) keeps its own device. */
typedef struct rm_cu_device_guard {
    int prev, changed;
} rm_cu_device_guard;
RM_INTERNAL rm_status rm_cu_device_enter(rm_cu_device_guard *g, int gpu, rm_err *err);
RM_INTERNAL void rm_cu_device_leave(rm_cu_device_guard *g);

/* The module's probe (rm_cuda_module.probe). */
struct rm_cuda_device_info;
RM_INTERNAL rm_status rm_cu_probe(int gpu, struct rm_cuda_device_info *info, rm_err *err);

#endif
