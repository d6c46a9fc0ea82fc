/*
 * config.h - nimreward-server's settings: NIM's environment variables as
 * defaults, flags winning over them (docs/server.md lists both).
 */
#ifndef RM_SERVER_CONFIG_H
#define RM_SERVER_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "batcher.h"
#include "nimreward.h"
#include "request.h"

typedef struct srv_config {
    const char *model;            /* as given: a directory or hf://org/name */
    char *model_dir;              /* the directory loaded (the hf:// snapshot resolved) */
    char *served_name;            /* what a request's "model" must be */
    const char *host;             /* default 127.0.0.1 */
    int port;                     /* default 8000; 0 = any free port */
    int http_threads;             /* threads answering HTTP */
    const char *api_key;          /* NULL: no authentication */
    size_t max_body_bytes;        /* larger bodies: 413 */
    rm_params params;             /* device, dtype, threads, max_tokens, head range, names */
    srv_batch_opts batch;
    srv_principle principles[SRV_MAX_PRINCIPLES];   /* the --principle flags, named */
    size_t n_principles;
    char *owned[SRV_MAX_PRINCIPLES + 2];            /* strings the config allocated */
    size_t n_owned;
} srv_config;

enum { SRV_CONFIG_OK = 0, SRV_CONFIG_EXIT = 1, SRV_CONFIG_USAGE = 2, SRV_CONFIG_FATAL = 3 };

/* Reads the environment, then argv. Prints errors (and --help) itself.
 * SRV_CONFIG_OK: run; _EXIT: --help printed; _USAGE: bad flags or variables;
 * _FATAL: the model cannot be found. Free with srv_config_free() in any case. */
int srv_config_parse(srv_config *c, int argc, char **argv);
void srv_config_free(srv_config *c);

void srv_config_usage(FILE *f);

#endif
