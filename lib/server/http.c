/*
 * http.c - libmicrohttpd routes and the life of one request (see http.h).
 *
 * A chat completion: headers (authentication, readiness, Content-Length
 * against --max-body-bytes) -> body collected -> parsed and checked
 * (request.c) -> tokenized once here, on an HTTP thread, for the token count
 * (the limit per conversation, and the request's share of a batch) ->
 * connection suspended, job submitted -> the batcher resumes the connection
 * when the job is done or past its deadline -> the answer is written here.
 */
#include "http.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_common.h"
#include "response.h"

typedef enum route {
    ROUTE_CHAT, ROUTE_MODELS, ROUTE_READY, ROUTE_LIVE, ROUTE_METRICS, ROUTE_NOT_FOUND
} route;

static const struct {
    const char *path;
    route r;
    const char *method;
    srv_endpoint ep;
} ROUTES[] = {
    {"/v1/chat/completions", ROUTE_CHAT, "POST", SRV_EP_CHAT},
    {"/v1/models", ROUTE_MODELS, "GET", SRV_EP_MODELS},
    {"/v1/health/ready", ROUTE_READY, "GET", SRV_EP_HEALTH},
    {"/v1/health/live", ROUTE_LIVE, "GET", SRV_EP_HEALTH},
    {"/v1/metrics", ROUTE_METRICS, "GET", SRV_EP_METRICS},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

/* One request (MHD's per-request context). */
typedef struct req_ctx {
    srv_server *srv;
    struct MHD_Connection *conn;
    int route_index;              /* into ROUTES, or -1 */
    int wrong_method;
    double arrived;
    char *body;
    size_t len, cap;
    int too_large;
    int arriving;                 /* counted in the batcher's arrivals */
    int in_flight;                /* counted in srv->in_flight */
    srv_job *job;                 /* submitted (or being submitted) */
    int rejected;                 /* SRV_SUBMIT_FULL / _STOPPING after suspending */
    int answered;
} req_ctx;

/* ---------------------------------------------------------------- answers */

static enum MHD_Result answer(req_ctx *r, int status, char *body, size_t len, const char *content_type,
                              const char *retry_after) {
    if (!body) {                  /* out of memory building it */
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                  "\"param\":null,\"code\":null}}";
        status = 500;
        len = sizeof oom - 1;
        if (!(body = strdup(oom))) return MHD_NO;
        content_type = "application/json";
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (retry_after) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    if (r->wrong_method) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, ROUTES[r->route_index].method);
    if (atomic_load(&r->srv->stopping)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->answered = 1;
    srv_endpoint ep = r->route_index >= 0 ? ROUTES[r->route_index].ep : SRV_EP_OTHER;
    srv_metrics_request(r->srv->metrics, ep, status, cli_now_seconds() - r->arrived);
    return ok;
}

static enum MHD_Result answer_json(req_ctx *r, int status, char *body, size_t len) {
    return answer(r, status, body, len, "application/json", NULL);
}

static enum MHD_Result answer_error(req_ctx *r, const srv_error *e, const char *retry_after) {
    size_t len = 0;
    char *body = srv_error_json(e, &len);
    return answer(r, e->http_status, body, len, "application/json", retry_after);
}

static enum MHD_Result fail(req_ctx *r, int status, const char *type, const char *code, const char *retry_after,
                            const char *fmt, const char *arg) {
    srv_error e;
    srv_error_set(&e, status, type, code, NULL, fmt, arg);
    return answer_error(r, &e, retry_after);
}

/* ---------------------------------------------------------------- checks */

/* Constant time in the key's length: how long a wrong key takes tells nothing. */
static int same_secret(const char *given, const char *key) {
    size_t a = strlen(given), b = strlen(key);
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)(given[i < a ? i : 0] ^ key[i]);
    return diff == 0;
}

static int authorized(req_ctx *r) {
    const char *key = r->srv->cfg->api_key;
    if (!key) return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return h && !strncmp(h, "Bearer ", 7) && same_secret(h + 7, key);
}

/* The status a library failure earns: the request's fault (400), a full machine (503), ours (500). */
static int http_status_of(rm_status st) {
    switch (st) {
    case RM_ERR_INVALID_ARG: case RM_ERR_UTF8: case RM_ERR_TOO_LONG: case RM_ERR_TEMPLATE: case RM_ERR_LIMIT:
        return 400;
    case RM_ERR_NOMEM: return 503;
    default: return 500;
    }
}

/* A library failure as an answer; n_principles says whether a too-long input may be a principle's sequence. */
static enum MHD_Result library_error(req_ctx *r, rm_status st, const char *msg, size_t n_principles) {
    srv_error e;
    int status = http_status_of(st);
    const char *type = status == 400 ? "invalid_request_error" : "server_error";
    if (st == RM_ERR_TOO_LONG) {
        const srv_config *c = r->srv->cfg;
        long long limit = rm_model_n_ctx(r->srv->model);
        srv_error_set(&e, 400, type, "context_length_exceeded", "messages", "too many tokens: the conversation is "
                      "longer than the limit of %lld tokens per conversation (%s)%s", limit,
                      c->params.max_tokens && c->params.max_tokens <= limit ? "--max-tokens" : "the model's context",
                      n_principles ? ", each principle's question included" : "");
    } else {
        srv_error_set(&e, status, type, NULL, NULL, "%s (%s)", msg, rm_status_string(st));
    }
    return answer_error(r, &e, status == 503 ? "1" : NULL);
}

/* ---------------------------------------------------------------- chat completions */

static void job_ready(void *ctx) {
    req_ctx *r = ctx;
    MHD_resume_connection(r->conn);
}

static void end_arrival(req_ctx *r) {
    if (r->arriving && r->srv->batcher) srv_batcher_arriving(r->srv->batcher, -1);
    r->arriving = 0;
}

/* The body is in: parse, count tokens, submit. */
static enum MHD_Result chat_submit(req_ctx *r) {
    srv_server *s = r->srv;
    if (r->too_large) {
        end_arrival(r);
        char limit[32];
        snprintf(limit, sizeof limit, "%zu", s->cfg->max_body_bytes);
        return fail(r, 413, "invalid_request_error", "request_too_large", NULL,
                    "the request body is larger than the limit of %s bytes (--max-body-bytes)", limit);
    }
    srv_job *job = srv_job_new();
    if (!job) return end_arrival(r), fail(r, 503, "server_error", NULL, "1", "%s", "out of memory");
    srv_error err;
    int bad = srv_request_parse(r->body ? r->body : "", r->len, &s->info, &job->req, &err);
    free(r->body);
    r->body = NULL;
    if (bad) {
        srv_job_release(NULL, job);
        end_arrival(r);
        return answer_error(r, &err, NULL);
    }
    /* The token count: the limit per conversation, and this request's share of a batch. */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rm_status st = rm_tokenize_messages(s->model, job->req.item.messages, job->req.item.n_messages, 0, &ids, &n_ids);
    rm_ids_free(ids);
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", rm_errmsg(s->model));
        srv_job_release(NULL, job);
        end_arrival(r);
        return library_error(r, st, msg, 0);
    }
    size_t sequences = job->req.item.n_principles ? job->req.item.n_principles : 1;
    job->tokens = n_ids * sequences;
    job->arrived = r->arrived;
    job->ready = job_ready;
    job->ready_ctx = r;
    r->job = job;
    /* Suspend before submitting: the batcher may resume the connection at once. */
    MHD_suspend_connection(r->conn);
    r->arriving = 0;              /* submitting ends the arrival */
    int rc = srv_batcher_submit(s->batcher, job);
    if (rc != SRV_SUBMIT_OK) {
        r->rejected = rc;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

static int all_finite(const rm_scores *sc, const char **bad) {
    for (size_t i = 0; i < sc->n_scores; i++)
        if (!isfinite(sc->values[i])) return *bad = sc->names[i], 0;
    return 1;
}

/* Resumed: the job is done, timed out, or was refused. */
static enum MHD_Result chat_answer(req_ctx *r) {
    srv_server *s = r->srv;
    if (r->rejected == SRV_SUBMIT_FULL) {
        char n[32];
        snprintf(n, sizeof n, "%zu", s->cfg->batch.max_queue);
        return fail(r, 429, "rate_limit_exceeded", "rate_limit_exceeded", "1",
                    "the queue is full (%s requests waiting, --max-queue): retry shortly", n);
    }
    if (r->rejected == SRV_SUBMIT_STOPPING)
        return fail(r, 503, "server_error", NULL, "1", "%s", "the server is shutting down");
    srv_job *j = r->job;
    if (srv_job_state_get(s->batcher, j) == SRV_JOB_TIMED_OUT) {
        char t[32];
        snprintf(t, sizeof t, "%g", s->cfg->batch.timeout_s);
        return fail(r, 504, "timeout", "timeout", NULL,
                    "the request took longer than the limit of %s seconds (--request-timeout)", t);
    }
    const rm_scores *sc = j->scores;
    if (!sc) return library_error(r, j->batch_status, j->batch_error, j->req.item.n_principles);
    if (sc->status != RM_OK) return library_error(r, sc->status, sc->error, j->req.item.n_principles);
    const char *bad = NULL;
    if (!all_finite(sc, &bad))
        return fail(r, 500, "server_error", NULL, NULL, "the model gave a score that is not a finite number (%s)",
                    bad);
    unsigned char rnd[12] = {0};
    char id[64];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {   /* ids need only be unique: time and address */
        double t = cli_now_seconds();
        memcpy(rnd, &t, sizeof t);
        memcpy(rnd + 8, &r, 4);
    }
    int k = snprintf(id, sizeof id, "chatcmpl-");
    for (size_t i = 0; i < sizeof rnd; i++) k += snprintf(id + k, sizeof id - (size_t)k, "%02x", rnd[i]);
    size_t tokens = sc->seq_offsets[sc->n_sequences];
    srv_completion c = {
        .id = id, .created = (long long)time(NULL), .model = s->cfg->served_name, .n_scores = sc->n_scores,
        /* principles: the names the request (or the flags) gave; else the model's */
        .names = j->req.item.n_principles ? j->req.names : sc->names, .values = sc->values, .prompt_tokens = tokens,
    };
    size_t len = 0;
    char *body = srv_completion_json(&c, &len);
    srv_metrics_tokens(s->metrics, tokens);
    return answer_json(r, 200, body, len);
}

/* ---------------------------------------------------------------- the other routes */

static enum MHD_Result answer_get(req_ctx *r, route rt) {
    srv_server *s = r->srv;
    size_t len = 0;
    switch (rt) {
    case ROUTE_LIVE: {
        static const char live[] = "{\"object\":\"health.response\",\"message\":\"Service is live.\"}";
        return answer_json(r, 200, strdup(live), sizeof live - 1);
    }
    case ROUTE_READY: {
        int ready = atomic_load(&s->ready) && !atomic_load(&s->stopping);
        const char *msg = ready ? "{\"object\":\"health.response\",\"message\":\"Service is ready.\"}"
                                : "{\"object\":\"health.response\",\"message\":\"Service is not ready.\"}";
        return answer(r, ready ? 200 : 503, strdup(msg), strlen(msg), "application/json", ready ? NULL : "1");
    }
    case ROUTE_MODELS: {
        long long n_ctx = atomic_load(&s->ready) ? rm_model_n_ctx(s->model) : 0;
        char *body = srv_models_json(s->cfg->served_name, s->started, (size_t)n_ctx, &len);
        return answer_json(r, 200, body, len);
    }
    case ROUTE_METRICS: {
        srv_text t = {0};
        size_t scoring = 0, depth = atomic_load(&s->ready) ? srv_batcher_depth(s->batcher, &scoring) : 0;
        srv_metrics_write(s->metrics, &t, depth, scoring, (size_t)atomic_load(&s->in_flight));
        char *body = srv_text_take(&t, &len);
        return answer(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8", NULL);
    }
    default:
        return MHD_NO;
    }
}

/* ---------------------------------------------------------------- libmicrohttpd callbacks */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    srv_server *s = cls;
    req_ctx *r = *con_cls;
    if (!r) {                                          /* the headers are in */
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        *con_cls = r;
        r->srv = s;
        r->conn = conn;
        r->arrived = cli_now_seconds();
        r->route_index = -1;
        for (size_t i = 0; i < N_ROUTES; i++)
            if (!strcmp(url, ROUTES[i].path)) r->route_index = (int)i;
        if (r->route_index < 0 || strcmp(method, ROUTES[r->route_index].method)) {
            r->wrong_method = r->route_index >= 0;
            return MHD_YES;                            /* answered once the body (if any) is in */
        }
        if (ROUTES[r->route_index].r != ROUTE_CHAT) return MHD_YES;
        r->in_flight = 1;
        atomic_fetch_add(&s->in_flight, 1);
        if (!authorized(r))
            return fail(r, 401, "invalid_request_error", "invalid_api_key", NULL, "%s",
                        "a valid API key is required: send the header \"Authorization: Bearer <key>\"");
        if (atomic_load(&s->stopping))
            return fail(r, 503, "server_error", NULL, "1", "%s", "the server is shutting down");
        if (!atomic_load(&s->ready))
            return fail(r, 503, "server_error", NULL, "1", "%s", "the model is still loading (see /v1/health/ready)");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg->max_body_bytes) {
            r->too_large = 1;                          /* refused now: the body is never read */
            return chat_submit(r);
        }
        r->arriving = 1;
        srv_batcher_arriving(s->batcher, +1);
        return MHD_YES;
    }
    if (*upload_size) {                                /* a piece of the body */
        if (r->route_index >= 0 && ROUTES[r->route_index].r == ROUTE_CHAT && !r->wrong_method && !r->too_large &&
            !r->answered) {
            if (r->len + *upload_size > r->srv->cfg->max_body_bytes) {
                r->too_large = 1;                      /* kept reading, to answer 413 at the end */
                free(r->body);
                r->body = NULL;
                r->len = r->cap = 0;
            } else {
                if (r->len + *upload_size + 1 > r->cap) {
                    size_t cap = r->cap ? r->cap : 4096;
                    while (cap < r->len + *upload_size + 1) cap *= 2;
                    char *b = realloc(r->body, cap);
                    if (!b) return MHD_NO;
                    r->body = b;
                    r->cap = cap;
                }
                memcpy(r->body + r->len, upload, *upload_size);
                r->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->answered) return MHD_YES;
    if (r->route_index < 0) {
        srv_error e;
        srv_error_set(&e, 404, "invalid_request_error", "not_found", NULL, "no route for %.16s %.200s", method, url);
        return answer_error(r, &e, NULL);
    }
    if (r->wrong_method)
        return fail(r, 405, "invalid_request_error", "method_not_allowed", NULL, "%s needs another method (see Allow)",
                    ROUTES[r->route_index].path);
    route rt = ROUTES[r->route_index].r;
    if (rt != ROUTE_CHAT) {
        if (rt != ROUTE_LIVE && rt != ROUTE_READY && !authorized(r))
            return fail(r, 401, "invalid_request_error", "invalid_api_key", NULL, "%s",
                        "a valid API key is required: send the header \"Authorization: Bearer <key>\"");
        return answer_get(r, rt);
    }
    if (!r->job) return chat_submit(r);
    return chat_answer(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    req_ctx *r = *con_cls;
    if (!r) return;
    end_arrival(r);
    if (r->job) srv_job_release(r->srv->batcher, r->job);
    /* Last: at shut-down main waits for no request in flight, then frees the batcher. */
    if (r->in_flight) atomic_fetch_sub(&r->srv->in_flight, 1);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap) {
    fputs("nimreward-server: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* ---------------------------------------------------------------- the daemon */

int srv_http_start(srv_server *s, char *err, size_t n) {
    const srv_config *c = s->cfg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int rc = getaddrinfo(c->host, port, &hints, &ai);
    if (rc) {
        snprintf(err, n, "--host %s: %s", c->host, gai_strerror(rc));
        return -1;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,   /* first, so it catches all */
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->http_threads,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                                 MHD_OPTION_END);
    int bind_errno = errno;
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, n, "cannot listen on %s:%d: %s", c->host, c->port,
                 bind_errno ? strerror(bind_errno) : "libmicrohttpd refused to start");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : c->port;
    return 0;
}

void srv_http_quiesce(srv_server *s) {
    if (!s->daemon) return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void srv_http_stop(srv_server *s) {
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
