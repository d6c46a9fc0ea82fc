/*
 * device.c - the module's view of a GPU: is it usable (probe), what a failed
 * call becomes (RM_ERR_DEVICE naming the call), and the per-GPU poison of a
 * sticky error. See device.h.
 */
#include "device.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cuda_module.h"
#include "extras.h"

#ifndef RM_CUDA_ARCH
#define RM_CUDA_ARCH "?"
#endif

static struct {
    atomic_int poisoned;
    char msg[sizeof(((rm_err *)0)->msg)];
} gpus[RM_CU_MAX_GPUS];
static pthread_mutex_t poison_lock = PTHREAD_MUTEX_INITIALIZER;

/* Errors CUDA documents as leaving the context unusable. */
static int is_sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed:
        return 1;
    default:
        return 0;
    }
}

static void poison(int gpu, const char *msg) {
    if (gpu < 0 || gpu >= RM_CU_MAX_GPUS) return;
    pthread_mutex_lock(&poison_lock);
    if (!atomic_load(&gpus[gpu].poisoned)) {
        snprintf(gpus[gpu].msg, sizeof gpus[gpu].msg, "%s", msg);
        atomic_store(&gpus[gpu].poisoned, 1);
    }
    pthread_mutex_unlock(&poison_lock);
}

rm_status rm_cu_poisoned(int gpu, rm_err *err) {
    if (gpu < 0 || gpu >= RM_CU_MAX_GPUS || !atomic_load(&gpus[gpu].poisoned)) return RM_OK;
    return rm_fail(err, RM_ERR_DEVICE, "GPU %d is unusable until the process exits after a sticky CUDA error: %s",
                   gpu, gpus[gpu].msg);
}

/* "cudaMemcpyAsync(dst, ...)" -> "cudaMemcpyAsync". */
static void call_name(const char *call, char *out, size_t n) {
    size_t len = strcspn(call, "(");
    if (len >= n) len = n - 1;
    memcpy(out, call, len);
    out[len] = 0;
}

rm_status rm_cu_fail(int gpu, rm_err *err, cudaError_t e, const char *call) {
    char name[128];
    call_name(call, name, sizeof name);
    (void)cudaGetLastError();   /* clears a non-sticky error; a sticky one stays */
    /* A sticky error also comes back from the next call: one reported under
     * another name (an asynchronous kernel fault surfacing here) is caught too.
     * gpu < 0: no context exists yet, nothing to poison. */
    cudaError_t after = gpu >= 0 ? cudaDeviceSynchronize() : cudaSuccess;
    int sticky = gpu >= 0 && (is_sticky(e) || is_sticky(after));
    rm_err local = {0};
    rm_fail(&local, RM_ERR_DEVICE, "CUDA call %s failed on GPU %d: %s (%s)%s", name, gpu, cudaGetErrorName(e),
            cudaGetErrorString(e),
            sticky ? "; the error is sticky: every model on this GPU now fails until the process exits" : "");
    if (sticky) poison(gpu, local.msg);
    return rm_fail(err, RM_ERR_DEVICE, "%s", local.msg);
}

rm_status rm_cu_blas_fail(int gpu, rm_err *err, cublasStatus_t s, const char *call) {
    char name[128];
    call_name(call, name, sizeof name);
    cudaError_t under = cudaGetLastError();
    if (s == CUBLAS_STATUS_EXECUTION_FAILED && under == cudaSuccess) under = cudaDeviceSynchronize();
    if (under != cudaSuccess && (is_sticky(under) || is_sticky(cudaDeviceSynchronize()))) {
        rm_err local = {0};
        rm_fail(&local, RM_ERR_DEVICE, "cuBLASLt call %s failed on GPU %d: %s (%s), under it %s (%s); the error is "
                "sticky: every model on this GPU now fails until the process exits", name, gpu,
                cublasLtGetStatusName(s), cublasLtGetStatusString(s), cudaGetErrorName(under),
                cudaGetErrorString(under));
        poison(gpu, local.msg);
        return rm_fail(err, RM_ERR_DEVICE, "%s", local.msg);
    }
    return rm_fail(err, RM_ERR_DEVICE, "cuBLASLt call %s failed on GPU %d: %s (%s)", name, gpu,
                   cublasLtGetStatusName(s), cublasLtGetStatusString(s));
}

rm_status rm_cu_device_enter(rm_cu_device_guard *g, int gpu, rm_err *err) {
    g->changed = 0;
    g->prev = -1;
    rm_status st = rm_cu_poisoned(gpu, err);
    if (st) return st;
    CU_TRY(gpu, err, cudaGetDevice(&g->prev));
    if (g->prev != gpu) {
        CU_TRY(gpu, err, cudaSetDevice(gpu));
        g->changed = 1;
    }
    return RM_OK;
}

void rm_cu_device_leave(rm_cu_device_guard *g) {
    if (g->changed) (void)cudaSetDevice(g->prev);
    g->changed = 0;
}

/* ---------------------------------------------------------------- probe */

static rm_status probe_driver(int *driver_version, rm_err *err) {
    /* The driver is libcuda.so.1, which the CUDA runtime dlopens itself; asking
     * first gives the loader's own words when it is missing. */
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return rm_fail(err, RM_ERR_DEVICE, "no NVIDIA driver: libcuda.so.1 cannot be loaded (%s)",
                       why ? why : "not found");
    }
    dlclose(h);
    cudaError_t e = cudaDriverGetVersion(driver_version);
    if (e == cudaErrorStubLibrary)
        return rm_fail(err, RM_ERR_DEVICE, "no NVIDIA driver: the libcuda.so.1 found is the CUDA toolkit's stub "
                       "library, not a driver");
    if (e != cudaSuccess) return rm_cu_fail(-1, err, e, "cudaDriverGetVersion");
    if (*driver_version == 0) return rm_fail(err, RM_ERR_DEVICE, "no NVIDIA driver is installed");
    if (*driver_version < CUDART_VERSION)
        return rm_fail(err, RM_ERR_DEVICE, "the NVIDIA driver supports CUDA %d.%d, older than the CUDA %d.%d this "
                       "module was built with: update the driver (CUDA 13 needs R580 or later)",
                       *driver_version / 1000, *driver_version % 1000 / 10, CUDART_VERSION / 1000,
                       CUDART_VERSION % 1000 / 10);
    return RM_OK;
}

rm_status rm_cu_probe(int gpu, rm_cuda_device_info *info, rm_err *err) {
    memset(info, 0, sizeof *info);
    info->ordinal = gpu;
    info->runtime_version = CUDART_VERSION;
    if (gpu < 0 || gpu >= RM_CU_MAX_GPUS)
        return rm_fail(err, RM_ERR_INVALID_ARG, "GPU ordinal %d is outside [0, %d)", gpu, RM_CU_MAX_GPUS);
    rm_status st = rm_cu_poisoned(gpu, err);
    if (st || (st = probe_driver(&info->driver_version, err))) return st;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
        return rm_fail(err, RM_ERR_DEVICE, "no CUDA GPU: the driver (CUDA %d.%d) sees none",
                       info->driver_version / 1000, info->driver_version % 1000 / 10);
    if (e == cudaErrorInsufficientDriver)
        return rm_fail(err, RM_ERR_DEVICE, "the NVIDIA driver is too old for this module's CUDA %d.%d (update it)",
                       CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    if (e != cudaSuccess) return rm_cu_fail(-1, err, e, "cudaGetDeviceCount");
    if (gpu >= n) return rm_fail(err, RM_ERR_DEVICE, "no GPU %d: the driver sees %d GPU%s", gpu, n, n == 1 ? "" : "s");
    struct cudaDeviceProp p;
    CU_TRY(-1, err, cudaGetDeviceProperties(&p, gpu));
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->n_sms = p.multiProcessorCount;
    info->total_bytes = p.totalGlobalMem;
    rm_cu_device_guard g;
    if ((st = rm_cu_device_enter(&g, gpu, err))) return st;
    e = rm_cu_extras_image_check();
    if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction ||
        e == cudaErrorUnsupportedPtxVersion) {
        (void)cudaGetLastError();
        rm_cu_device_leave(&g);
        return rm_fail(err, RM_ERR_DEVICE, "GPU %d (%s) has compute capability %d.%d, and this module carries code "
                       "for %s only: rebuild it with CUDA_ARCH naming sm_%d%d", gpu, info->name, p.major, p.minor,
                       RM_CUDA_ARCH, p.major, p.minor);
    }
    if (e != cudaSuccess) {
        st = rm_cu_fail(gpu, err, e, "cudaFuncGetAttributes");
        rm_cu_device_leave(&g);
        return st;
    }
    size_t free_b = 0, total_b = 0;
    e = cudaMemGetInfo(&free_b, &total_b);
    rm_cu_device_leave(&g);
    if (e != cudaSuccess) return rm_cu_fail(gpu, err, e, "cudaMemGetInfo");
    info->free_bytes = free_b;
    info->total_bytes = total_b;
    info->cublaslt_version = (int)cublasLtGetVersion();
    return RM_OK;
}
