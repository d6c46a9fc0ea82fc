/*
 * engine_tp.c - the "tp" engine: a model split over N tensor-parallel
 * ranks behind rm_engine_ops. This process runs layout.n_local of them
 * (all N when one process drives every rank, one when each process runs
 * one), each on a thread of its own with its own shard and its own inner
 * engine (the CPU engine now; the CUDA engine the same way), joined by a
 * collective group whose all-reduces complete o_proj's and down_proj's sums.
 *
 * Calls are serialised: one forward pass at a time runs on all the ranks,
 * since every rank must make the same collective calls in the same order.
 * Every rank ends with the same hidden states; the first local rank's are
 * returned, and its engine reads the heads.
 *
 * Failures: a rank that fails aborts the group with its status and message,
 * so every other rank's pending collective returns at once; a rank that
 * stops makes the others time out (the group's timeout) and abort. Either
 * way every rank returns an error within the timeout. After an error the
 * in-process group is reset and the model serves again; after a timeout, or
 * when the group cannot be reset (NCCL), the engine reports that error on
 * every later call, like a device fault.
 */
#include "parallel/tp.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct tp_rank tp_rank;

/* The endpoint a rank's inner engine calls: the group's, with the test
 * hook's failure injection in front of all_reduce. */
typedef struct hook_comm {
    rm_comm base;
    rm_comm *real;
    tp_rank *owner;
} hook_comm;

struct tp_rank {
    rm_engine *tp;
    int index;                  /* among this process's ranks */
    int rank;                   /* in the group */
    pthread_t thread;
    int started;
    uint64_t seen_job;
    rm_shard *shard;
    rm_engine *inner;
    rm_comm *comm;
    hook_comm hook;
    long collectives;           /* all-reduces of the current pass */
    rm_status st;               /* the last job's result */
    rm_err err;
    float *hidden;              /* ranks after the first: their copy of the output */
    size_t hidden_cap;
};

/* Every call into a rank's engine runs on that rank's thread: a GPU engine's
 * device and stream are the thread's. */
enum { JOB_CREATE = 1, JOB_FORWARD, JOB_HEADS, JOB_DESTROY };

struct rm_engine {
    rm_config cfg;
    rm_tp_plan plan;
    int *gpus;
    rm_engine_opts inner_opts;
    int n;
    tp_rank *ranks;
    pthread_mutex_t call_lock;  /* one call at a time */

    pthread_mutex_t mu;         /* the job handed to the rank threads */
    pthread_cond_t work, done;
    uint64_t job_id;
    int job_kind, busy, stop;
    const rm_batch *batch;
    float *out_hidden;
    struct {                    /* JOB_HEADS: the first rank reads the head rows */
        const rm_tensor *t;
        const int64_t *rows;
        size_t n_rows;
        const float *hidden;
        float *out;
    } heads;

    int broken;                 /* a sticky failure: every later call reports it */
    rm_status broken_st;
    char broken_msg[1024];

    struct {                    /* rm_engine_tp_inject */
        int armed, rank, hang;
        long at;
        rm_status st;
    } inject;
};

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ------------------------------------------------ the hook endpoint */

static hook_comm *hook_of(rm_comm *c) { return (hook_comm *)c; }

/* A stopped rank, as the test hook plays it: it sits until the others give
 * up on it (bounded, so a broken test cannot hang the suite forever). */
static rm_status play_stuck(hook_comm *h, rm_err *err) {
    rm_status st = RM_ERR_DEVICE;
    char msg[768];
    for (int i = 0; i < 600 * 100; i++) {
        if (h->real->ops->aborted(h->real, &st, msg, sizeof msg)) return rm_fail(err, st, "%s", msg);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return rm_fail(err, RM_ERR_DEVICE, "test hook: rank %d stayed stopped for 600 s", h->base.rank);
}

static rm_status h_all_reduce(rm_comm *c, void *buf, size_t count, rm_comm_dtype dt, void *stream, rm_err *err) {
    hook_comm *h = hook_of(c);
    tp_rank *r = h->owner;
    rm_engine *e = r->tp;
    long k = r->collectives++;
    if (e->inject.armed && e->inject.rank == r->index && e->inject.at == k) {
        if (e->inject.hang) return play_stuck(h, err);
        return rm_fail(err, e->inject.st, "test hook: injected failure at all-reduce %ld", k);
    }
    return h->real->ops->all_reduce_sum(h->real, buf, count, dt, stream, err);
}

static rm_status h_broadcast(rm_comm *c, void *buf, size_t bytes, int root, void *stream, rm_err *err) {
    rm_comm *real = hook_of(c)->real;
    return real->ops->broadcast(real, buf, bytes, root, stream, err);
}
static rm_status h_barrier(rm_comm *c, rm_err *err) { return hook_of(c)->real->ops->barrier(hook_of(c)->real, err); }
static rm_status h_wait(rm_comm *c, void *stream, rm_err *err) {
    return hook_of(c)->real->ops->wait(hook_of(c)->real, stream, err);
}
static void h_abort(rm_comm *c, rm_status st, const char *why) { hook_of(c)->real->ops->abort(hook_of(c)->real, st, why); }
static int h_aborted(rm_comm *c, rm_status *st, char *msg, size_t n) {
    return hook_of(c)->real->ops->aborted(hook_of(c)->real, st, msg, n);
}
static void h_set_timeout(rm_comm *c, double s) { hook_of(c)->real->ops->set_timeout(hook_of(c)->real, s); }
static rm_status h_reset(rm_comm *c, rm_err *err) { return hook_of(c)->real->ops->reset(hook_of(c)->real, err); }
static void h_destroy(rm_comm *c) { (void)c; }   /* the rank owns the group endpoint */

static const rm_comm_ops hook_ops = {
    .name = "tp-rank",
    .all_reduce_sum = h_all_reduce,
    .broadcast = h_broadcast,
    .barrier = h_barrier,
    .wait = h_wait,
    .abort = h_abort,
    .aborted = h_aborted,
    .set_timeout = h_set_timeout,
    .reset = h_reset,
    .destroy = h_destroy,
};

/* ------------------------------------------------ the rank threads */

static void rank_fail(tp_rank *r) {
    char why[sizeof r->err.msg];
    rm_status st;
    /* A rank failing because another did already carries that one's message. */
    if (r->comm->ops->aborted(r->comm, &st, NULL, 0)) return;
    snprintf(why, sizeof why, "tensor-parallel rank %d of %d: %s", r->rank, r->tp->plan.layout.tp, r->err.msg);
    r->comm->ops->abort(r->comm, r->st, why);
}

static void rank_create(tp_rank *r) {
    rm_engine *e = r->tp;
    r->st = rm_shard_load(&r->shard, &e->plan.source, e->plan.layout.tp, r->rank, e->inner_opts.n_threads, &r->err);
    /* An engine's create may wait on the group (ranks sharing a GPU agree on
     * their memory): a rank that fails must end that wait for the others. */
    if (r->st) {
        rank_fail(r);
        return;
    }
    /* The all-reduce sums every rank's o_proj / down_proj output: their
     * biases belong in the sum once. */
    if (r->rank > 0)
        for (int64_t l = 0; l < r->shard->mw.n_layers; l++) r->shard->mw.layers[l].bo = r->shard->mw.layers[l].b_down = NULL;
    rm_engine_opts o = e->inner_opts;
    o.gpu = rm_tp_gpu_of(&e->plan, r->index);
    o.comm = &r->hook.base;
    o.tp = NULL;
    o.device_shares = 0;
    for (int k = 0; k < e->n; k++) o.device_shares += rm_tp_gpu_of(&e->plan, k) == o.gpu;
    r->st = e->plan.inner->create(&r->inner, &r->shard->cfg, &r->shard->mw, &o, &r->err);
    if (r->st) rank_fail(r);
}

static void rank_forward(tp_rank *r) {
    rm_engine *e = r->tp;
    r->collectives = 0;
    float *out = r->index == 0 ? e->out_hidden : r->hidden;
    if (e->inject.armed && e->inject.rank == r->index && e->inject.at < 0)
        r->st = rm_fail(&r->err, e->inject.st, "test hook: injected failure before the forward pass");
    else if (e->plan.layout.world > 1)   /* each process was handed its inputs: they must agree */
        r->st = rm_tp_inputs_check(&r->hook.base, e->batch, &r->err);
    else
        r->st = RM_OK;
    if (!r->st) r->st = e->plan.inner->forward(r->inner, e->batch, out, &r->err);
    if (r->st) rank_fail(r);
}

static void rank_heads(tp_rank *r) {
    rm_engine *e = r->tp;
    if (r->index == 0)
        r->st = e->plan.inner->head_rows(r->inner, e->heads.t, e->heads.rows, e->heads.n_rows, e->heads.hidden,
                                         e->heads.out, &r->err);
}

static void rank_destroy(tp_rank *r) {
    if (r->inner) r->tp->plan.inner->destroy(r->inner);
    r->inner = NULL;
    if (r->comm) r->comm->ops->destroy(r->comm);
    r->comm = NULL;
}

static void *rank_main(void *arg) {
    tp_rank *r = arg;
    rm_engine *e = r->tp;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (e->job_id == r->seen_job && !e->stop) pthread_cond_wait(&e->work, &e->mu);
        if (e->stop) break;
        r->seen_job = e->job_id;
        int kind = e->job_kind;
        pthread_mutex_unlock(&e->mu);
        r->st = RM_OK;
        r->err.msg[0] = 0;
        if (kind == JOB_CREATE) rank_create(r);
        else if (kind == JOB_FORWARD) rank_forward(r);
        else if (kind == JOB_HEADS) rank_heads(r);
        else rank_destroy(r);
        pthread_mutex_lock(&e->mu);
        if (--e->busy == 0) pthread_cond_broadcast(&e->done);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Hands a job to every rank and waits for all of them: each returns within
 * the collective timeout, failed or not. */
static void run_job(rm_engine *e, int kind) {
    pthread_mutex_lock(&e->mu);
    e->job_kind = kind;
    e->busy = e->n;
    e->job_id++;
    pthread_cond_broadcast(&e->work);
    while (e->busy) pthread_cond_wait(&e->done, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

/* The error of a job some rank failed: the one that started it (the
 * group's abort message), else the first failing rank's. */
static rm_status job_error(rm_engine *e, rm_err *err) {
    rm_status st;
    char msg[sizeof err->msg];
    if (e->ranks[0].comm->ops->aborted(e->ranks[0].comm, &st, msg, sizeof msg)) return rm_fail(err, st, "%s", msg);
    for (int i = 0; i < e->n; i++)
        if (e->ranks[i].st)
            return rm_fail(err, e->ranks[i].st, "tensor-parallel rank %d of %d: %s", e->ranks[i].rank,
                           e->plan.layout.tp, e->ranks[i].err.msg);
    return RM_OK;
}

/* ------------------------------------------------ create / destroy */

static void tp_destroy(rm_engine *e) {
    if (!e) return;
    if (e->ranks) {
        int all_started = 1;
        for (int i = 0; i < e->n; i++) all_started &= e->ranks[i].started;
        if (all_started) run_job(e, JOB_DESTROY);   /* each rank's engine and endpoint, on its own thread */
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_broadcast(&e->work);
        pthread_mutex_unlock(&e->mu);
        for (int i = 0; i < e->n; i++)
            if (e->ranks[i].started) pthread_join(e->ranks[i].thread, NULL);
        for (int i = 0; i < e->n; i++) {
            tp_rank *r = &e->ranks[i];
            if (r->inner) e->plan.inner->destroy(r->inner);
            rm_shard_free(r->shard);
            if (r->comm) r->comm->ops->destroy(r->comm);
            rm_mfree(r->hidden);
        }
    }
    rm_mfree(e->ranks);
    rm_mfree(e->gpus);
    pthread_mutex_destroy(&e->call_lock);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->done);
    rm_mfree(e);
}

static rm_status make_comms(rm_engine *e, rm_comm **comms, rm_err *err) {
    const rm_tp_plan *p = &e->plan;
    if (p->comm_create) return p->comm_create(comms, p, err);
    if (p->layout.world != 1)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "tensor parallelism with one process per rank (rank %d of a world "
                       "of %d, from %s) needs NCCL, which comes with the CUDA engine; %s ranks run as threads of one "
                       "process (rm_params.tp alone, world size 1)", p->layout.first_rank, p->layout.world,
                       p->layout.source, p->inner->name);
    return rm_comm_threads_create(comms, e->n, p->timeout_s, NULL, err);
}

static rm_status tp_create(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                           const rm_engine_opts *opts, rm_err *err) {
    (void)w;   /* the ranks take theirs from plan->source */
    if (!out) return rm_fail(err, RM_ERR_INVALID_ARG, "tp engine: NULL output pointer");
    *out = NULL;
    if (!cfg || !opts || !opts->tp || !opts->tp->inner)
        return rm_fail(err, RM_ERR_INVALID_ARG, "tp engine: no config or no plan");
    const rm_tp_plan *plan = opts->tp;
    const rm_tp_layout *L = &plan->layout;
    if (L->tp < 1 || L->n_local < 1 || L->n_local > L->tp || L->first_rank < 0 || L->first_rank + L->n_local > L->tp)
        return rm_fail(err, RM_ERR_INVALID_ARG, "tp engine: ranks [%d, %d) of %d", L->first_rank,
                       L->first_rank + L->n_local, L->tp);
    if (plan->gpus && plan->n_gpus < (size_t)L->n_local)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.gpus lists %zu device(s) for %d rank(s) in this process",
                       plan->n_gpus, L->n_local);
    rm_status st = rm_shard_check(cfg, L->tp, err);
    if (st) return st;

    rm_engine *e = rm_calloc(1, sizeof *e);
    if (!e) return rm_fail(err, RM_ERR_NOMEM, "tp engine: out of memory");
    pthread_mutex_init(&e->call_lock, NULL);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->done, NULL);
    e->cfg = *cfg;
    e->cfg.labels = NULL;
    e->plan = *plan;
    e->n = L->n_local;
    e->inner_opts = *opts;
    int total = opts->n_threads ? opts->n_threads : online_cores();
    e->inner_opts.n_threads = total / e->n > 0 ? total / e->n : 1;   /* the cores are shared out */
    e->ranks = rm_calloc((size_t)e->n, sizeof *e->ranks);
    if (plan->gpus) {
        if ((e->gpus = rm_malloc((size_t)e->n * sizeof *e->gpus))) memcpy(e->gpus, plan->gpus, (size_t)e->n * sizeof *e->gpus);
        e->plan.gpus = e->gpus;
    }
    rm_comm **comms = rm_calloc((size_t)e->n, sizeof *comms);
    if (!e->ranks || !comms || (plan->gpus && !e->gpus)) {
        rm_mfree(comms);
        tp_destroy(e);
        return rm_fail(err, RM_ERR_NOMEM, "tp engine: out of memory");
    }
    if ((st = make_comms(e, comms, err))) {
        rm_mfree(comms);
        tp_destroy(e);
        return st;
    }
    for (int i = 0; i < e->n; i++) {
        tp_rank *r = &e->ranks[i];
        r->tp = e;
        r->index = i;
        r->rank = L->first_rank + i;
        r->comm = comms[i];
        r->hook = (hook_comm){{&hook_ops, comms[i]->rank, comms[i]->size}, comms[i], r};
    }
    rm_mfree(comms);
    for (int i = 0; i < e->n; i++) {
        if (pthread_create(&e->ranks[i].thread, NULL, rank_main, &e->ranks[i]) != 0) {
            tp_destroy(e);
            return rm_fail(err, RM_ERR_NOMEM, "tp engine: cannot start the thread of rank %d", L->first_rank + i);
        }
        e->ranks[i].started = 1;
    }
    run_job(e, JOB_CREATE);   /* each rank reads its own shard, in parallel */
    if ((st = job_error(e, err))) {   /* the rank that failed first, not the ones its failure stopped */
        tp_destroy(e);
        return st;
    }
    *out = e;
    return RM_OK;
}

/* ------------------------------------------------ forward and heads */

static rm_status broken_error(const rm_engine *e, rm_err *err) {
    return rm_fail(err, e->broken_st, "%s (the tensor-parallel group failed earlier; free the model)", e->broken_msg);
}

static rm_status tp_forward(rm_engine *e, const rm_batch *b, float *out_hidden, rm_err *err) {
    if (!e || !b || !out_hidden) return rm_fail(err, RM_ERR_INVALID_ARG, "tp engine: NULL argument to forward");
    pthread_mutex_lock(&e->call_lock);
    rm_status st = RM_OK;
    if (e->broken) {
        st = broken_error(e, err);
        goto done;
    }
    size_t need;
    if (!rm_mul_ok(b->n_seqs, (size_t)e->cfg.hidden, &need)) {
        st = rm_fail(err, RM_ERR_TOO_LONG, "tp engine: %zu sequences", b->n_seqs);
        goto done;
    }
    for (int i = 1; i < e->n; i++) {
        tp_rank *r = &e->ranks[i];
        if (r->hidden_cap >= need) continue;
        float *h = rm_realloc(r->hidden, (need ? need : 1) * sizeof *h);
        if (!h) {
            st = rm_fail(err, RM_ERR_NOMEM, "tp engine: out of memory for %zu hidden states", b->n_seqs);
            goto done;
        }
        r->hidden = h;
        r->hidden_cap = need;
    }
    e->batch = b;
    e->out_hidden = out_hidden;
    run_job(e, JOB_FORWARD);
    e->inject.armed = 0;
    e->batch = NULL;
    e->out_hidden = NULL;
    if ((st = job_error(e, err)) == RM_OK) goto done;
    /* Every rank has returned. A timeout means a rank stalled: not to be
     * trusted again. Otherwise the group is reset and serves the next call. */
    rm_err reset_err = {0};
    if (st == RM_ERR_DEVICE || e->ranks[0].comm->ops->reset(e->ranks[0].comm, &reset_err) != RM_OK) {
        e->broken = 1;
        e->broken_st = st == RM_ERR_DEVICE ? st : RM_ERR_DEVICE;
        snprintf(e->broken_msg, sizeof e->broken_msg, "%s", err ? err->msg : "tensor-parallel group failed");
    }
done:
    pthread_mutex_unlock(&e->call_lock);
    return st;
}

static rm_status tp_head_rows(rm_engine *e, const rm_tensor *t, const int64_t *rows, size_t n_rows,
                              const float *hidden, float *out, rm_err *err) {
    if (!e) return rm_fail(err, RM_ERR_INVALID_ARG, "tp engine: NULL engine");
    pthread_mutex_lock(&e->call_lock);
    rm_status st;
    if (e->broken) {
        st = broken_error(e, err);
    } else {
        e->heads.t = t, e->heads.rows = rows, e->heads.n_rows = n_rows, e->heads.hidden = hidden, e->heads.out = out;
        run_job(e, JOB_HEADS);
        st = e->ranks[0].st ? rm_fail(err, e->ranks[0].st, "%s", e->ranks[0].err.msg) : RM_OK;
    }
    pthread_mutex_unlock(&e->call_lock);
    return st;
}

/* ------------------------------------------------ counters */

/* The work of the pass is rank 0's (every rank computes the same rows);
 * the bytes read are every local rank's. */
static void tp_counters(rm_engine *e, rm_engine_counters *out, uint64_t *layer_tokens_out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!e) return;
    e->plan.inner->counters(e->ranks[0].inner, out, layer_tokens_out);
    for (int i = 1; i < e->n; i++) {
        rm_engine_counters c;
        e->plan.inner->counters(e->ranks[i].inner, &c, NULL);
        out->weight_bytes_read += c.weight_bytes_read;
    }
}

static void tp_counters_reset(rm_engine *e) {
    if (!e) return;
    for (int i = 0; i < e->n; i++) e->plan.inner->counters_reset(e->ranks[i].inner);
}

const rm_engine_ops rm_engine_tp = {
    .name = "tp",
    .create = tp_create,
    .forward = tp_forward,
    .head_rows = tp_head_rows,
    .counters = tp_counters,
    .counters_reset = tp_counters_reset,
    .destroy = tp_destroy,
};

/* ------------------------------------------------ for model.c and the tests */

void rm_engine_tp_head_weights(const rm_engine *e, rm_model_weights *out) {
    const rm_model_weights *w = &e->ranks[0].shard->mw;
    out->embed = w->embed;
    out->final_norm = w->final_norm;
    out->lm_head = w->lm_head;
    out->score = w->score;
}

void rm_engine_tp_inject(rm_engine *e, int rank, long at_collective, rm_status status, int hang) {
    pthread_mutex_lock(&e->call_lock);
    e->inject.rank = rank;
    e->inject.at = at_collective;
    e->inject.st = status;
    e->inject.hang = hang;
    e->inject.armed = 1;
    pthread_mutex_unlock(&e->call_lock);
}

rm_status rm_engine_tp_rank_result(const rm_engine *e, int rank, char *msg, size_t n) {
    if (rank < 0 || rank >= e->n) return RM_ERR_INVALID_ARG;
    if (msg && n) snprintf(msg, n, "%s", e->ranks[rank].err.msg);
    return e->ranks[rank].st;
}

int rm_engine_tp_n_local(const rm_engine *e) { return e ? e->n : 0; }
