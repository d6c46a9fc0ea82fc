/*
 * cuda_engine.h - the CUDA engine's state, shared by its files:
 *   cuda_engine.c  create (weights, memory plan), destroy, counters, memory
 *   upload.c       streaming weights from the mapped files to the GPU
 *   forward.c      the forward pass over a packed batch, split into passes
 *   random_model.c the random model of lib/random_model.h built on the GPU
 *   head_rows.c    the heads, on the host, from the mapped rows they read
 *
 * Weights live in one device allocation (the slab): per layer the fused QKV
 * [QD + 2 KD, H], o [H, QD], fused gate_up [2 F, H] and down [H, F] in bf16,
 * or in e4m3 with fp32 scales (one per output row; one per matrix in the
 * per-tensor fallback), and the norms, biases and embedding in bf16. The
 * lm_head / score rows are read on the host (head_rows.c): they are never
 * uploaded.
 */
#ifndef RM_CUDA_ENGINE_H
#define RM_CUDA_ENGINE_H

#include <pthread.h>
#include <cuda_runtime_api.h>

#include "cuda_module.h"
#include "device.h"
#include "engine.h"
#include "gemm.h"
#include "memory_plan.h"
#include "parallel/collective.h"

/* A weight matrix on the device: rows x cols, row-major (rows = output channels). */
typedef struct cu_matrix {
    void *data;                 /* bf16 or e4m3 */
    float *scales;              /* FP8: rows scales (per row) or 1 (per tensor); NULL in bf16 */
    int64_t rows, cols;
} cu_matrix;

typedef struct cu_layer {
    cu_matrix qkv, o, gate_up, down;
    uint16_t *attn_norm, *mlp_norm;         /* [H] */
    uint16_t *qkv_bias;                     /* [QD + 2 KD] (missing parts zero) or NULL */
    uint16_t *o_bias;                       /* [H] or NULL */
    uint16_t *gate_up_bias;                 /* [2 F] or NULL */
    uint16_t *down_bias;                    /* [H] or NULL */
    uint16_t *q_norm, *k_norm;              /* [head_dim], qwen3 */
} cu_layer;

/* A ticket lock: calls run their passes in the order they arrived. */
typedef struct cu_queue {
    pthread_mutex_t lock;
    pthread_cond_t turn;
    uint64_t next_ticket, serving;
} cu_queue;

struct rm_engine {
    rm_config cfg;                          /* copy of the numbers (labels not owned) */
    const rm_model_weights *w;              /* borrowed; NULL for a random model */
    int gpu;
    rm_dtype dtype;                         /* BF16 or FP8 */
    cu_gemm_kind kind;                      /* the projections' GEMM kind */
    int64_t H, QD, KD, F, P;                /* P = QD + 2 KD, the fused QKV width */
    int n_threads;                          /* host threads for the upload */

    cudaStream_t stream;                    /* the engine's own: never the caller's */
    cu_gemm gemm;

    /* The weight slab. */
    void *slab;
    size_t slab_bytes;
    cu_layer *layers;
    uint16_t *embed;                        /* [V, H] */
    uint16_t *final_norm;                   /* [H] */
    float *inv_freq;                        /* [head_dim / 2], in the index allocation */

    /* Activations and the per-pass index arrays. */
    cu_shape shape;
    cu_arena_layout arena;
    cu_meta_layout meta;
    char *arena_base;
    int32_t *meta_dev;                      /* meta.count int32 + inv_freq */
    int32_t *meta_host;                     /* pinned, meta.count */
    size_t meta_bytes;

    rm_engine_memory mem;
    cu_queue queue;
    rm_status sticky;                       /* a device error ends this engine's use: every later call gets it */
    char sticky_msg[sizeof(((rm_err *)0)->msg)];

    /* Tensor parallelism (lib/parallel/): this engine is one rank, cfg and
     * weights are its shard, and the layer loop sums the bf16 partial outputs
     * of o_proj and down_proj over the group (rows x hidden, dense, on the
     * engine's stream) before their biases and the residual add; passes end
     * with the group's bounded wait instead of cudaStreamSynchronize. NULL:
     * the whole model on one GPU. */
    rm_comm *comm;

    rm_engine_counters counts;              /* rm_counter_add */
    uint64_t *layer_tokens;
};

/* ---- cuda_engine.c */
RM_INTERNAL extern const rm_engine_ops rm_engine_cuda;
/* The part of create shared by checkpoints and random models: checks, stream,
 * cuBLASLt, FP8 scaling mode, the slab laid out and allocated, the memory
 * plan, the arena and index arrays allocated. min_stage: arena bytes the
 * loader needs for staging. */
RM_INTERNAL rm_status cu_engine_begin(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                                      const rm_engine_opts *opts, size_t min_stage, rm_err *err);
/* After the weights are in: RoPE table, a warm-up pass, the memory report. */
RM_INTERNAL rm_status cu_engine_finish(rm_engine *e, rm_err *err);
RM_INTERNAL void cu_engine_destroy(rm_engine *e);
/* Records a device error as the engine's sticky status and returns it. */
RM_INTERNAL rm_status cu_engine_fail(rm_engine *e, rm_status st, const rm_err *err);
RM_INTERNAL rm_status cu_set_option(rm_engine *e, rm_cuda_option option, int value, rm_err *err);

/* ---- upload.c */
RM_INTERNAL rm_status cu_upload_weights(rm_engine *e, rm_err *err);

/* ---- forward.c */
RM_INTERNAL rm_status cu_forward(rm_engine *e, const rm_batch *b, float *out_hidden, rm_err *err);
RM_INTERNAL rm_status cu_profile(rm_engine *e, const rm_batch *b, float *out_hidden, rm_cuda_profile *prof,
                                 rm_err *err);

/* ---- random_model.c */
RM_INTERNAL rm_status cu_create_random(rm_engine **out, const rm_config *cfg, uint64_t seed,
                                       const rm_engine_opts *opts, rm_err *err);

/* ---- head_rows.c */
RM_INTERNAL rm_status cu_head_rows(rm_engine *e, const rm_tensor *t, const int64_t *rows, size_t n_rows,
                                   const float *hidden, float *out, rm_err *err);

#endif
