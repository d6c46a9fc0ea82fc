/*
 * nimreward-server - an OpenAI-compatible (NIM-compatible) reward model server.
 *
 *   nimreward-server --model DIR|hf://org/name [--served-model-name NAME] [--host ADDR] [--port N] ...
 *
 * The HTTP threads start first (/v1/health/live answers, /v1/health/ready
 * says 503) while a loader thread loads the model; then one start-up line
 * names the model, device, dtype, address and scores. SIGTERM (or SIGINT)
 * stops accepting connections, finishes the requests in flight and exits 0.
 * Flags, variables and limits: lib/server/config.c and docs/server.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_common.h"
#include "config.h"
#include "http.h"

/* Events for the main thread, one byte each through a pipe: a signal's number,
 * or LOADED when the loader thread is done. A pipe rather than sigwait():
 * threads that libraries start before main (OpenBLAS's pool) do not block
 * signals, so a process-directed SIGTERM may land in any of them; a handler
 * runs wherever it lands and only writes here. */
#define LOADED 0
static int events[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(events[1], &b, 1) < 0) {}   /* a full pipe already holds a signal */
    errno = saved;
}

/* The loader thread's outcome, read by main after the thread says it is done (LOADED). */
typedef struct loader {
    srv_server *srv;
    srv_config *cfg;
    int ok;
    char error[2048];
} loader;

static void *load_main(void *arg) {
    loader *l = arg;
    srv_server *s = l->srv;
    srv_config *c = l->cfg;
    rm_model *model = NULL;
    rm_status st = rm_load(c->model_dir, &c->params, &model, l->error, sizeof l->error);
    if (st != RM_OK) {
        size_t n = strlen(l->error);
        snprintf(l->error + n, sizeof l->error - n, " (%s)", rm_status_string(st));
    } else if (c->n_principles && rm_model_head(model) == RM_HEAD_CLASSIFIER) {
        snprintf(l->error, sizeof l->error, "--principle: %s is a classification model (%s); principles need a "
                 "causal reward model", c->model_dir, rm_model_architecture(model));
    } else if (!(s->batcher = srv_batcher_start(model, &c->batch, s->metrics))) {
        snprintf(l->error, sizeof l->error, "cannot start the batch workers");
    } else {
        s->model = model;
        s->info = (srv_model_info){.served_name = c->served_name,
                                   .takes_principles = rm_model_head(model) != RM_HEAD_CLASSIFIER,
                                   .principles = c->principles,
                                   .n_principles = c->n_principles};
        atomic_store(&s->ready, 1);
        l->ok = 1;
    }
    if (!l->ok) rm_free(model);
    unsigned char b = LOADED;
    if (write(events[1], &b, 1) < 0) perror("nimreward-server: events pipe");
    return NULL;
}

/* The one start-up line. */
static void startup_line(const srv_server *s, const srv_config *c) {
    const char *host = c->host;
    int v6 = strchr(host, ':') != NULL;
    printf("nimreward-server %s: serving %s as \"%s\" at http://%s%s%s:%d/v1, device %s, dtype %s, scores: ",
           rm_version_string(), c->model_dir, c->served_name, v6 ? "[" : "", host, v6 ? "]" : "", s->port,
           cli_device_name(rm_model_device(s->model)), cli_dtype_name(rm_model_dtype(s->model)));
    size_t n = rm_model_n_scores(s->model);
    for (size_t i = 0; i < n; i++) printf("%s%s", i ? "," : "", rm_model_score_name(s->model, i));
    if (s->info.takes_principles) {
        printf("%sprinciples: ", n ? "; " : "");
        if (!c->n_principles) printf("per request");
        for (size_t i = 0; i < c->n_principles; i++) printf("%s%s", i ? "," : "", c->principles[i].name);
        if (c->n_principles) printf(" (or per request)");
    }
    printf("\n");
    fflush(stdout);
}

/* SIGTERM with the model loaded: no new connections, the requests in flight answered, then stop. */
static void shut_down(srv_server *s, const srv_config *c) {
    atomic_store(&s->stopping, 1);
    srv_http_quiesce(s);
    /* Every job is answered by its deadline at the latest (the batcher's watcher). */
    double give_up = cli_now_seconds() + c->batch.timeout_s + 5;
    while (atomic_load(&s->in_flight) > 0 && cli_now_seconds() < give_up) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    srv_batcher_stop(s->batcher);
    srv_http_stop(s);
}

int main(int argc, char **argv) {
    srv_config cfg;
    int rc = srv_config_parse(&cfg, argc, argv);
    if (rc != SRV_CONFIG_OK) {
        srv_config_free(&cfg);
        return rc == SRV_CONFIG_EXIT ? CLI_OK : rc == SRV_CONFIG_USAGE ? CLI_USAGE : CLI_FATAL;
    }
    if (pipe(events) || fcntl(events[0], F_SETFD, FD_CLOEXEC) || fcntl(events[1], F_SETFD, FD_CLOEXEC)) {
        perror("error: pipe");
        srv_config_free(&cfg);
        return CLI_FATAL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_server s;
    memset(&s, 0, sizeof s);
    s.cfg = &cfg;
    s.started = (long long)time(NULL);
    char err[1024];
    if (!(s.metrics = srv_metrics_new())) {
        fprintf(stderr, "error: out of memory\n");
        srv_config_free(&cfg);
        return CLI_FATAL;
    }
    if (srv_http_start(&s, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        srv_metrics_free(s.metrics);
        srv_config_free(&cfg);
        return CLI_FATAL;
    }
    loader l = {.srv = &s, .cfg = &cfg};
    pthread_t loader_thread;
    if (pthread_create(&loader_thread, NULL, load_main, &l)) {
        fprintf(stderr, "error: cannot start the loader thread\n");
        srv_http_stop(&s);
        srv_metrics_free(s.metrics);
        srv_config_free(&cfg);
        return CLI_FATAL;
    }
    int loading = 1, status = CLI_OK, sig = 0;
    for (;;) {
        unsigned char b;
        ssize_t got = read(events[0], &b, 1);
        if (got < 0 && errno == EINTR) continue;
        if (got != 1) {
            perror("nimreward-server: events pipe");
            sig = SIGTERM;
        } else {
            sig = b;
        }
        if (sig == LOADED && loading) {
            pthread_join(loader_thread, NULL);
            loading = 0;
            if (!l.ok) {
                fprintf(stderr, "error: %s\n", l.error);
                status = CLI_FATAL;
                srv_http_stop(&s);
                break;
            }
            startup_line(&s, &cfg);
            continue;
        }
        if (sig != SIGTERM && sig != SIGINT) continue;
        if (loading) {
            /* Nothing is in flight before the model is ready (chat completions get 503), and a load
             * cannot be interrupted: stop listening and leave without waiting for it. */
            fprintf(stderr, "nimreward-server: stopped by signal %d while loading\n", sig);
            atomic_store(&s.stopping, 1);
            srv_http_stop(&s);
            fflush(NULL);
            _exit(CLI_OK);
        }
        shut_down(&s, &cfg);
        fprintf(stderr, "nimreward-server: stopped by signal %d, every request answered\n", sig);
        break;
    }
    rm_free(s.model);
    srv_metrics_free(s.metrics);
    srv_config_free(&cfg);
    close(events[0]);
    close(events[1]);
    return status;
}
