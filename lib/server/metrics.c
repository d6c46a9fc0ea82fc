/*
 * metrics.c - counters and histograms behind one mutex: they change once per
 * request or batch, so contention is nothing next to the request itself.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int STATUSES[] = {200, 400, 401, 404, 405, 413, 429, 500, 503, 504};
#define N_STATUS (sizeof STATUSES / sizeof STATUSES[0])
static const char *const EP_NAMES[SRV_EP_COUNT] = {"chat_completions", "models", "health", "metrics", "other"};

/* Seconds, from a loopback round trip to the longest timeout one would set. */
static const double LATENCY_LE[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                    10, 30, 60};
#define N_LATENCY (sizeof LATENCY_LE / sizeof LATENCY_LE[0])
static const double BATCH_LE[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
#define N_BATCH (sizeof BATCH_LE / sizeof BATCH_LE[0])
static const double BATCH_TOKENS_LE[] = {128, 512, 2048, 8192, 32768, 131072, 524288};
#define N_BATCH_TOKENS (sizeof BATCH_TOKENS_LE / sizeof BATCH_TOKENS_LE[0])

typedef struct histogram {
    unsigned long long bucket[32];   /* per bound, not cumulative; the last one is +Inf */
    unsigned long long count;
    double sum;
} histogram;

struct srv_metrics {
    pthread_mutex_t lock;
    unsigned long long requests[SRV_EP_COUNT][N_STATUS + 1];   /* the last column: any other status */
    histogram latency, batch_requests, batch_tokens;
    unsigned long long tokens, batches;
};

srv_metrics *srv_metrics_new(void) {
    srv_metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->lock, NULL);
    return m;
}

void srv_metrics_free(srv_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void observe(histogram *h, const double *le, size_t n, double v) {
    size_t i = 0;
    while (i < n && v > le[i]) i++;
    h->bucket[i]++;
    h->count++;
    h->sum += v;
}

void srv_metrics_request(srv_metrics *m, srv_endpoint ep, int http_status, double seconds) {
    size_t s = 0;
    while (s < N_STATUS && STATUSES[s] != http_status) s++;
    pthread_mutex_lock(&m->lock);
    m->requests[ep][s]++;
    if (ep == SRV_EP_CHAT) observe(&m->latency, LATENCY_LE, N_LATENCY, seconds);
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_batch(srv_metrics *m, size_t requests, size_t tokens) {
    pthread_mutex_lock(&m->lock);
    m->batches++;
    observe(&m->batch_requests, BATCH_LE, N_BATCH, (double)requests);
    observe(&m->batch_tokens, BATCH_TOKENS_LE, N_BATCH_TOKENS, (double)tokens);
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_tokens(srv_metrics *m, size_t tokens) {
    pthread_mutex_lock(&m->lock);
    m->tokens += tokens;
    pthread_mutex_unlock(&m->lock);
}

static void write_histogram(srv_text *t, const char *name, const char *help, const histogram *h, const double *le,
                            size_t n) {
    srv_text_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += h->bucket[i];
        srv_text_printf(t, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], cum);
    }
    srv_text_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name, h->count, name, h->sum, name,
                    h->count);
}

/* Resident set size from /proc/self/statm (pages), 0 where there is none. */
static unsigned long long resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (!f) return 0;
    int ok = fscanf(f, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    return ok ? resident * (unsigned long long)sysconf(_SC_PAGESIZE) : 0;
}

void srv_metrics_write(srv_metrics *m, srv_text *t, size_t queue_depth, size_t scoring, size_t in_flight) {
    pthread_mutex_lock(&m->lock);
    srv_text_puts(t, "# HELP nimreward_requests_total HTTP requests answered, by endpoint and status code.\n"
                     "# TYPE nimreward_requests_total counter\n");
    for (int ep = 0; ep < SRV_EP_COUNT; ep++)
        for (size_t s = 0; s <= N_STATUS; s++) {
            if (!m->requests[ep][s] && !(ep == SRV_EP_CHAT && s < N_STATUS && STATUSES[s] == 200)) continue;
            char code[16];
            if (s < N_STATUS) snprintf(code, sizeof code, "%d", STATUSES[s]);
            else snprintf(code, sizeof code, "other");
            srv_text_printf(t, "nimreward_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n", EP_NAMES[ep], code,
                            m->requests[ep][s]);
        }
    write_histogram(t, "nimreward_request_duration_seconds",
                    "Seconds from a chat completion's arrival to its answer, any status.", &m->latency, LATENCY_LE,
                    N_LATENCY);
    srv_text_printf(t, "# HELP nimreward_tokens_scored_total Tokens the model saw for answered requests "
                       "(usage.prompt_tokens).\n# TYPE nimreward_tokens_scored_total counter\n"
                       "nimreward_tokens_scored_total %llu\n", m->tokens);
    srv_text_printf(t, "# HELP nimreward_batches_total rm_score_batch calls.\n# TYPE nimreward_batches_total counter\n"
                       "nimreward_batches_total %llu\n", m->batches);
    write_histogram(t, "nimreward_batch_size", "Requests per rm_score_batch call.", &m->batch_requests, BATCH_LE,
                    N_BATCH);
    write_histogram(t, "nimreward_batch_tokens", "Conversation tokens per rm_score_batch call.", &m->batch_tokens,
                    BATCH_TOKENS_LE, N_BATCH_TOKENS);
    pthread_mutex_unlock(&m->lock);
    srv_text_printf(t, "# HELP nimreward_queue_depth Requests waiting for a batch.\n# TYPE nimreward_queue_depth gauge\n"
                       "nimreward_queue_depth %zu\n", queue_depth);
    srv_text_printf(t, "# HELP nimreward_requests_scoring Requests inside an rm_score_batch call now.\n"
                       "# TYPE nimreward_requests_scoring gauge\nnimreward_requests_scoring %zu\n", scoring);
    srv_text_printf(t, "# HELP nimreward_requests_in_flight Chat completions received and not yet answered.\n"
                       "# TYPE nimreward_requests_in_flight gauge\nnimreward_requests_in_flight %zu\n", in_flight);
    srv_text_printf(t, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                       "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
                    resident_bytes());
}
