/*
 * batcher.h - the queue between the HTTP threads and the model: concurrent
 * chat completions become one rm_score_batch call.
 *
 * Built for a GPU: one model, big batches, the scoring thread doing nothing
 * but scoring. HTTP threads parse, tokenize (for the token count) and
 * submit; a worker (or a few, --batch-workers) waits a short window after
 * the oldest request for more to join, then takes requests in arrival order
 * up to --max-batch requests and --batch-tokens tokens and scores them in
 * one call. The window closes early when the batch is full or when no other
 * request is being received, so a lone client waits for nothing. The queue
 * is bounded (--max-queue): beyond it a request is refused (429). A request
 * past its deadline (--request-timeout) is answered 504 at once, queued or
 * running; a running one finishes in its batch and its result is dropped.
 */
#ifndef RM_SERVER_BATCHER_H
#define RM_SERVER_BATCHER_H

#include <stddef.h>

#include "metrics.h"
#include "nimreward.h"
#include "request.h"

typedef struct srv_batch_opts {
    size_t max_queue;         /* requests waiting; beyond: refused */
    size_t max_batch;         /* requests per rm_score_batch call */
    size_t batch_tokens;      /* tokens per call (a request larger than this goes alone) */
    double wait_s;            /* the window after the oldest waiting request */
    double timeout_s;         /* from a request's arrival to its answer */
    int workers;              /* threads calling rm_score_batch */
} srv_batch_opts;

typedef enum srv_job_state {
    SRV_JOB_NEW, SRV_JOB_QUEUED, SRV_JOB_RUNNING, SRV_JOB_DONE, SRV_JOB_TIMED_OUT
} srv_job_state;

/* One request on its way through the queue. Reference-counted: the HTTP
 * connection holds one reference, the batcher another while it has the job,
 * so a request answered 504 while its batch still runs stays valid. */
typedef struct srv_job {
    srv_request req;          /* owned: freed with the job */
    size_t tokens;            /* the conversation's tokens, times its sequences: its share of a batch */
    double arrived;           /* monotonic seconds (cli_now_seconds) */
    /* Called once, outside the batcher's lock, when the job is DONE or
     * TIMED_OUT (the HTTP side resumes its connection). */
    void (*ready)(void *ctx);
    void *ready_ctx;
    /* DONE: the item's result (its own status inside), or NULL when the
     * whole call failed, with batch_status and batch_error saying why. */
    rm_scores *scores;
    rm_status batch_status;
    char batch_error[512];
    /* The batcher's. */
    srv_job_state state;
    int refs;
    double deadline;
    struct srv_job *next_queued;
    struct srv_job *next_active, *prev_active;   /* queued or running, in submission order */
} srv_job;

typedef struct srv_batcher srv_batcher;

enum { SRV_SUBMIT_OK = 0, SRV_SUBMIT_FULL = 1, SRV_SUBMIT_STOPPING = 2 };

/* Starts the workers and the deadline watcher. NULL when threads or memory fail. */
srv_batcher *srv_batcher_start(rm_model *model, const srv_batch_opts *opts, srv_metrics *metrics);
/* Finishes every queued job, then stops the threads and frees the batcher.
 * Jobs still referenced by connections stay valid until released. */
void srv_batcher_stop(srv_batcher *b);

/* A new job holding the caller's reference. NULL when out of memory. */
srv_job *srv_job_new(void);
/* Drops the caller's reference (frees the job when it was the last). */
void srv_job_release(srv_batcher *b, srv_job *j);
/* The job's state, read under the lock (the HTTP thread, once resumed). */
srv_job_state srv_job_state_get(srv_batcher *b, srv_job *j);

/* Queues the job (taking a reference): SRV_SUBMIT_OK, or _FULL / _STOPPING
 * (the job is untouched). Ends one arrival (srv_batcher_arriving). */
int srv_batcher_submit(srv_batcher *b, srv_job *j);
/* A chat completion began (+1) or ended without being submitted (-1): while
 * none is on its way, the batching window closes early. */
void srv_batcher_arriving(srv_batcher *b, int delta);
/* Requests waiting (not yet in a batch); *scoring (may be NULL) gets those
 * inside an rm_score_batch call now. */
size_t srv_batcher_depth(srv_batcher *b, size_t *scoring);

#endif
