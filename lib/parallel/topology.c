/*
 * topology.c - which ranks this process runs. rm_params first, then the
 * variables a launcher exports: torchrun, Slurm, Open MPI, in that order.
 * Only read: the library never calls setenv (NCCL_COMM_ID and the like
 * would also steer torch's own communicators in the same process).
 */
#include "parallel/tp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct launcher {
    const char *name;
    const char *rank, *world, *local;
} launcher;

static const launcher launchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
};

/* -1: not set; -2: set but not a non-negative integer (message in err). */
static long env_count(const char *var, rm_err *err) {
    const char *v = getenv(var);
    if (!v || !*v) return -1;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 0 || n > 1 << 24) {
        rm_fail(err, RM_ERR_INVALID_ARG, "environment %s=\"%.32s\" is not a non-negative integer", var, v);
        return -2;
    }
    return n;
}

rm_status rm_tp_layout_resolve(rm_tp_layout *out, int tp, int rank, int world_size, int local_rank, rm_err *err) {
    memset(out, 0, sizeof *out);
    if (tp < 1 || tp > 4096) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.tp %d: 1 to 4096 ranks", tp);
    long w = world_size > 0 ? world_size : -1, r = rank >= 0 ? rank : -1, lr = local_rank >= 0 ? local_rank : -1;
    const char *from = "rm_params";
    if (w < 0 || r < 0 || lr < 0) {
        /* The first launcher whose world size is present supplies what rm_params left unset. */
        for (size_t i = 0; i < sizeof launchers / sizeof *launchers; i++) {
            const launcher *L = &launchers[i];
            long lw = env_count(L->world, err);
            if (lw == -2) return RM_ERR_INVALID_ARG;
            if (lw < 0) continue;
            long lrank = env_count(L->rank, err), llocal = env_count(L->local, err);
            if (lrank == -2 || llocal == -2) return RM_ERR_INVALID_ARG;
            if (w < 0) w = lw, from = L->name;
            if (r < 0) r = lrank;
            if (lr < 0) lr = llocal;
            break;
        }
    }
    if (w < 0) w = 1, from = "default";
    if (w < 1) return rm_fail(err, RM_ERR_INVALID_ARG, "world size 0 (%s)", from);
    if (r < 0) {
        if (w > 1)
            return rm_fail(err, RM_ERR_INVALID_ARG, "world size %ld (%s) but no rank: set rm_params.rank or the "
                           "launcher's rank variable", w, from);
        r = 0;
    }
    if (r >= w) return rm_fail(err, RM_ERR_INVALID_ARG, "rank %ld outside the world of %ld (%s)", r, w, from);
    if (lr < 0) lr = r;   /* one host: the local rank is the rank */
    if (w != 1 && w != tp)
        return rm_fail(err, RM_ERR_INVALID_ARG,
                       "tensor parallelism over %d ranks in a world of %ld processes (%s): either one process runs "
                       "every rank (world size 1) or one process runs each rank (world size %d); inside a larger "
                       "job, set rm_params.rank and world_size to this process's place in its tensor-parallel group",
                       tp, w, from, tp);
    out->tp = tp;
    out->world = (int)w;
    out->first_rank = w == 1 ? 0 : (int)r;
    out->n_local = w == 1 ? tp : 1;
    out->local_rank = (int)lr;
    snprintf(out->source, sizeof out->source, "%s", from);
    return RM_OK;
}
