/*
 * config.c - flags and NIM's environment variables (see config.h).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli_common.h"
#include "cli/cli_principle.h"
#include "hf_cache.h"

void srv_config_usage(FILE *f) {
    fputs("usage: nimreward-server [--model DIR|hf://org/name] [--served-model-name NAME] [--host ADDR] [--port N]\n"
          "                        [--device cpu|cuda|auto] [--dtype auto|fp32|bf16|fp8] [--gpu N] [--threads N] [--tp N]\n"
          "                        [--http-threads N] [--api-key KEY] [--principle [NAME=]TEXT]...\n"
          "                        [--logits-range A,B] [--names a,b,...]\n"
          "                        [--max-body-bytes N] [--max-tokens N] [--request-timeout SECONDS]\n"
          "                        [--max-queue N] [--max-batch N] [--batch-tokens N] [--batch-wait-ms MS]\n"
          "                        [--batch-workers N]\n"
          "An OpenAI-compatible reward server (NIM's API): POST /v1/chat/completions, GET /v1/models,\n"
          "/v1/health/ready, /v1/health/live, /v1/metrics. Environment (flags win): NIM_MODEL_PATH or\n"
          "NIM_MODEL_NAME, NIM_SERVED_MODEL_NAME, NIM_SERVER_PORT, NIM_REWARD_MODEL, NIM_REWARD_LOGITS_RANGE,\n"
          "NIM_REWARD_MODEL_STRING, NIMREWARD_API_KEY; hf:// reads HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME.\n"
          "See docs/server.md.\n", f);
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *own(srv_config *c, char *s) {
    if (s && c->n_owned < sizeof c->owned / sizeof c->owned[0]) c->owned[c->n_owned++] = s;
    else free(s), s = NULL;
    return s;
}

/* An integer in [lo, hi]; -1 after printing the error. */
static long long count_value(const char *what, const char *v, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || errno || n < lo || n > hi) {
        fprintf(stderr, "error: %s needs a whole number from %lld to %lld, not \"%s\"\n", what, lo, hi, v ? v : "");
        return -1;
    }
    return n;
}

/* A decimal in (0, hi]; NAN after printing the error. */
static double positive_value(const char *what, const char *v, double hi) {
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : NAN;
    if (!v || end == v || *end || errno || !(d > 0) || d > hi) {
        fprintf(stderr, "error: %s needs a number above 0 and at most %g, not \"%s\"\n", what, hi, v ? v : "");
        return NAN;
    }
    return d;
}

static int add_principle(srv_config *c, const char *value) {
    if (c->n_principles == SRV_MAX_PRINCIPLES)
        return fprintf(stderr, "error: at most %d --principle\n", SRV_MAX_PRINCIPLES), -1;
    cli_principle p;
    if (cli_principle_parse(value, &p)) return fprintf(stderr, "error: --principle \"%s\" has no text\n", value), -1;
    size_t i = c->n_principles;
    char *name;
    if (p.name) {
        name = strndup(p.name, p.name_len);
    } else {
        char buf[32];
        name = strdup(srv_principle_name(p.text, i, buf, sizeof buf));
    }
    if (!own(c, name)) return fprintf(stderr, "error: out of memory\n"), -1;
    for (size_t k = 0; k < i; k++)
        if (!strcmp(c->principles[k].name, name))
            return fprintf(stderr, "error: two --principle flags are named \"%s\": each score needs its own name\n",
                           name), -1;
    c->principles[i].name = name;
    c->principles[i].text = p.text;
    c->n_principles++;
    return 0;
}

/* The environment's part: NIM's variables (read before the flags, which override). */
static int from_env(srv_config *c) {
    const char *v;
    if ((v = env("NIM_MODEL_PATH")) || (v = env("NIM_MODEL_NAME"))) c->model = v;
    c->served_name = (v = env("NIM_SERVED_MODEL_NAME")) ? strdup(v) : NULL;
    if ((v = env("NIM_SERVER_PORT")) && (c->port = (int)count_value("NIM_SERVER_PORT", v, 0, 65535)) < 0) return -1;
    if ((v = env("NIMREWARD_API_KEY"))) c->api_key = v;
    if ((v = env("NIM_REWARD_MODEL")) &&
        (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))) {
        fprintf(stderr, "error: NIM_REWARD_MODEL=%s, but this server serves reward models only\n", v);
        return -1;
    }
    /* NIM_REWARD_LOGITS_RANGE and NIM_REWARD_MODEL_STRING are read by rm_load() itself (the flags set
     * params.logits_begin / score_names, which win). */
    return 0;
}

/* The served name: the flag or NIM_SERVED_MODEL_NAME, else org/name for hf://, else the directory's name. */
static int resolve_model(srv_config *c, char **repo_id) {
    *repo_id = NULL;
    if (srv_hf_is_uri(c->model)) {
        char err[2048];
        if (!(c->model_dir = srv_hf_resolve(c->model, repo_id, err, sizeof err))) {
            fprintf(stderr, "error: %s\n", err);
            return -1;
        }
        return 0;
    }
    if (!(c->model_dir = strdup(c->model))) return fprintf(stderr, "error: out of memory\n"), -1;
    return 0;
}

static char *dir_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    return strndup(path + start, n - start);
}

int srv_config_parse(srv_config *c, int argc, char **argv) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->http_threads = 4;
    c->max_body_bytes = 4u << 20;
    rm_params_init(&c->params);
    c->batch = (srv_batch_opts){.max_queue = 256, .max_batch = 64, .batch_tokens = 16384, .wait_s = 0.002,
                                .timeout_s = 60, .workers = 1};
    if (from_env(c)) return SRV_CONFIG_USAGE;
    const char *served_flag = NULL, *range = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int dev = cli_device_option(a, v, &c->params);
        if (dev < 0) return SRV_CONFIG_USAGE;
        if (dev) { i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { srv_config_usage(stdout); return SRV_CONFIG_EXIT; }
        if (!v) {
            fprintf(stderr, "error: %s\n", strncmp(a, "--", 2) ? "unexpected argument" : "a value is missing");
            fprintf(stderr, "  at \"%s\"\n", a);
            srv_config_usage(stderr);
            return SRV_CONFIG_USAGE;
        }
/* A flag's number into dst, or a usage error (count_value printed it). */
#define COUNT(dst, lo, hi)                                     \
        do {                                                   \
            long long n_ = count_value(a, v, (lo), (hi));      \
            if (n_ < 0) return SRV_CONFIG_USAGE;               \
            (dst) = n_;                                        \
        } while (0)
        if (!strcmp(a, "--model")) c->model = v;
        else if (!strcmp(a, "--served-model-name")) served_flag = v;
        else if (!strcmp(a, "--host")) c->host = v;
        else if (!strcmp(a, "--port")) COUNT(c->port, 0, 65535);
        else if (!strcmp(a, "--http-threads")) COUNT(c->http_threads, 1, 1024);
        else if (!strcmp(a, "--api-key")) c->api_key = v;
        else if (!strcmp(a, "--principle")) { if (add_principle(c, v)) return SRV_CONFIG_USAGE; }
        else if (!strcmp(a, "--logits-range")) range = v;
        else if (!strcmp(a, "--names")) c->params.score_names = v;
        else if (!strcmp(a, "--max-body-bytes")) COUNT(c->max_body_bytes, 1, 1LL << 34);
        else if (!strcmp(a, "--max-tokens")) COUNT(c->params.max_tokens, 1, 1LL << 40);
        else if (!strcmp(a, "--max-queue")) COUNT(c->batch.max_queue, 1, 1 << 20);
        else if (!strcmp(a, "--max-batch")) COUNT(c->batch.max_batch, 1, 4096);
        else if (!strcmp(a, "--batch-tokens")) COUNT(c->batch.batch_tokens, 1, 1LL << 30);
        else if (!strcmp(a, "--batch-workers")) COUNT(c->batch.workers, 1, 64);
        else if (!strcmp(a, "--request-timeout")) {
            if (isnan(c->batch.timeout_s = positive_value(a, v, 86400))) return SRV_CONFIG_USAGE;
        } else if (!strcmp(a, "--batch-wait-ms")) {
            char *end;
            double ms = strtod(v, &end);       /* 0 is allowed: no window at all */
            if (end == v || *end || !(ms >= 0) || ms > 10000) {
                fprintf(stderr, "error: --batch-wait-ms needs milliseconds from 0 to 10000, not \"%s\"\n", v);
                return SRV_CONFIG_USAGE;
            }
            c->batch.wait_s = ms / 1000;
        } else {
            fprintf(stderr, "error: unknown option %s\n", a);
            srv_config_usage(stderr);
            return SRV_CONFIG_USAGE;
        }
#undef COUNT
        i++;
    }
    if (range) {
        long long lo, hi;
        char tail;
        if (sscanf(range, "%lld,%lld%c", &lo, &hi, &tail) != 2) {
            fprintf(stderr, "error: --logits-range must be A,B (half-open), not \"%s\"\n", range);
            return SRV_CONFIG_USAGE;
        }
        c->params.logits_begin = lo;
        c->params.logits_end = hi;
        c->params.head = RM_HEAD_LOGITS;
    }
    if (!c->model) {
        fprintf(stderr, "error: no model: give --model DIR|hf://org/name, or set NIM_MODEL_PATH or NIM_MODEL_NAME\n");
        srv_config_usage(stderr);
        return SRV_CONFIG_USAGE;
    }
    char *repo_id = NULL;
    if (resolve_model(c, &repo_id)) return SRV_CONFIG_FATAL;
    if (served_flag) {
        free(c->served_name);
        c->served_name = strdup(served_flag);
    }
    if (!c->served_name) c->served_name = repo_id ? repo_id : dir_name(c->model_dir), repo_id = NULL;
    free(repo_id);
    if (!c->served_name || !c->served_name[0]) {
        fprintf(stderr, "error: the served model name is empty: give --served-model-name\n");
        return SRV_CONFIG_USAGE;
    }
    return SRV_CONFIG_OK;
}

void srv_config_free(srv_config *c) {
    free(c->model_dir);
    free(c->served_name);
    for (size_t i = 0; i < c->n_owned; i++) free(c->owned[i]);
    memset(c, 0, sizeof *c);
}
