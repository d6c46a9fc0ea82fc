/*
 * tp.h - tensor parallelism: one model split Megatron-style over ranks.
 *   topology.c     who this process is: ranks, world, local rank (rm_params,
 *                  then torchrun, Slurm, Open MPI environment variables)
 *   shard.c        the sharding rule and each rank's slice of the weights
 *   rank_inputs.c  the check that every rank was given the same inputs
 *   engine_tp.c    the "tp" engine: N ranks (threads), each with its own
 *                  inner engine, behind rm_engine_ops
 * docs/parallel.md tells the whole story.
 */
#ifndef RM_PARALLEL_TP_H
#define RM_PARALLEL_TP_H

#include "common.h"
#include "config.h"
#include "engine.h"
#include "parallel/collective.h"
#include "weights.h"

struct rm_pack;

/* ------------------------------------------------ topology.c */

typedef struct rm_tp_layout {
    int tp;                     /* ranks the model is split over */
    int world;                  /* processes: 1 (this one drives every rank) or tp (one rank each) */
    int first_rank;             /* the first rank this process runs */
    int n_local;                /* ranks this process runs: tp when world is 1, else 1 */
    int local_rank;             /* this process's index on its host (picks its GPU) */
    char source[64];            /* where world and rank came from, for messages */
} rm_tp_layout;

/* Resolves the layout for `tp` ranks. rank / world_size / local_rank come
 * from rm_params when set (>= 0, > 0, >= 0), else from the first launcher
 * whose world-size variable is present: torchrun (RANK, WORLD_SIZE,
 * LOCAL_RANK), Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), Open MPI
 * (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK); else a world of 1. Reads the
 * environment, never writes it. A world that is neither 1 nor tp is refused
 * (set rm_params.rank / world_size to the rank within the tensor-parallel
 * group when it is part of a larger job). */
RM_INTERNAL rm_status rm_tp_layout_resolve(rm_tp_layout *out, int tp, int rank, int world_size, int local_rank,
                                           rm_err *err);

/* ------------------------------------------------ shard.c */

/* The sharding rule: heads % tp == 0; kv_heads % tp == 0, or tp % kv_heads
 * == 0 (each kv head then replicated on tp / kv_heads ranks); ffn % tp == 0.
 * A refusal names the count that does not divide (RM_ERR_INVALID_ARG). */
RM_INTERNAL rm_status rm_shard_check(const rm_config *cfg, int tp, rm_err *err);

/* Rank `rank`'s config: the full one with its own head, kv head and ffn
 * counts (labels not carried: NULL). */
RM_INTERNAL void rm_shard_config(const rm_config *full, int tp, int rank, rm_config *local);

/* One rank's part of the model. q_proj/k_proj/v_proj (and their biases) and
 * gate_proj/up_proj hold the rank's rows, which are contiguous in the file:
 * their tensors point into the mapping. o_proj and down_proj hold the rank's
 * input columns, strided in the file: those are copied, in the file's
 * dtype, into buffers the shard owns. Everything else (embedding, norms,
 * o_proj/down_proj biases, heads) is the full tensor, shared. */
typedef struct rm_shard {
    int rank, tp;
    rm_config cfg;              /* rm_shard_config */
    rm_model_weights mw;        /* bound to cfg */
    int64_t q_head0, kv_head0, ffn0;    /* the rank's first head, kv head and ffn row in the full model */
    rm_tensor *slices;          /* the sliced tensors (names borrowed from the checkpoint) */
    size_t n_slices;
    void **owned;               /* the column copies */
    size_t n_owned;
    rm_weights *weights;        /* a pack rank's tensors (decompressed), when loaded from a pack */
} rm_shard;

/* Where the ranks' weights come from: the mapped checkpoint bound to the
 * full config, or a pack made for this tp (lib/pack/). */
typedef struct rm_shard_source {
    const rm_config *cfg;
    const rm_model_weights *mw; /* NULL with a pack */
    const struct rm_pack *pack;
} rm_shard_source;

/* Builds rank `rank`'s shard (n_threads: decompression threads for a pack). */
RM_INTERNAL rm_status rm_shard_load(rm_shard **out, const rm_shard_source *src, int tp, int rank, int n_threads,
                                    rm_err *err);
RM_INTERNAL void rm_shard_free(rm_shard *s);

/* ------------------------------------------------ rank_inputs.c */

/* Every rank must score the same inputs in the same order. Each rank
 * fingerprints its batch (sequence lengths, tokens, prefix sharing: 64-bit
 * XXH64), rank 0's fingerprint is broadcast, and a count of the ranks that
 * differ is summed: when any differs, every rank fails with
 * RM_ERR_INVALID_ARG instead of mixing activations of different inputs. */
RM_INTERNAL rm_status rm_tp_inputs_check(rm_comm *c, const rm_batch *b, rm_err *err);

/* ------------------------------------------------ engine_tp.c */

/* What the tp engine runs (rm_engine_opts.tp). */
typedef struct rm_tp_plan {
    rm_tp_layout layout;
    const rm_engine_ops *inner;         /* each rank's engine (cpu; cuda) */
    rm_shard_source source;
    const int *gpus;                    /* device of each local rank; NULL = local_rank (one per process),
                                           else rank index */
    size_t n_gpus;
    double timeout_s;                   /* collectives; <= 0: RM_COMM_DEFAULT_TIMEOUT_S */
    /* Makes the endpoints of the layout.n_local local ranks (out[i] for rank
     * first_rank + i). NULL: the in-process group on host memory, which
     * needs world == 1. With the CUDA engine (plan.c): NCCL, one rank per
     * GPU, or the in-process group summing on the device when this
     * process's ranks all share one GPU. */
    rm_status (*comm_create)(rm_comm **out, const struct rm_tp_plan *plan, rm_err *err);
    const void *comm_ctx;               /* for comm_create: the 128-byte NCCL unique id from rm_params, or NULL;
                                           valid only while the engine is created */
    int tp_asked;                       /* rm_params.tp was set (not only the pack's): a CUDA tp 1 then runs
                                           through a one-rank NCCL communicator, which a pack alone never needs */
} rm_tp_plan;

/* The GPU of local rank `index` (0 .. layout.n_local): rm_params.gpus, else
 * rank i on GPU i when this process runs every rank, else the local rank's. */
static inline int rm_tp_gpu_of(const rm_tp_plan *plan, int index) {
    if (plan->gpus) return plan->gpus[index];
    return plan->layout.world == 1 ? index : plan->layout.local_rank;
}

/* The collective of the CUDA engine's ranks (plan.c). This process's ranks
 * all on one GPU: the in-process group summing on the device (NCCL refuses
 * two ranks on one GPU; this is also how the sharded path is tested on one
 * GPU), as is a tp-1 pack loaded without rm_params.tp. Otherwise NCCL, each
 * local rank on its own GPU; with tp 1 asked for, a one-rank communicator.
 * A mix of the two is refused (RM_ERR_INVALID_ARG). */
typedef enum rm_tp_collective { RM_TP_COMM_DEVICE_THREADS = 0, RM_TP_COMM_NCCL = 1 } rm_tp_collective;
RM_INTERNAL rm_status rm_tp_cuda_collective(const rm_tp_plan *plan, rm_tp_collective *out, rm_err *err);

/* The plan rm_load runs (plan.c): tp from rm_params (or the pack's, which
 * also checks the dtype and device asked for), the sharding rule, the
 * layout from rm_params and the environment. `inner` is the engine each
 * rank runs. */
RM_INTERNAL rm_status rm_tp_plan_make(rm_tp_plan *plan, const rm_params *p, const rm_config *cfg,
                                      const rm_model_weights *mw, const struct rm_pack *pack, rm_device device,
                                      const rm_engine_ops *inner, rm_err *err);

/* Rank 0's embedding, final norm and heads (a model loaded from a pack has
 * no other copy): fills those fields of *out, leaves the rest. */
RM_INTERNAL void rm_engine_tp_head_weights(const rm_engine *e, rm_model_weights *out);

/* Test hooks. rm_engine_tp_inject makes local rank `rank` fail on the next
 * forward pass: at_collective < 0 before it starts, else at its
 * at_collective'th all-reduce (from 0), with `status`; hang = 1 instead
 * stops that rank there (it waits, as a stuck rank would, until the group
 * is aborted) so the others' timeout is what ends the pass. One shot. */
RM_INTERNAL void rm_engine_tp_inject(rm_engine *e, int rank, long at_collective, rm_status status, int hang);
/* Local rank `rank`'s result of the last forward pass. */
RM_INTERNAL rm_status rm_engine_tp_rank_result(const rm_engine *e, int rank, char *msg, size_t n);
/* Ranks this engine runs; the layout it was made with. */
RM_INTERNAL int rm_engine_tp_n_local(const rm_engine *e);

#endif
