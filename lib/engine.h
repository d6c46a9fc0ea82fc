/*
 * engine.h - the one interface every forward-pass engine implements (the CPU
 * engine, and the CUDA engine in the module lib/cuda/ that libnimreward
 * loads on demand: lib/cuda_module.h). An engine runs the decoder over a
 * packed batch and returns the final-normed hidden state at the positions a
 * head reads.
 */
#ifndef RM_ENGINE_H
#define RM_ENGINE_H

#include "common.h"
#include "config.h"
#include "weights.h"

/* A packed batch: no padding. Sequence s has n_tokens[s] tokens; its first
 * shared_len[s] tokens are the same as the first shared_len[s] tokens of an
 * earlier sequence parent[s] (parent[s] < s, or -1 with shared_len 0), and
 * the engine computes them once (prefix sharing, e.g. principles). */
typedef struct rm_batch {
    size_t n_seqs;
    const int32_t *const *tokens;   /* tokens[s][0 .. n_tokens[s]) */
    const size_t *n_tokens;
    const int32_t *parent;          /* may be NULL: no sharing */
    const size_t *shared_len;       /* may be NULL */
} rm_batch;

/* Work done, accumulated by the engine (see rm_counters). */
typedef struct rm_engine_counters {
    uint64_t forward_passes, tokens_computed, tokens_last_layer, weight_bytes_read;
} rm_engine_counters;

/* How an engine keeps them: relaxed atomics, since any calling thread adds
 * and any thread may read or reset (rm_counters is a snapshot, not a
 * barrier). layer_tokens has one entry per layer. */
static inline void rm_counter_add(uint64_t *c, uint64_t n) { __atomic_fetch_add(c, n, __ATOMIC_RELAXED); }

static inline void rm_counters_read(const rm_engine_counters *c, const uint64_t *layer_tokens, int64_t n_layers,
                                    rm_engine_counters *out, uint64_t *layer_tokens_out) {
    out->forward_passes = __atomic_load_n(&c->forward_passes, __ATOMIC_RELAXED);
    out->tokens_computed = __atomic_load_n(&c->tokens_computed, __ATOMIC_RELAXED);
    out->tokens_last_layer = __atomic_load_n(&c->tokens_last_layer, __ATOMIC_RELAXED);
    out->weight_bytes_read = __atomic_load_n(&c->weight_bytes_read, __ATOMIC_RELAXED);
    for (int64_t l = 0; layer_tokens_out && l < n_layers; l++)
        layer_tokens_out[l] = __atomic_load_n(&layer_tokens[l], __ATOMIC_RELAXED);
}

static inline void rm_counters_clear(rm_engine_counters *c, uint64_t *layer_tokens, int64_t n_layers) {
    __atomic_store_n(&c->forward_passes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->tokens_computed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->tokens_last_layer, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->weight_bytes_read, 0, __ATOMIC_RELAXED);
    for (int64_t l = 0; l < n_layers; l++) __atomic_store_n(&layer_tokens[l], 0, __ATOMIC_RELAXED);
}

typedef struct rm_engine rm_engine;
struct rm_comm;
struct rm_tp_plan;

/* Device memory an engine holds, all of it allocated at create (see
 * rm_memory in nimreward.h). */
typedef struct rm_engine_memory {
    size_t weights;                 /* bytes of weights on the device */
    size_t activations;             /* the activation arena */
    size_t workspace;               /* GEMM workspace and per-pass index arrays */
    size_t budget;                  /* max_device_bytes as resolved at create */
    size_t peak_load;               /* most bytes held during create (load staging included) */
    size_t tokens_per_pass;         /* token rows one pass computes at most (the arena's size) */
} rm_engine_memory;

/* What rm_load() asks of an engine, resolved from rm_params: dtype is never
 * RM_DTYPE_AUTO here (the engine's default was chosen by model.c). */
typedef struct rm_engine_opts {
    int n_threads;                  /* CPU threads; 0 = all online cores */
    rm_dtype dtype;                 /* RM_DTYPE_FP32 / BF16 / FP8 */
    int gpu;                        /* CUDA device ordinal */
    size_t max_device_bytes;        /* 0 = free memory less the engine's margin */
    /* Tensor parallelism (lib/parallel/, docs/parallel.md). */
    struct rm_comm *comm;           /* a rank's engine: cfg and weights are its shard; it sums the outputs of
                                       o_proj and down_proj over the group (all-reduce) before adding them to
                                       the residual. NULL: the whole model. */
    const struct rm_tp_plan *tp;    /* the "tp" engine only: the ranks to run and their engine */
    int device_shares;              /* CUDA: the engines of this process on this GPU (tp ranks sharing it), this
                                       one included; with max_device_bytes 0 each takes that share of the free
                                       memory. 0 or 1: alone. */
} rm_engine_opts;

typedef struct rm_engine_ops {
    const char *name;               /* "cpu", "cuda" */
    rm_status (*create)(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                        const rm_engine_opts *opts, rm_err *err);
    /* Writes batch->n_seqs rows of cfg->hidden floats into out_hidden: the
     * final RMSNorm'ed hidden state of each sequence's last token. Only those
     * positions are computed in the last layer. Thread-safe (cpu: scratch per
     * call; cuda: calls queue for the device's activation arena, and each
     * gives bitwise what it gives alone). */
    rm_status (*forward)(rm_engine *e, const rm_batch *batch, float *out_hidden, rm_err *err);
    /* out[i] = dot(rows[i] of matrix t, hidden) for n_rows rows (heads: score,
     * lm_head rows). Converts only those rows. */
    rm_status (*head_rows)(rm_engine *e, const rm_tensor *t, const int64_t *rows, size_t n_rows,
                           const float *hidden, float *out, rm_err *err);
    /* Snapshot / reset of the counters (thread-safe); layer_tokens_out, when
     * not NULL, gets the token rows of each of the n_layers layers. */
    void (*counters)(rm_engine *e, rm_engine_counters *out, uint64_t *layer_tokens_out);
    void (*counters_reset)(rm_engine *e);
    void (*destroy)(rm_engine *e);
    /* Device memory held; NULL for an engine that holds none (cpu). */
    void (*memory)(rm_engine *e, rm_engine_memory *out);
} rm_engine_ops;

RM_INTERNAL extern const rm_engine_ops rm_engine_cpu;
RM_INTERNAL extern const rm_engine_ops rm_engine_tp;   /* lib/parallel/engine_tp.c */

#endif
