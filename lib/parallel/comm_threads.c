/*
 * comm_threads.c - the collectives of ranks that are threads of one process
 * (collective.h). Ranks post their buffers, then each rank sums its own
 * slice of the elements over every rank's buffer, in rank order, into a
 * shared scratch, and copies the whole sum back: the work is spread over
 * the ranks, and every element is (((b0 + b1) + b2) + ...) whoever computes
 * it, so all ranks get the same bits, run after run.
 *
 * Every wait is bounded by the group's timeout; a timeout or an abort wakes
 * every waiting rank with the same error, so a rank that fails or stops
 * never leaves the others hanging.
 */
#include "parallel/collective.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cpu_ops.h"

enum { OP_ALL_REDUCE = 1, OP_BROADCAST, OP_BARRIER };

static const char *op_name(int op) {
    return op == OP_ALL_REDUCE ? "all_reduce" : op == OP_BROADCAST ? "broadcast" : "barrier";
}

/* What one rank asked for: every rank of one call must ask the same. */
typedef struct post {
    int op;
    void *buf;
    size_t count;               /* elements (all_reduce) or bytes (broadcast) */
    rm_comm_dtype dt;
    int root;
    int on_device;
} post;

typedef struct group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, refs;
    double timeout_s;
    int has_dev;
    rm_comm_device dev;

    uint64_t generation;        /* bumped each time every rank has arrived */
    int arrived;
    unsigned char *present;     /* [n]: arrived at the current rendezvous */
    post *posts;                /* [n] */

    void *scratch;              /* the sum: host memory */
    size_t scratch_cap;
    void *dev_scratch;          /* the same on the device (dev.alloc) */
    size_t dev_scratch_cap;

    int aborted;
    rm_status abort_status;
    char abort_msg[768];
} group;

typedef struct endpoint {
    rm_comm base;
    group *g;
} endpoint;

static group *group_of(rm_comm *c) { return ((endpoint *)c)->g; }

/* ------------------------------------------------ abort and rendezvous */

static void abort_locked(group *g, rm_status status, const char *why) {
    if (g->aborted) return;
    g->aborted = 1;
    g->abort_status = status ? status : RM_ERR_INTERNAL;
    snprintf(g->abort_msg, sizeof g->abort_msg, "%s", why);
    pthread_cond_broadcast(&g->cv);
}

static rm_status aborted_error(const group *g, rm_err *err) {
    return rm_fail(err, g->abort_status, "%s", g->abort_msg);
}

static size_t dtype_bytes(rm_comm_dtype dt) { return dt == RM_COMM_BF16 ? 2 : 4; }

static int posts_agree(group *g, char *why, size_t n) {
    const post *a = &g->posts[0];
    for (int r = 1; r < g->n; r++) {
        const post *b = &g->posts[r];
        if (b->op != a->op || b->count != a->count || b->dt != a->dt || b->root != a->root ||
            b->on_device != a->on_device) {
            snprintf(why, n, "collectives out of step: rank 0 called %s (%zu %s, root %d) while rank %d called %s "
                     "(%zu %s, root %d); every rank must make the same calls in the same order",
                     op_name(a->op), a->count, a->op == OP_BROADCAST ? "bytes" : "elements", a->root, r,
                     op_name(b->op), b->count, b->op == OP_BROADCAST ? "bytes" : "elements", b->root);
            return 0;
        }
    }
    return 1;
}

/* Grows the scratch an all-reduce needs (the last rank to arrive does it,
 * when no rank is using the scratch). */
static rm_status scratch_ready(group *g, char *why, size_t n) {
    const post *p = &g->posts[0];
    if (p->op != OP_ALL_REDUCE) return RM_OK;
    size_t bytes;
    if (!rm_mul_ok(p->count, dtype_bytes(p->dt), &bytes)) {
        snprintf(why, n, "all_reduce of %zu elements overflows", p->count);
        return RM_ERR_INVALID_ARG;
    }
    if (p->on_device) {
        if (bytes <= g->dev_scratch_cap) return RM_OK;
        rm_err err = {0};
        void *fresh = NULL;
        rm_status st = g->dev.alloc(&fresh, bytes, &err);
        if (st != RM_OK) {
            snprintf(why, n, "all_reduce scratch of %zu bytes on the device: %s", bytes, err.msg);
            return st;
        }
        if (g->dev_scratch) g->dev.release(g->dev_scratch);
        g->dev_scratch = fresh;
        g->dev_scratch_cap = bytes;
        return RM_OK;
    }
    if (bytes <= g->scratch_cap) return RM_OK;
    void *fresh = rm_realloc(g->scratch, bytes);
    if (!fresh) {
        snprintf(why, n, "out of memory for an all_reduce scratch of %zu bytes", bytes);
        return RM_ERR_NOMEM;
    }
    g->scratch = fresh;
    g->scratch_cap = bytes;
    return RM_OK;
}

static struct timespec deadline_after(double seconds) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double whole = (double)(time_t)seconds;
    t.tv_sec += (time_t)whole;
    t.tv_nsec += (long)((seconds - whole) * 1e9);
    if (t.tv_nsec >= 1000000000L) t.tv_sec++, t.tv_nsec -= 1000000000L;
    return t;
}

/* Waits (mutex held) until every rank has arrived. The last one checks the
 * posted calls agree (when check is set) and prepares the scratch. */
static rm_status rendezvous(group *g, int rank, const char *what, int check, rm_err *err) {
    if (g->aborted) return aborted_error(g, err);
    uint64_t gen = g->generation;
    g->present[rank] = 1;
    if (++g->arrived == g->n) {
        char why[512];
        rm_status bad = RM_OK;
        if (check) bad = posts_agree(g, why, sizeof why) ? scratch_ready(g, why, sizeof why) : RM_ERR_INVALID_ARG;
        if (bad) {
            abort_locked(g, bad, why);
            return aborted_error(g, err);
        }
        g->arrived = 0;
        memset(g->present, 0, (size_t)g->n);
        g->generation++;
        pthread_cond_broadcast(&g->cv);
        return RM_OK;
    }
    double timeout = g->timeout_s;
    struct timespec deadline = deadline_after(timeout);
    while (g->generation == gen && !g->aborted) {
        int rc = pthread_cond_timedwait(&g->cv, &g->mu, &deadline);
        if (rc == ETIMEDOUT && g->generation == gen && !g->aborted) {
            char missing[256] = "";
            size_t off = 0;
            for (int r = 0; r < g->n && off + 16 < sizeof missing; r++)
                if (!g->present[r]) off += (size_t)snprintf(missing + off, sizeof missing - off, "%s%d", off ? ", " : "", r);
            char why[512];
            snprintf(why, sizeof why, "tensor-parallel %s timed out after %g s on rank %d of %d, waiting for rank %s "
                     "(a rank stopped or is far behind; the limit is rm_params.tp_timeout_s)", what, timeout, rank, g->n,
                     missing);
            abort_locked(g, RM_ERR_DEVICE, why);
        }
    }
    if (g->generation != gen) return RM_OK;
    return aborted_error(g, err);
}

/* ------------------------------------------------ the arithmetic */

/* ------------------------------------------------ the operations */

static rm_status device_step(group *g, rm_status st, rm_err *err) {
    if (st == RM_OK) return RM_OK;
    pthread_mutex_lock(&g->mu);
    abort_locked(g, st, err ? err->msg : "device operation failed");
    pthread_mutex_unlock(&g->mu);
    return st;
}

static rm_status need_device(group *g, void *stream, rm_err *err) {
    if (stream && !g->has_dev)
        return rm_fail(err, RM_ERR_INVALID_ARG, "in-process collective: a device buffer, but the group was made "
                       "without device operations");
    return RM_OK;
}

static rm_status t_all_reduce(rm_comm *c, void *buf, size_t count, rm_comm_dtype dt, void *stream, rm_err *err) {
    group *g = group_of(c);
    int rank = c->rank;
    rm_status st;
    if ((st = need_device(g, stream, err))) return st;
    if (g->n == 1) {   /* a sum over one rank: nothing to do (the same bits as no group at all) */
        pthread_mutex_lock(&g->mu);
        st = g->aborted ? aborted_error(g, err) : RM_OK;
        pthread_mutex_unlock(&g->mu);
        return st;
    }
    /* A rank's data must be complete before the others read it. */
    if (stream && (st = device_step(g, g->dev.sync(stream, err), err))) return st;
    pthread_mutex_lock(&g->mu);
    g->posts[rank] = (post){OP_ALL_REDUCE, buf, count, dt, 0, stream != NULL};
    st = rendezvous(g, rank, "all_reduce", 1, err);
    void *srcs[64], **all = g->n <= 64 ? srcs : NULL;
    if (!st && !all && !(all = rm_malloc((size_t)g->n * sizeof *all)))
        abort_locked(g, RM_ERR_NOMEM, "out of memory in all_reduce"), st = aborted_error(g, err);
    pthread_mutex_unlock(&g->mu);
    if (st) return st;
    for (int r = 0; r < g->n; r++) all[r] = g->posts[r].buf;
    size_t lo = count * (size_t)rank / (size_t)g->n, hi = count * (size_t)(rank + 1) / (size_t)g->n;
    if (stream) {
        st = g->dev.sum(g->dev_scratch, all, g->n, lo, hi - lo, dt, stream, err);
        if (!st) st = g->dev.sync(stream, err);
        st = device_step(g, st, err);
    } else {
        rm_cpu_sum_ranks(g->scratch, all, g->n, lo, hi, dt == RM_COMM_BF16);
    }
    if (all != srcs) rm_mfree(all);
    pthread_mutex_lock(&g->mu);
    if (!st) st = rendezvous(g, rank, "all_reduce", 0, err);
    pthread_mutex_unlock(&g->mu);
    if (st) return st;
    /* The next call's first rendezvous comes after every rank's copy (a device
     * copy is synchronised when that rank enters its next call). */
    size_t bytes = count * dtype_bytes(dt);
    if (stream) return device_step(g, g->dev.copy(buf, g->dev_scratch, bytes, stream, err), err);
    memcpy(buf, g->scratch, bytes);
    return RM_OK;
}

static rm_status t_broadcast(rm_comm *c, void *buf, size_t bytes, int root, void *stream, rm_err *err) {
    group *g = group_of(c);
    int rank = c->rank;
    rm_status st;
    if ((st = need_device(g, stream, err))) return st;
    if (root < 0 || root >= g->n)
        return rm_fail(err, RM_ERR_INVALID_ARG, "broadcast: root %d outside the %d ranks", root, g->n);
    if (stream && (st = device_step(g, g->dev.sync(stream, err), err))) return st;
    pthread_mutex_lock(&g->mu);
    g->posts[rank] = (post){OP_BROADCAST, buf, bytes, RM_COMM_F32, root, stream != NULL};
    st = rendezvous(g, rank, "broadcast", 1, err);
    pthread_mutex_unlock(&g->mu);
    if (st) return st;
    if (rank != root && bytes) {
        const void *src = g->posts[root].buf;
        if (stream) {
            st = g->dev.copy(buf, src, bytes, stream, err);
            if (!st) st = g->dev.sync(stream, err);
            st = device_step(g, st, err);
        } else {
            memcpy(buf, src, bytes);
        }
    }
    /* The root's buffer stays untouched until every rank has copied it. */
    pthread_mutex_lock(&g->mu);
    if (!st) st = rendezvous(g, rank, "broadcast", 0, err);
    pthread_mutex_unlock(&g->mu);
    return st;
}

static rm_status t_barrier(rm_comm *c, rm_err *err) {
    group *g = group_of(c);
    pthread_mutex_lock(&g->mu);
    g->posts[c->rank] = (post){OP_BARRIER, NULL, 0, RM_COMM_F32, 0, 0};
    rm_status st = rendezvous(g, c->rank, "barrier", 1, err);
    pthread_mutex_unlock(&g->mu);
    return st;
}

static rm_status t_wait(rm_comm *c, void *stream, rm_err *err) {
    group *g = group_of(c);
    if (stream && g->has_dev) return device_step(g, g->dev.sync(stream, err), err);
    pthread_mutex_lock(&g->mu);
    rm_status st = g->aborted ? aborted_error(g, err) : RM_OK;
    pthread_mutex_unlock(&g->mu);
    return st;
}

static void t_abort(rm_comm *c, rm_status status, const char *why) {
    group *g = group_of(c);
    pthread_mutex_lock(&g->mu);
    abort_locked(g, status, why ? why : "aborted");
    pthread_mutex_unlock(&g->mu);
}

static int t_aborted(rm_comm *c, rm_status *status, char *msg, size_t n) {
    group *g = group_of(c);
    pthread_mutex_lock(&g->mu);
    int a = g->aborted;
    if (a && status) *status = g->abort_status;
    if (a && msg && n) snprintf(msg, n, "%s", g->abort_msg);
    pthread_mutex_unlock(&g->mu);
    return a;
}

static void t_set_timeout(rm_comm *c, double seconds) {
    group *g = group_of(c);
    pthread_mutex_lock(&g->mu);
    g->timeout_s = seconds > 0 ? seconds : RM_COMM_DEFAULT_TIMEOUT_S;
    pthread_mutex_unlock(&g->mu);
}

static void group_free(group *g) {
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    if (g->dev_scratch) g->dev.release(g->dev_scratch);
    rm_mfree(g->scratch);
    rm_mfree(g->present);
    rm_mfree(g->posts);
    rm_mfree(g);
}

static void t_destroy(rm_comm *c) {
    if (!c) return;
    group *g = group_of(c);
    pthread_mutex_lock(&g->mu);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) group_free(g);
    rm_mfree(c);
}

static rm_status t_reset(rm_comm *c, rm_err *err);

static const rm_comm_ops threads_ops = {
    .name = "threads",
    .all_reduce_sum = t_all_reduce,
    .broadcast = t_broadcast,
    .barrier = t_barrier,
    .wait = t_wait,
    .abort = t_abort,
    .aborted = t_aborted,
    .set_timeout = t_set_timeout,
    .reset = t_reset,
    .destroy = t_destroy,
};

rm_status rm_comm_threads_create(rm_comm **out, int n, double timeout_s, const rm_comm_device *dev, rm_err *err) {
    if (!out || n < 1 || n > 4096)
        return rm_fail(err, RM_ERR_INVALID_ARG, "in-process collective: %d ranks (1 to 4096)", n);
    for (int r = 0; r < n; r++) out[r] = NULL;
    if (dev && (!dev->sum || !dev->copy || !dev->sync || !dev->alloc || !dev->release))
        return rm_fail(err, RM_ERR_INVALID_ARG, "in-process collective: incomplete device operations");
    group *g = rm_calloc(1, sizeof *g);
    if (!g) return rm_fail(err, RM_ERR_NOMEM, "in-process collective: out of memory");
    g->present = rm_calloc((size_t)n, 1);
    g->posts = rm_calloc((size_t)n, sizeof *g->posts);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* deadlines immune to wall-clock jumps */
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->n = n;
    g->timeout_s = timeout_s > 0 ? timeout_s : RM_COMM_DEFAULT_TIMEOUT_S;
    if (dev) g->dev = *dev, g->has_dev = 1;
    if (!g->present || !g->posts) {
        group_free(g);
        return rm_fail(err, RM_ERR_NOMEM, "in-process collective: out of memory");
    }
    for (int r = 0; r < n; r++) {
        endpoint *e = rm_calloc(1, sizeof *e);
        if (!e) {
            for (int k = 0; k < r; k++) rm_mfree(out[k]), out[k] = NULL;
            group_free(g);
            return rm_fail(err, RM_ERR_NOMEM, "in-process collective: out of memory");
        }
        e->base = (rm_comm){&threads_ops, r, n};
        e->g = g;
        out[r] = &e->base;
    }
    g->refs = n;
    return RM_OK;
}

static rm_status t_reset(rm_comm *c, rm_err *err) {
    group *g = group_of(c);
    pthread_mutex_lock(&g->mu);
    g->aborted = 0;
    g->abort_status = RM_OK;
    g->abort_msg[0] = 0;
    g->arrived = 0;
    memset(g->present, 0, (size_t)g->n);
    g->generation++;
    pthread_mutex_unlock(&g->mu);
    return RM_OK;
}
