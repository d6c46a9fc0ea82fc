/*
 * metrics.h - what GET /v1/metrics reports, in Prometheus' text format:
 * requests by endpoint and status, a latency histogram of chat completions,
 * tokens scored, queue depth, requests in flight, batch sizes (requests and
 * tokens per rm_score_batch call), resident memory. Thread-safe.
 */
#ifndef RM_SERVER_METRICS_H
#define RM_SERVER_METRICS_H

#include <stddef.h>

#include "response.h"

typedef enum srv_endpoint {
    SRV_EP_CHAT, SRV_EP_MODELS, SRV_EP_HEALTH, SRV_EP_METRICS, SRV_EP_OTHER, SRV_EP_COUNT
} srv_endpoint;

typedef struct srv_metrics srv_metrics;

srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *m);

/* One answered request: its endpoint, HTTP status and seconds from arrival to answer. */
void srv_metrics_request(srv_metrics *m, srv_endpoint ep, int http_status, double seconds);
/* One rm_score_batch call: requests and tokens in it. */
void srv_metrics_batch(srv_metrics *m, size_t requests, size_t tokens);
/* Tokens of the answered requests (usage.prompt_tokens). */
void srv_metrics_tokens(srv_metrics *m, size_t tokens);

/* Appends the exposition; queue_depth and in_flight are read by the caller. */
void srv_metrics_write(srv_metrics *m, srv_text *out, size_t queue_depth, size_t scoring, size_t in_flight);

#endif
