/*
 * collective_device.c - the device half of the in-process collective
 * (rm_comm_device in lib/parallel/collective.h) for tensor-parallel ranks
 * that are threads of one process on one GPU: the sum kernel
 * (kernels/reduce.cu), device-to-device copies, the stream wait and the
 * group's scratch. NCCL refuses two ranks on one GPU, so this is how the
 * sharded path runs, and is tested, on a one-GPU machine.
 *
 * The group calls these from inside a rank's forward pass, where the CUDA
 * engine has made the rank's GPU current; release may come from any thread,
 * so it makes the buffer's own device current first.
 */
#include <cuda_runtime_api.h>

#include "cuda/collective_device.h"
#include "device.h"
#include "kernels.h"

static int current_gpu(void) {
    int d = -1;
    return cudaGetDevice(&d) == cudaSuccess ? d : -1;
}

static rm_status d_sum(void *dst, void *const *srcs, int n_srcs, size_t offset, size_t count, rm_comm_dtype dt,
                       void *stream, rm_err *err) {
    if (n_srcs > RM_CU_SUM_MAX_SRCS)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "%d tensor-parallel ranks on one GPU: at most %d can share one",
                       n_srcs, RM_CU_SUM_MAX_SRCS);
    CU_TRY(current_gpu(), err, rm_cu_sum_ranks(dst, (const void *const *)srcs, n_srcs, offset, count,
                                               dt == RM_COMM_BF16, (cudaStream_t)stream));
    return RM_OK;
}

static rm_status d_copy(void *dst, const void *src, size_t bytes, void *stream, rm_err *err) {
    CU_TRY(current_gpu(), err, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream));
    return RM_OK;
}

static rm_status d_sync(void *stream, rm_err *err) {
    CU_TRY(current_gpu(), err, cudaStreamSynchronize((cudaStream_t)stream));
    return RM_OK;
}

static rm_status d_alloc(void **out, size_t bytes, rm_err *err) {
    *out = NULL;
    CU_TRY(current_gpu(), err, cudaMalloc(out, bytes ? bytes : 1));
    return RM_OK;
}

static void d_release(void *p) {
    if (!p) return;
    struct cudaPointerAttributes a;
    rm_cu_device_guard g;
    int on = cudaPointerGetAttributes(&a, p) == cudaSuccess ? a.device : -1;
    rm_err ignored = {0};
    if (on >= 0 && rm_cu_device_enter(&g, on, &ignored) == RM_OK) {
        cudaFree(p);
        rm_cu_device_leave(&g);
    } else {
        cudaFree(p);
    }
}

const rm_comm_device rm_cu_comm_device = {
    .sum = d_sum,
    .copy = d_copy,
    .sync = d_sync,
    .alloc = d_alloc,
    .release = d_release,
};
