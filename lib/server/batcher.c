/*
 * batcher.c - the bounded queue, the workers that call rm_score_batch, and
 * the watcher that answers requests past their deadline (see batcher.h).
 *
 * One mutex guards the queue, the list of active jobs, the job states and
 * reference counts. Callbacks (resuming a connection) run outside it.
 */
#include "batcher.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_common.h"   /* cli_now_seconds */

#define MAX_WORKERS 64

struct srv_batcher {
    rm_model *model;
    srv_batch_opts opts;
    srv_metrics *metrics;
    pthread_mutex_t lock;
    pthread_cond_t work;          /* workers: a job came, the window may close, or stop */
    pthread_cond_t watch;         /* the watcher: an earlier deadline, or stop */
    srv_job *head, *tail;         /* the queue */
    size_t depth, depth_tokens;
    size_t scoring;               /* requests inside an rm_score_batch call */
    srv_job *active_head, *active_tail;
    long arriving;
    int idle;                     /* workers waiting for a first job */
    int in_window;                /* workers waiting for their window to close */
    int stopping, watcher_stop;
    double watcher_wake;          /* when the watcher will look next */
    pthread_t workers[MAX_WORKERS], watcher;
    int n_workers, watcher_started;
};

/* An absolute CLOCK_MONOTONIC time for pthread_cond_timedwait. */
static struct timespec at(double seconds) {
    struct timespec ts;
    double whole = floor(seconds);
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}

srv_job *srv_job_new(void) {
    srv_job *j = calloc(1, sizeof *j);
    if (j) j->refs = 1;
    return j;
}

static void job_free(srv_job *j) {
    srv_request_clear(&j->req);
    rm_scores_free(j->scores);
    free(j);
}

/* Drops a reference with the lock held; returns the job when it must be freed (after unlocking). */
static srv_job *unref_locked(srv_job *j) {
    return --j->refs == 0 ? j : NULL;
}

void srv_job_release(srv_batcher *b, srv_job *j) {
    if (!j) return;
    if (!b) {                     /* never submitted: the caller's is the only reference */
        if (--j->refs == 0) job_free(j);
        return;
    }
    pthread_mutex_lock(&b->lock);
    srv_job *dead = unref_locked(j);
    pthread_mutex_unlock(&b->lock);
    if (dead) job_free(dead);
}

srv_job_state srv_job_state_get(srv_batcher *b, srv_job *j) {
    pthread_mutex_lock(&b->lock);
    srv_job_state s = j->state;
    pthread_mutex_unlock(&b->lock);
    return s;
}

static void active_remove(srv_batcher *b, srv_job *j) {
    if (j->prev_active) j->prev_active->next_active = j->next_active;
    else b->active_head = j->next_active;
    if (j->next_active) j->next_active->prev_active = j->prev_active;
    else b->active_tail = j->prev_active;
    j->next_active = j->prev_active = NULL;
}

/* The window closes before its time when the batch is full or no other request is on its way (lock held). */
static int window_may_close(const srv_batcher *b) {
    return b->stopping || b->depth >= b->opts.max_batch || b->depth_tokens >= b->opts.batch_tokens ||
           b->arriving == 0;
}

int srv_batcher_submit(srv_batcher *b, srv_job *j) {
    pthread_mutex_lock(&b->lock);
    int rc = b->stopping ? SRV_SUBMIT_STOPPING : b->depth >= b->opts.max_queue ? SRV_SUBMIT_FULL : SRV_SUBMIT_OK;
    if (b->arriving > 0) b->arriving--;
    if (rc == SRV_SUBMIT_OK) {
        j->refs++;
        j->state = SRV_JOB_QUEUED;
        j->deadline = j->arrived + b->opts.timeout_s;
        j->next_queued = NULL;
        if (b->tail) b->tail->next_queued = j;
        else b->head = j;
        b->tail = j;
        b->depth++;
        b->depth_tokens += j->tokens;
        j->prev_active = b->active_tail;
        if (b->active_tail) b->active_tail->next_active = j;
        else b->active_head = j;
        b->active_tail = j;
        if (j->deadline < b->watcher_wake) pthread_cond_signal(&b->watch);
    }
    /* Wake a worker only when it has something to do: a first job, or a window that may close now. */
    if ((rc == SRV_SUBMIT_OK && b->idle) || (b->in_window && window_may_close(b))) pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void srv_batcher_arriving(srv_batcher *b, int delta) {
    pthread_mutex_lock(&b->lock);
    b->arriving += delta;
    if (b->arriving < 0) b->arriving = 0;
    if (b->arriving == 0 && b->in_window) pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->lock);
}

size_t srv_batcher_depth(srv_batcher *b, size_t *scoring) {
    pthread_mutex_lock(&b->lock);
    size_t d = b->depth;
    if (scoring) *scoring = b->scoring;
    pthread_mutex_unlock(&b->lock);
    return d;
}

/* Waits (lock held) until the oldest job's window closes; returns 0 when stopping with an empty queue. */
static int wait_for_batch(srv_batcher *b) {
    while (!b->head && !b->stopping) {
        b->idle++;
        pthread_cond_wait(&b->work, &b->lock);
        b->idle--;
    }
    if (!b->head) return 0;
    while (b->head && !window_may_close(b)) {
        double end = b->head->arrived + b->opts.wait_s;
        if (cli_now_seconds() >= end) break;
        struct timespec ts = at(end);
        b->in_window++;
        pthread_cond_timedwait(&b->work, &b->lock, &ts);
        b->in_window--;
    }
    return b->head != NULL;     /* another worker may have taken them meanwhile */
}

/* Takes jobs in arrival order within the batch's bounds (lock held). */
static size_t take_batch(srv_batcher *b, srv_job **jobs, size_t *tokens) {
    size_t n = 0, t = 0;
    while (b->head && n < b->opts.max_batch && (n == 0 || t + b->head->tokens <= b->opts.batch_tokens)) {
        srv_job *j = b->head;
        b->head = j->next_queued;
        if (!b->head) b->tail = NULL;
        j->next_queued = NULL;
        j->state = SRV_JOB_RUNNING;
        b->depth--;
        b->depth_tokens -= j->tokens;
        t += j->tokens;
        jobs[n++] = j;
    }
    *tokens = t;
    return n;
}

static void *worker_main(void *arg) {
    srv_batcher *b = arg;
    size_t cap = b->opts.max_batch;
    srv_job **jobs = calloc(cap, sizeof *jobs);
    rm_item *items = calloc(cap, sizeof *items);
    rm_scores **out = calloc(cap, sizeof *out);
    srv_job **ready = calloc(cap, sizeof *ready), **dead = calloc(cap, sizeof *dead);
    if (!jobs || !items || !out || !ready || !dead) {
        fprintf(stderr, "nimreward-server: a batch worker is out of memory and stops\n");
        free(jobs), free(items), free(out), free(ready), free(dead);
        return NULL;
    }
    pthread_mutex_lock(&b->lock);
    while (wait_for_batch(b)) {
        size_t tokens, n = take_batch(b, jobs, &tokens);
        b->scoring += n;
        if (b->head) pthread_cond_signal(&b->work);   /* what is left, for another worker */
        pthread_mutex_unlock(&b->lock);

        for (size_t i = 0; i < n; i++) items[i] = jobs[i]->req.item;
        rm_status st = rm_score_batch(b->model, items, n, out);
        char whole_error[512] = "";
        if (st != RM_OK && !out[0])   /* the whole call failed: this thread's message says why */
            snprintf(whole_error, sizeof whole_error, "%s", rm_errmsg(b->model));
        srv_metrics_batch(b->metrics, n, tokens);

        pthread_mutex_lock(&b->lock);
        b->scoring -= n;
        size_t n_ready = 0, n_dead = 0;
        for (size_t i = 0; i < n; i++) {
            srv_job *j = jobs[i];
            active_remove(b, j);
            if (j->state == SRV_JOB_TIMED_OUT) {   /* answered 504 already */
                rm_scores_free(out[i]);
            } else {
                j->scores = out[i];
                j->batch_status = out[i] ? RM_OK : st;
                snprintf(j->batch_error, sizeof j->batch_error, "%s", whole_error);
                j->state = SRV_JOB_DONE;
                ready[n_ready++] = j;
                j->refs++;        /* held across the callback, outside the lock */
            }
            out[i] = NULL;
            if (unref_locked(j)) dead[n_dead++] = j;
        }
        pthread_mutex_unlock(&b->lock);
        for (size_t i = 0; i < n_dead; i++) job_free(dead[i]);
        for (size_t i = 0; i < n_ready; i++) {
            ready[i]->ready(ready[i]->ready_ctx);
            srv_job_release(b, ready[i]);
        }
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    free(jobs);
    free(items);
    free(out);
    free(ready);
    free(dead);
    return NULL;
}

/* Answers every job past its deadline with TIMED_OUT; sleeps until the next deadline. */
static void *watcher_main(void *arg) {
    srv_batcher *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->watcher_stop) {
        double now = cli_now_seconds(), next = INFINITY;
        srv_job *expired = NULL;
        for (srv_job *j = b->active_head; j; j = j->next_active) {
            if (j->deadline <= now) { expired = j; break; }
            if (j->deadline < next) next = j->deadline;
        }
        if (expired) {
            srv_job *j = expired;
            active_remove(b, j);
            if (j->state == SRV_JOB_QUEUED) {     /* out of the queue: the queue's reference is ours now */
                srv_job **p = &b->head, *prev = NULL;
                while (*p != j) prev = *p, p = &(*p)->next_queued;
                *p = j->next_queued;
                if (b->tail == j) b->tail = prev;
                b->depth--;
                b->depth_tokens -= j->tokens;
            } else {                              /* running: its worker drops the result and its reference */
                j->refs++;
            }
            j->state = SRV_JOB_TIMED_OUT;
            pthread_mutex_unlock(&b->lock);
            j->ready(j->ready_ctx);
            srv_job_release(b, j);
            pthread_mutex_lock(&b->lock);
            continue;
        }
        b->watcher_wake = next;
        if (isinf(next)) {
            pthread_cond_wait(&b->watch, &b->lock);
        } else {
            struct timespec ts = at(next);
            pthread_cond_timedwait(&b->watch, &b->lock, &ts);
        }
        b->watcher_wake = -INFINITY;   /* awake: submissions need not signal */
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

srv_batcher *srv_batcher_start(rm_model *model, const srv_batch_opts *opts, srv_metrics *metrics) {
    srv_batcher *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->model = model;
    b->opts = *opts;
    if (b->opts.max_batch < 1) b->opts.max_batch = 1;
    if (b->opts.workers < 1) b->opts.workers = 1;
    if (b->opts.workers > MAX_WORKERS) b->opts.workers = MAX_WORKERS;
    b->metrics = metrics;
    b->watcher_wake = INFINITY;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->work, &ca);
    pthread_cond_init(&b->watch, &ca);
    pthread_condattr_destroy(&ca);
    b->watcher_started = pthread_create(&b->watcher, NULL, watcher_main, b) == 0;
    for (int i = 0; i < b->opts.workers && b->watcher_started; i++) {
        if (pthread_create(&b->workers[i], NULL, worker_main, b)) break;
        b->n_workers++;
    }
    if (!b->watcher_started || b->n_workers == 0) {
        srv_batcher_stop(b);
        return NULL;
    }
    return b;
}

void srv_batcher_stop(srv_batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < b->n_workers; i++) pthread_join(b->workers[i], NULL);
    pthread_mutex_lock(&b->lock);
    b->watcher_stop = 1;
    pthread_cond_signal(&b->watch);
    pthread_mutex_unlock(&b->lock);
    if (b->watcher_started) pthread_join(b->watcher, NULL);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->watch);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
