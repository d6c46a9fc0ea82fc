/*
 * collective_nccl.h - the NCCL implementation of the collective interface
 * (lib/parallel/collective.h), for tensor-parallel ranks on distinct GPUs:
 * in one process (one thread per GPU) or one process per GPU, on one host
 * or several. Compiled into the CUDA module, not into libnimreward.
 *
 * NCCL is opened with dlopen("libnccl.so.2") the first time a group is
 * made, which happens only when tp > 1 (or tp is asked for explicitly):
 * single-GPU use never needs NCCL installed.
 *
 * Nothing here blocks without a bound: the communicators are non-blocking
 * (ncclConfig_t.blocking = 0), every wait polls the stream, the
 * communicator's asynchronous error and the group's abort flag, and after
 * the timeout (or a peer's failure) the communicator is aborted
 * (ncclCommAbort) and every later call fails with the reason.
 */
#ifndef RM_CUDA_COLLECTIVE_NCCL_H
#define RM_CUDA_COLLECTIVE_NCCL_H

#include "parallel/collective.h"
#include "parallel/tp.h"

/* Opens libnccl.so.2 (once); RM_ERR_UNSUPPORTED naming what is missing. */
RM_INTERNAL rm_status rm_nccl_open(rm_err *err);

typedef struct rm_nccl_opts {
    int tp;                     /* ranks in the group */
    int first_rank;             /* the first rank this process runs */
    int n_local;                /* ranks this process runs: one thread and one GPU each */
    const int *devices;         /* [n_local] CUDA device ordinals, all distinct */
    const unsigned char *unique_id; /* 128 bytes (ncclUniqueId) from the caller, or NULL: made here when this
                                       process runs every rank, else NCCL's bootstrap at NCCL_COMM_ID */
    double timeout_s;           /* <= 0: RM_COMM_DEFAULT_TIMEOUT_S */
} rm_nccl_opts;

/* Makes out[0 .. n_local) for ranks first_rank ... Blocks (bounded by the
 * timeout) until every rank of the group has joined. Errors carry NCCL's own
 * message (ncclGetLastError). */
RM_INTERNAL rm_status rm_comm_nccl_create(rm_comm **out, const rm_nccl_opts *o, rm_err *err);

/* rm_tp_plan.comm_create for ranks on distinct GPUs: devices from plan->gpus
 * (or the layout), the unique id from plan->comm_ctx (128 bytes, or NULL). */
RM_INTERNAL rm_status rm_comm_nccl_plan_create(rm_comm **out, const rm_tp_plan *plan, rm_err *err);

#endif
