/*
 * cuda_module.h - the one interface between libnimreward and its CUDA module,
 * $(LIBDIR)/nimreward/libnimreward-cuda.so. libnimreward never links CUDA:
 * it dlopens the module on demand (lib/cuda_module.c), so a program linked
 * against it starts and scores on the CPU on a machine without CUDA.
 *
 * The module exports exactly one symbol, RM_CUDA_MODULE_SYMBOL, a function
 * returning the table below. The table's abi number and the sizes of the
 * internal structs that cross the boundary (rm_config, rm_tensor, ...) must
 * match the library's, else the module is refused with a message: the two
 * are built from one tree and travel together. The module uses no symbol of
 * the library; the few helpers it needs (lib/common.c, lib/cpu_ops.c) are
 * compiled into it.
 */
#ifndef RM_CUDA_MODULE_H
#define RM_CUDA_MODULE_H

#include "common.h"
#include "config.h"
#include "engine.h"
#include "parallel/collective.h"
#include "weights.h"

struct rm_tp_plan;

#define RM_CUDA_MODULE_FILE "libnimreward-cuda.so"
#define RM_CUDA_MODULE_SYMBOL "rm_cuda_module_v1"
/* Bumped whenever the table, or the meaning of anything it passes, changes. */
#define RM_CUDA_MODULE_ABI 2

/* What probe() found out about one GPU. */
typedef struct rm_cuda_device_info {
    int ordinal;
    char name[256];
    int cc_major, cc_minor;         /* compute capability */
    int n_sms;
    int driver_version;             /* cudaDriverGetVersion: 13000 = CUDA 13.0 */
    int runtime_version;            /* the CUDA runtime the module was built with */
    int cublaslt_version;           /* cublasLtGetVersion of the library loaded */
    size_t total_bytes, free_bytes; /* device memory when probed */
} rm_cuda_device_info;

/* Time spent per kind of work in one profiled forward pass (seconds, from
 * CUDA events) and the work done, for the benchmark. */
typedef enum rm_cuda_work {
    RM_CUDA_WORK_GEMM = 0,          /* cuBLASLt projections */
    RM_CUDA_WORK_ATTENTION,         /* rm_cu_attention */
    RM_CUDA_WORK_QUANTIZE,          /* FP8 activation quantisation */
    RM_CUDA_WORK_OTHER,             /* norms, RoPE, SwiGLU, embedding, copies */
    RM_CUDA_WORK_KINDS
} rm_cuda_work;

typedef struct rm_cuda_profile {
    double seconds[RM_CUDA_WORK_KINDS];
    double seconds_total;           /* the whole pass, host to host */
    double gemm_flops;              /* 2 * m * n * k over every GEMM run */
    double attention_flops;         /* 4 * head_dim * heads per (query, key) pair actually attended */
    /* With replay_gemms set: every GEMM of the pass run again, alone, back
     * to back on the same operands: the cuBLASLt ceiling at these shapes. */
    int replay_gemms;
    double gemm_replay_seconds, gemm_replay_flops;
    size_t passes;                  /* passes the batch was split into (1 when it fits the arena) */
    int fp8_scaling;                /* 0 bf16, 1 FP8 per-row scales (OUTER_VEC), 2 FP8 per-tensor */
    int fast_accum;                 /* FP8: CUBLASLT_MATMUL_DESC_FAST_ACCUM in effect */
} rm_cuda_profile;

/* Engine settings for measurement (set_option). */
typedef enum rm_cuda_option {
    RM_CUDA_OPTION_FP8_FAST_ACCUM = 1,  /* CUBLASLT_MATMUL_DESC_FAST_ACCUM on FP8 GEMMs: 0 (default) or 1 */
} rm_cuda_option;

/* The engine's extra kernels (kernels/extras.h), run on host data for tests. */
typedef enum rm_cuda_kernel {
    RM_CUDA_KERNEL_F32_TO_BF16 = 1,     /* in: rows x cols float; out: uint16_t */
    RM_CUDA_KERNEL_F16_TO_BF16 = 2,     /* in: uint16_t (IEEE half); out: uint16_t */
    RM_CUDA_KERNEL_FP8_TENSOR = 3,      /* in: uint16_t bf16; out: uint8_t e4m3; scales[0]: the one scale */
} rm_cuda_kernel;

/* Sizes of the structs that cross the boundary: a module built from
 * another tree is refused even if someone forgot to bump the abi. */
typedef struct rm_cuda_layout {
    uint32_t config, tensor, layer_weights, model_weights, batch, engine_opts, engine_ops, engine_memory, err,
        device_info, profile, comm, comm_ops, comm_device;
} rm_cuda_layout;

#define RM_CUDA_LAYOUT_INIT                                                                                     \
    {                                                                                                          \
        sizeof(rm_config), sizeof(rm_tensor), sizeof(rm_layer_weights), sizeof(rm_model_weights),              \
            sizeof(rm_batch), sizeof(rm_engine_opts), sizeof(rm_engine_ops), sizeof(rm_engine_memory),         \
            sizeof(rm_err), sizeof(rm_cuda_device_info), sizeof(rm_cuda_profile), sizeof(rm_comm),            \
            sizeof(rm_comm_ops), sizeof(rm_comm_device)                                                        \
    }

typedef struct rm_cuda_module {
    uint32_t abi;                   /* RM_CUDA_MODULE_ABI */
    uint32_t struct_size;           /* sizeof(rm_cuda_module) */
    const char *version;            /* RM_VERSION_STRING of the tree it was built from */
    const char *arch;               /* the CUDA_ARCH targets it carries, e.g. "sm_90a sm_80 compute_80" */
    rm_cuda_layout layout;
    const rm_engine_ops *ops;       /* the engine "cuda" */

    /* Is GPU `gpu` usable by this module? Checks, in order: the driver
     * (libcuda.so.1), its CUDA version against the runtime's, the GPU count,
     * the ordinal, and that the module carries code for its compute
     * capability. RM_OK fills *info; otherwise err says which and why. */
    rm_status (*probe)(int gpu, rm_cuda_device_info *info, rm_err *err);

    /* The random model of lib/random_model.h built on the GPU (no file):
     * benchmarks and the real-shape test. cfg is a Llama shape. */
    rm_status (*create_random)(rm_engine **out, const rm_config *cfg, uint64_t seed, const rm_engine_opts *opts,
                               rm_err *err);
    /* forward() with per-kind timing (and optionally the GEMM replay). */
    rm_status (*profile)(rm_engine *e, const rm_batch *batch, float *out_hidden, rm_cuda_profile *prof,
                         rm_err *err);
    rm_status (*set_option)(rm_engine *e, rm_cuda_option option, int value, rm_err *err);
    /* Runs one of the engine's own kernels on GPU `gpu` over host data. */
    rm_status (*run_kernel)(int gpu, rm_cuda_kernel which, const void *in, size_t rows, size_t cols, void *out,
                            float *scales, rm_err *err);

    /* Tensor parallelism (lib/parallel/, docs/parallel.md). comm_nccl_create
     * makes the NCCL endpoints of a plan's local ranks, each on its own GPU
     * (lib/cuda/collective_nccl.c; NCCL is opened then, not before).
     * comm_device is what the in-process group needs to sum on the device
     * when this process's ranks share one GPU (lib/cuda/collective_device.c). */
    rm_status (*comm_nccl_create)(rm_comm **out, const struct rm_tp_plan *plan, rm_err *err);
    const rm_comm_device *comm_device;
} rm_cuda_module;

typedef const rm_cuda_module *(*rm_cuda_module_fn)(void);

/* ---- lib/cuda_module.c: finding and loading the module (libnimreward side) */

/* Loads the module once per process (later calls return the same table or
 * the same failure). Searched in this order, the first file that exists
 * wins: $NIMREWARD_MODULE_DIR; the directory of the loaded libnimreward.so
 * plus nimreward/; the executable's ../lib/nimreward/; the install LIBDIR
 * plus nimreward/. Fails with RM_ERR_UNSUPPORTED naming what was searched,
 * dlerror()'s text (a library of the module missing), or the version
 * mismatch. *path_out (may be NULL) gets the file loaded or tried. */
RM_INTERNAL rm_status rm_cuda_module_get(const rm_cuda_module **out, const char **path_out, rm_err *err);

/* The directories searched, in order, written into buf (one per line), for
 * messages and the tools' --help. */
RM_INTERNAL void rm_cuda_module_search_dirs(char *buf, size_t size);

/* Checks a loaded table against this library (abi, version, layout). */
RM_INTERNAL rm_status rm_cuda_module_check(const rm_cuda_module *mod, const char *path, rm_err *err);

#endif
