/*
 * http.h - the HTTP side of nimreward-server on libmicrohttpd: routes,
 * authentication, body limits, and the hand-off of each chat completion to
 * the batcher. A connection waiting for its batch is suspended (it holds no
 * thread), so a few HTTP threads carry any number of waiting clients.
 */
#ifndef RM_SERVER_HTTP_H
#define RM_SERVER_HTTP_H

#include <stdatomic.h>

#include "batcher.h"
#include "config.h"
#include "metrics.h"
#include "request.h"

typedef struct srv_server {
    const srv_config *cfg;
    srv_metrics *metrics;
    long long started;            /* Unix seconds: /v1/models' "created" */
    /* Set by the loader before `ready` becomes 1; read-only after. */
    rm_model *model;
    srv_batcher *batcher;
    srv_model_info info;
    atomic_int ready;             /* 0 until the model is loaded: chat completions get 503 */
    atomic_int stopping;          /* SIGTERM: new requests get 503, connections close */
    atomic_long in_flight;        /* chat completions received and not yet answered */
    struct MHD_Daemon *daemon;
    int port;                     /* the port bound (--port 0 picks one) */
} srv_server;

/* Binds cfg->host:cfg->port and starts the HTTP threads. Returns 0, or -1 with err set. */
int srv_http_start(srv_server *s, char *err, size_t n);
/* Stops accepting connections (the listening socket closes); requests in flight go on. */
void srv_http_quiesce(srv_server *s);
/* Stops the HTTP threads and closes every connection. */
void srv_http_stop(srv_server *s);

#endif
