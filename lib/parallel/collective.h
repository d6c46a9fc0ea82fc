/*
 * collective.h - the collective operations of tensor-parallel ranks, behind
 * one interface with two implementations:
 *   comm_threads.c            ranks that are threads of one process sharing
 *                             memory: the CPU engine's ranks (--device cpu
 *                             --tp N), and several ranks on one GPU (the CUDA
 *                             module then supplies rm_comm_device so the sum
 *                             runs on the device);
 *   lib/cuda/collective_nccl.c  NCCL across GPUs, in one process or one
 *                             process per GPU (compiled into the CUDA module).
 *
 * The contract every implementation keeps:
 *  - Every rank of a group makes the same calls in the same order with the
 *    same counts (an implementation that can see a mismatch refuses it).
 *  - all_reduce_sum gives every rank the same bits, and the same bits from
 *    one run to the next: the in-process sum is taken in rank order.
 *  - Nothing hangs. A call that waits longer than the group's timeout fails
 *    with RM_ERR_DEVICE and aborts the group; a rank that fails calls abort()
 *    and every rank's pending and later calls return its status and message.
 *  - Memory: `stream` NULL means buf is host memory; otherwise buf is device
 *    memory and the operation is ordered on that CUDA stream (a cudaStream_t,
 *    passed as void * so this header stays free of CUDA).
 */
#ifndef RM_PARALLEL_COLLECTIVE_H
#define RM_PARALLEL_COLLECTIVE_H

#include "common.h"

/* The timeout when the caller gives none: long enough for a slow rank's
 * prefill of a long batch, short enough that a dead peer is noticed. */
#define RM_COMM_DEFAULT_TIMEOUT_S 300.0

typedef enum rm_comm_dtype {
    RM_COMM_F32 = 0,
    RM_COMM_BF16 = 1            /* summed in fp32 (in rank order), rounded to bf16 once */
} rm_comm_dtype;

typedef struct rm_comm rm_comm;

typedef struct rm_comm_ops {
    const char *name;           /* "threads", "nccl" */
    /* buf[0 .. count) = the sum over the ranks of their buf, in place. */
    rm_status (*all_reduce_sum)(rm_comm *c, void *buf, size_t count, rm_comm_dtype dt, void *stream,
                                rm_err *err);
    /* Every rank's buf[0 .. bytes) = root's. */
    rm_status (*broadcast)(rm_comm *c, void *buf, size_t bytes, int root, void *stream, rm_err *err);
    /* Returns when every rank has called it. */
    rm_status (*barrier)(rm_comm *c, rm_err *err);
    /* Waits, bounded by the timeout and watching for peer failures, until
     * the work enqueued on `stream` is done (engines call it instead of
     * cudaStreamSynchronize, which would hang on a dead peer). Host
     * implementations are synchronous: it returns at once. */
    rm_status (*wait)(rm_comm *c, void *stream, rm_err *err);
    /* Fails every rank's pending and later calls with status and why (the
     * first abort wins). Any thread may call it, at any time. */
    void (*abort)(rm_comm *c, rm_status status, const char *why);
    /* 1 once the group is aborted; *status and msg (n bytes) say why. */
    int (*aborted)(rm_comm *c, rm_status *status, char *msg, size_t n);
    void (*set_timeout)(rm_comm *c, double seconds);
    /* Clears an abort so the group serves again; called on one endpoint when
     * no rank is inside a call. RM_OK, or why it cannot (an aborted NCCL
     * communicator is gone for good). */
    rm_status (*reset)(rm_comm *c, rm_err *err);
    void (*destroy)(rm_comm *c);    /* this rank's endpoint; the group lives until its last */
} rm_comm_ops;

/* One rank's endpoint of a group. Implementations embed it first. */
struct rm_comm {
    const rm_comm_ops *ops;
    int rank, size;
};

static inline rm_status rm_comm_all_reduce(rm_comm *c, void *buf, size_t count, rm_comm_dtype dt, void *stream,
                                           rm_err *err) {
    return c->ops->all_reduce_sum(c, buf, count, dt, stream, err);
}

/* ------------------------------------------------ the in-process group (comm_threads.c) */

/* How ranks sharing one GPU sum on the device (the CUDA module fills it):
 * sum writes dst[i] = srcs[0][i] + srcs[1][i] + ... (that order, fp32
 * accumulation, bf16 rounded once) for i in [offset, offset + count), on
 * `stream`; copy copies bytes device to device on `stream`; sync waits for
 * `stream`; alloc / release hold the group's device scratch. Every member
 * is required. Host buffers (stream NULL) never use it. */
typedef struct rm_comm_device {
    rm_status (*sum)(void *dst, void *const *srcs, int n_srcs, size_t offset, size_t count, rm_comm_dtype dt,
                     void *stream, rm_err *err);
    rm_status (*copy)(void *dst, const void *src, size_t bytes, void *stream, rm_err *err);
    rm_status (*sync)(void *stream, rm_err *err);
    rm_status (*alloc)(void **out, size_t bytes, rm_err *err);
    void (*release)(void *p);
} rm_comm_device;

/* Creates a group of n ranks that are threads of this process: out[r] is
 * rank r's endpoint (destroy each; the group goes with the last).
 * timeout_s <= 0 means RM_COMM_DEFAULT_TIMEOUT_S. dev may be NULL (host
 * buffers only). */
RM_INTERNAL rm_status rm_comm_threads_create(rm_comm **out, int n, double timeout_s, const rm_comm_device *dev,
                                             rm_err *err);

#endif
