/*
 * collective_nccl.c - tensor-parallel collectives over NCCL (collective.h).
 *
 * Threads: each local rank's endpoint is used by that rank's thread only;
 * abort() may come from any thread, so it only raises the group's flag, and
 * the owning thread, which polls the flag in every wait, calls
 * ncclCommAbort itself (no two threads ever call NCCL on one communicator).
 * Non-blocking communicators make every NCCL call return at once
 * (ncclInProgress), so an owning thread is never stuck inside NCCL.
 *
 * Memory: with a stream, buffers are device memory and the operation is
 * only enqueued (the engine calls wait() where it would synchronise); with
 * stream NULL, buffers are host memory, staged through a device buffer of
 * the endpoint's own, and the call returns when done.
 */
#include "cuda/collective_nccl.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STAGING_BYTES ((size_t)1 << 20)

/* ------------------------------------------------ the library, opened on first use */

static struct {
    void *lib;
    char why[512];
    ncclResult_t (*GetVersion)(int *);
    ncclResult_t (*GetUniqueId)(ncclUniqueId *);
    ncclResult_t (*CommInitRankConfig)(ncclComm_t *, int, ncclUniqueId, int, ncclConfig_t *);
    ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t *);
    ncclResult_t (*CommAbort)(ncclComm_t);
    ncclResult_t (*CommFinalize)(ncclComm_t);
    ncclResult_t (*CommDestroy)(ncclComm_t);
    ncclResult_t (*AllReduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*Broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*GroupStart)(void);
    ncclResult_t (*GroupEnd)(void);
    const char *(*GetErrorString)(ncclResult_t);
    const char *(*GetLastError)(ncclComm_t);
} nccl;

static void open_once(void) {
    nccl.lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!nccl.lib) {
        snprintf(nccl.why, sizeof nccl.why, "tensor parallelism on GPUs needs NCCL: dlopen(libnccl.so.2): %s", dlerror());
        return;
    }
#define SYM(field, name)                                                                                     \
    if (!(*(void **)&nccl.field = dlsym(nccl.lib, name))) {                                                  \
        snprintf(nccl.why, sizeof nccl.why, "libnccl.so.2 has no %s (NCCL 2.14 or later is needed)", name); \
        dlclose(nccl.lib);                                                                                   \
        nccl.lib = NULL;                                                                                     \
        return;                                                                                              \
    }
    SYM(GetVersion, "ncclGetVersion");
    SYM(GetUniqueId, "ncclGetUniqueId");
    SYM(CommInitRankConfig, "ncclCommInitRankConfig");
    SYM(CommGetAsyncError, "ncclCommGetAsyncError");
    SYM(CommAbort, "ncclCommAbort");
    SYM(CommFinalize, "ncclCommFinalize");
    SYM(CommDestroy, "ncclCommDestroy");
    SYM(AllReduce, "ncclAllReduce");
    SYM(Broadcast, "ncclBroadcast");
    SYM(GroupStart, "ncclGroupStart");
    SYM(GroupEnd, "ncclGroupEnd");
    SYM(GetErrorString, "ncclGetErrorString");
    SYM(GetLastError, "ncclGetLastError");
#undef SYM
}

rm_status rm_nccl_open(rm_err *err) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, open_once);
    return nccl.lib ? RM_OK : rm_fail(err, RM_ERR_UNSUPPORTED, "%s", nccl.why);
}

/* NCCL's own words for a failure on comm (its last error, else the code's). */
static const char *nccl_words(ncclComm_t comm, ncclResult_t r) {
    const char *last = nccl.GetLastError ? nccl.GetLastError(comm) : NULL;
    return last && *last ? last : nccl.GetErrorString(r);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void pause_briefly(int round) {   /* spin first (latency), then sleep (a waiting rank costs no core) */
    if (round < 64) return;
    struct timespec ts = {0, round < 1024 ? 20 * 1000 : 200 * 1000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------ the group: local ranks share the abort */

typedef struct shared {
    pthread_mutex_t mu;
    int refs;
    int aborted;
    rm_status status;
    char msg[768];
    double timeout_s;
} shared;

typedef struct endpoint {
    rm_comm base;
    shared *sh;
    ncclComm_t comm;            /* NULL once aborted here */
    int device;
    cudaStream_t own;           /* for host-memory operations */
    void *staging;              /* STAGING_BYTES of device memory */
} endpoint;

static endpoint *ep_of(rm_comm *c) { return (endpoint *)c; }

static void raise_abort(shared *sh, rm_status st, const char *why) {
    pthread_mutex_lock(&sh->mu);
    if (!sh->aborted) {
        sh->aborted = 1;
        sh->status = st ? st : RM_ERR_DEVICE;
        snprintf(sh->msg, sizeof sh->msg, "%s", why);
    }
    pthread_mutex_unlock(&sh->mu);
}

/* The group's abort, as this rank's error; aborts this rank's communicator
 * too (we are its owning thread). */
static rm_status aborted_here(endpoint *e, rm_err *err) {
    pthread_mutex_lock(&e->sh->mu);
    int a = e->sh->aborted;
    rm_status st = e->sh->status;
    char msg[sizeof e->sh->msg];
    snprintf(msg, sizeof msg, "%s", e->sh->msg);
    pthread_mutex_unlock(&e->sh->mu);
    if (!a) return RM_OK;
    if (e->comm) {
        nccl.CommAbort(e->comm);
        e->comm = NULL;
    }
    return rm_fail(err, st, "%s", msg);
}

/* A failure seen on this rank: the group is aborted with it. */
static rm_status fail_here(endpoint *e, rm_status st, rm_err *err, const char *fmt, const char *what, const char *detail) {
    char why[768];
    snprintf(why, sizeof why, fmt, e->base.rank, e->base.size, what, detail);
    raise_abort(e->sh, st, why);
    return aborted_here(e, err);
}

/* Polls until `stream` is idle: bounded by the timeout, watching NCCL's
 * asynchronous error and the group's abort. */
static rm_status wait_stream(endpoint *e, cudaStream_t stream, const char *what, rm_err *err) {
    double deadline = now_s() + e->sh->timeout_s;
    for (int round = 0;; round++) {
        rm_status st = aborted_here(e, err);
        if (st) return st;
        cudaError_t ce = cudaStreamQuery(stream);
        if (ce == cudaSuccess) return RM_OK;
        if (ce != cudaErrorNotReady)
            return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: CUDA: %s", what,
                             cudaGetErrorString(ce));
        ncclResult_t async = ncclSuccess;
        nccl.CommGetAsyncError(e->comm, &async);
        if (async != ncclSuccess && async != ncclInProgress)
            return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: NCCL: %s", what,
                             nccl_words(e->comm, async));
        if (now_s() > deadline) {
            char t[192];
            snprintf(t, sizeof t, "timed out after %g s (a rank stopped or is far behind; the limit is "
                     "rm_params.tp_timeout_s)", e->sh->timeout_s);
            return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s %s", what, t);
        }
        pause_briefly(round);
    }
}

/* An enqueue on a non-blocking communicator may answer ncclInProgress: it is
 * complete once the communicator's state leaves that. */
static rm_status enqueued(endpoint *e, ncclResult_t r, const char *what, rm_err *err) {
    double deadline = now_s() + e->sh->timeout_s;
    for (int round = 0; r == ncclInProgress; round++) {
        if (now_s() > deadline)
            return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: %s", what,
                             "NCCL did not accept the operation within the timeout");
        pause_briefly(round);
        nccl.CommGetAsyncError(e->comm, &r);
    }
    if (r != ncclSuccess)
        return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: NCCL: %s", what, nccl_words(e->comm, r));
    return RM_OK;
}

/* ------------------------------------------------ the operations */

static ncclDataType_t nccl_type(rm_comm_dtype dt) { return dt == RM_COMM_BF16 ? ncclBfloat16 : ncclFloat32; }

static rm_status n_all_reduce(rm_comm *c, void *buf, size_t count, rm_comm_dtype dt, void *stream, rm_err *err) {
    endpoint *e = ep_of(c);
    rm_status st = aborted_here(e, err);
    if (st || count == 0) return st;
    if (stream)   /* device memory: enqueue only; the engine's wait() completes it */
        return enqueued(e, nccl.AllReduce(buf, buf, count, nccl_type(dt), ncclSum, e->comm, (cudaStream_t)stream),
                        "all_reduce", err);
    size_t es = dt == RM_COMM_BF16 ? 2 : 4, per = STAGING_BYTES / es;
    for (size_t at = 0; at < count && !st; at += per) {
        size_t n = count - at < per ? count - at : per;
        char *h = (char *)buf + at * es;
        cudaError_t ce = cudaMemcpyAsync(e->staging, h, n * es, cudaMemcpyHostToDevice, e->own);
        if (ce != cudaSuccess) return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: CUDA: %s",
                                                "all_reduce staging", cudaGetErrorString(ce));
        if ((st = enqueued(e, nccl.AllReduce(e->staging, e->staging, n, nccl_type(dt), ncclSum, e->comm, e->own),
                           "all_reduce", err)))
            return st;
        ce = cudaMemcpyAsync(h, e->staging, n * es, cudaMemcpyDeviceToHost, e->own);
        if (ce != cudaSuccess) return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: CUDA: %s",
                                                "all_reduce staging", cudaGetErrorString(ce));
        st = wait_stream(e, e->own, "all_reduce", err);
    }
    return st;
}

static rm_status n_broadcast(rm_comm *c, void *buf, size_t bytes, int root, void *stream, rm_err *err) {
    endpoint *e = ep_of(c);
    rm_status st = aborted_here(e, err);
    if (st || bytes == 0) return st;
    if (root < 0 || root >= c->size)
        return rm_fail(err, RM_ERR_INVALID_ARG, "broadcast: root %d outside the %d ranks", root, c->size);
    if (stream)
        return enqueued(e, nccl.Broadcast(buf, buf, bytes, ncclUint8, root, e->comm, (cudaStream_t)stream), "broadcast", err);
    for (size_t at = 0; at < bytes && !st; at += STAGING_BYTES) {
        size_t n = bytes - at < STAGING_BYTES ? bytes - at : STAGING_BYTES;
        char *h = (char *)buf + at;
        if (c->rank == root && cudaMemcpyAsync(e->staging, h, n, cudaMemcpyHostToDevice, e->own) != cudaSuccess)
            return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: %s", "broadcast", "staging copy");
        if ((st = enqueued(e, nccl.Broadcast(e->staging, e->staging, n, ncclUint8, root, e->comm, e->own), "broadcast", err)))
            return st;
        if (c->rank != root && cudaMemcpyAsync(h, e->staging, n, cudaMemcpyDeviceToHost, e->own) != cudaSuccess)
            return fail_here(e, RM_ERR_DEVICE, err, "tensor-parallel rank %d of %d: %s: %s", "broadcast", "staging copy");
        st = wait_stream(e, e->own, "broadcast", err);
    }
    return st;
}

/* A barrier: an all-reduce of one float, waited for. */
static rm_status n_barrier(rm_comm *c, rm_err *err) {
    float one = 1;
    return n_all_reduce(c, &one, 1, RM_COMM_F32, NULL, err);
}

static rm_status n_wait(rm_comm *c, void *stream, rm_err *err) {
    endpoint *e = ep_of(c);
    rm_status st = aborted_here(e, err);
    if (st || !stream) return st;
    return wait_stream(e, (cudaStream_t)stream, "waiting for the GPU", err);
}

static void n_abort(rm_comm *c, rm_status status, const char *why) { raise_abort(ep_of(c)->sh, status, why); }

static int n_aborted(rm_comm *c, rm_status *status, char *msg, size_t n) {
    shared *sh = ep_of(c)->sh;
    pthread_mutex_lock(&sh->mu);
    int a = sh->aborted;
    if (a && status) *status = sh->status;
    if (a && msg && n) snprintf(msg, n, "%s", sh->msg);
    pthread_mutex_unlock(&sh->mu);
    return a;
}

static void n_set_timeout(rm_comm *c, double s) {
    shared *sh = ep_of(c)->sh;
    pthread_mutex_lock(&sh->mu);
    sh->timeout_s = s > 0 ? s : RM_COMM_DEFAULT_TIMEOUT_S;
    pthread_mutex_unlock(&sh->mu);
}

static rm_status n_reset(rm_comm *c, rm_err *err) {
    if (!n_aborted(c, NULL, NULL, 0)) return RM_OK;
    return rm_fail(err, RM_ERR_DEVICE, "an aborted NCCL communicator cannot serve again: free the model");
}

static void shared_release(shared *sh) {
    pthread_mutex_lock(&sh->mu);
    int last = --sh->refs == 0;
    pthread_mutex_unlock(&sh->mu);
    if (!last) return;
    pthread_mutex_destroy(&sh->mu);
    rm_mfree(sh);
}

/* Finalize flushes what was issued; bounded like every wait. Called by the owning thread. */
static void n_destroy(rm_comm *c) {
    if (!c) return;
    endpoint *e = ep_of(c);
    cudaSetDevice(e->device);
    if (e->comm && !n_aborted(c, NULL, NULL, 0)) {
        ncclResult_t r = nccl.CommFinalize(e->comm);
        double deadline = now_s() + e->sh->timeout_s;
        for (int round = 0; r == ncclInProgress && now_s() < deadline; round++) {
            pause_briefly(round);
            nccl.CommGetAsyncError(e->comm, &r);
        }
        if (r == ncclSuccess) nccl.CommDestroy(e->comm);
        else nccl.CommAbort(e->comm);
    } else if (e->comm) {
        nccl.CommAbort(e->comm);
    }
    if (e->staging) cudaFree(e->staging);
    if (e->own) cudaStreamDestroy(e->own);
    shared_release(e->sh);
    rm_mfree(e);
}

static const rm_comm_ops nccl_ops = {
    .name = "nccl",
    .all_reduce_sum = n_all_reduce,
    .broadcast = n_broadcast,
    .barrier = n_barrier,
    .wait = n_wait,
    .abort = n_abort,
    .aborted = n_aborted,
    .set_timeout = n_set_timeout,
    .reset = n_reset,
    .destroy = n_destroy,
};

/* ------------------------------------------------ making the group */

static rm_status unique_id(const rm_nccl_opts *o, ncclUniqueId *id, rm_err *err) {
    if (o->unique_id) {
        memcpy(id->internal, o->unique_id, NCCL_UNIQUE_ID_BYTES);
        return RM_OK;
    }
    /* With every rank here the id never leaves the process; across processes
     * NCCL's bootstrap must know where rank 0 listens (NCCL_COMM_ID, which
     * the user exports: we never set it, since torch's communicators in the
     * same process would read it too). */
    if (o->n_local < o->tp && !getenv("NCCL_COMM_ID"))
        return rm_fail(err, RM_ERR_INVALID_ARG, "tensor-parallel rank %d of %d: one process per rank needs NCCL's unique "
                       "id: pass rm_params.nccl_id (made by rank 0 with ncclGetUniqueId and handed to every rank, e.g. over "
                       "torch.distributed), or export NCCL_COMM_ID=<rank 0's host>:<a free port other than MASTER_PORT>",
                       o->first_rank, o->tp);
    ncclResult_t r = nccl.GetUniqueId(id);
    if (r != ncclSuccess)
        return rm_fail(err, RM_ERR_DEVICE, "ncclGetUniqueId: %s", nccl.GetErrorString(r));
    return RM_OK;
}

rm_status rm_comm_nccl_create(rm_comm **out, const rm_nccl_opts *o, rm_err *err) {
    rm_status st = rm_nccl_open(err);
    if (st) return st;
    if (o->tp < 1 || o->n_local < 1 || o->first_rank < 0 || o->first_rank + o->n_local > o->tp || !o->devices)
        return rm_fail(err, RM_ERR_INVALID_ARG, "NCCL group: ranks [%d, %d) of %d", o->first_rank,
                       o->first_rank + o->n_local, o->tp);
    for (int i = 0; i < o->n_local; i++)
        for (int k = 0; k < i; k++)
            if (o->devices[i] == o->devices[k])
                return rm_fail(err, RM_ERR_INVALID_ARG, "NCCL group: ranks %d and %d both on GPU %d (ranks sharing a GPU "
                               "use the in-process group)", o->first_rank + k, o->first_rank + i, o->devices[i]);
    for (int i = 0; i < o->n_local; i++) out[i] = NULL;
    ncclUniqueId id;
    if ((st = unique_id(o, &id, err))) return st;
    shared *sh = rm_calloc(1, sizeof *sh);
    if (!sh) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&sh->mu, NULL);
    sh->timeout_s = o->timeout_s > 0 ? o->timeout_s : RM_COMM_DEFAULT_TIMEOUT_S;
    endpoint **eps = (endpoint **)out;
    for (int i = 0; i < o->n_local; i++) {
        if (!(eps[i] = rm_calloc(1, sizeof **eps))) {
            st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        eps[i]->base = (rm_comm){&nccl_ops, o->first_rank + i, o->tp};
        eps[i]->sh = sh;
        eps[i]->device = o->devices[i];
        sh->refs++;
        cudaError_t ce = cudaSetDevice(o->devices[i]);
        if (ce == cudaSuccess) ce = cudaStreamCreateWithFlags(&eps[i]->own, cudaStreamNonBlocking);
        if (ce == cudaSuccess) ce = cudaMalloc(&eps[i]->staging, STAGING_BYTES);
        if (ce != cudaSuccess) {
            st = rm_fail(err, RM_ERR_DEVICE, "tensor-parallel rank %d: GPU %d: %s", o->first_rank + i, o->devices[i],
                         cudaGetErrorString(ce));
            goto fail;
        }
    }
    /* Every local rank joins in one group call; non-blocking, then polled. */
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    nccl.GroupStart();
    ncclResult_t r = ncclSuccess;
    for (int i = 0; i < o->n_local && (r == ncclSuccess || r == ncclInProgress); i++) {
        cudaSetDevice(o->devices[i]);
        r = nccl.CommInitRankConfig(&eps[i]->comm, o->tp, id, o->first_rank + i, &cfg);
    }
    ncclResult_t g = nccl.GroupEnd();
    if (r == ncclSuccess || r == ncclInProgress) r = g;
    double deadline = now_s() + sh->timeout_s;
    for (int i = 0; i < o->n_local && (r == ncclSuccess || r == ncclInProgress); i++) {
        ncclResult_t s = ncclInProgress;
        for (int round = 0; s == ncclInProgress; round++) {
            if (!eps[i]->comm || nccl.CommGetAsyncError(eps[i]->comm, &s) != ncclSuccess) s = ncclInternalError;
            if (s == ncclInProgress && now_s() > deadline) {
                st = rm_fail(err, RM_ERR_DEVICE, "tensor-parallel rank %d of %d: NCCL initialisation timed out after %g s "
                             "(are all %d ranks started, with the same NCCL id or NCCL_COMM_ID?)", o->first_rank + i, o->tp,
                             sh->timeout_s, o->tp);
                goto fail;
            }
            pause_briefly(round);
        }
        if (s != ncclSuccess) r = s;
        if (s != ncclSuccess)
            st = rm_fail(err, RM_ERR_DEVICE, "tensor-parallel rank %d of %d on GPU %d: NCCL initialisation: %s",
                         o->first_rank + i, o->tp, o->devices[i], nccl_words(eps[i]->comm, s));
    }
    if (r != ncclSuccess && r != ncclInProgress && !st)
        st = rm_fail(err, RM_ERR_DEVICE, "tensor-parallel ranks %d..%d of %d: NCCL initialisation: %s", o->first_rank,
                     o->first_rank + o->n_local - 1, o->tp, nccl_words(NULL, r));
    if (st) goto fail;
    return RM_OK;
fail:
    /* Communicators that exist are aborted, never left half-made. */
    raise_abort(sh, st ? st : RM_ERR_DEVICE, err ? err->msg : "NCCL initialisation failed");
    if (sh->refs == 0) {   /* no endpoint holds it */
        pthread_mutex_destroy(&sh->mu);
        rm_mfree(sh);
    }
    for (int i = 0; i < o->n_local; i++)   /* the last one frees sh */
        if (eps[i]) n_destroy(&eps[i]->base), eps[i] = NULL;
    return st;
}

rm_status rm_comm_nccl_plan_create(rm_comm **out, const rm_tp_plan *plan, rm_err *err) {
    const rm_tp_layout *L = &plan->layout;
    int devices[4096];
    if (L->n_local > 4096) return rm_fail(err, RM_ERR_INVALID_ARG, "%d local ranks", L->n_local);
    for (int i = 0; i < L->n_local; i++)
        devices[i] = rm_tp_gpu_of(plan, i);
    rm_nccl_opts o = {
        .tp = L->tp, .first_rank = L->first_rank, .n_local = L->n_local, .devices = devices,
        .unique_id = plan->comm_ctx, .timeout_s = plan->timeout_s,
    };
    return rm_comm_nccl_create(out, &o, err);
}
