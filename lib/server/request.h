/*
 * request.h - one POST /v1/chat/completions body, parsed and checked without
 * HTTP (so the fuzz harness tests/fuzz/fuzz_request.c drives it directly).
 *
 * A good body becomes an rm_item pointing into the parsed JSON, plus the
 * name each score will carry. A bad one becomes the HTTP status and the
 * OpenAI-style error (message, type, param, code) to answer with.
 */
#ifndef RM_SERVER_REQUEST_H
#define RM_SERVER_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "nimreward.h"

/* Principles per request (and --principle flags). */
#define SRV_MAX_PRINCIPLES 256

/* A principle with the name its score carries (never NULL once resolved). */
typedef struct srv_principle {
    const char *name;
    const char *text;
} srv_principle;

/* What parsing needs to know about the model served. */
typedef struct srv_model_info {
    const char *served_name;          /* a request's "model" must equal it */
    int takes_principles;             /* a causal LM: principles may be given */
    const srv_principle *principles;  /* the --principle flags: used when a request gives none */
    size_t n_principles;
} srv_model_info;

/* The error to answer with. */
typedef struct srv_error {
    int http_status;                  /* 400, 404, ... */
    const char *type;                 /* "invalid_request_error", ... */
    const char *code;                 /* NULL or "model_not_found", ... */
    const char *param;                /* NULL or the field at fault */
    char message[512];
} srv_error;

/* Fills e and returns -1, so a failure is one line. */
int srv_error_set(srv_error *e, int http_status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

typedef struct srv_request {
    json_t *json;                     /* the body; the item's strings point into it */
    rm_message *messages;
    const char **texts;               /* principle texts, for the item */
    const char **names;               /* the score names (principles only; n_principles) */
    char *generated;                  /* storage of the principle_<i> names */
    rm_item item;                     /* messages and principles, ready for rm_score_batch */
} srv_request;

/* Parses and checks `body` (len bytes, not terminated). Returns 0 with *req
 * filled, or -1 with *err filled. Either way release with srv_request_clear().
 * Checks, in order: UTF-8, JSON, an object, "model" (404 when not the served
 * one), "stream" (reward models do not stream), "messages" (a non-empty list
 * of objects with string "role" and "content", ending with the assistant),
 * "principles" (a list of strings or {"name", "text"} objects, only for a
 * causal model). Other OpenAI fields are accepted and have no effect. */
int srv_request_parse(const char *body, size_t len, const srv_model_info *info, srv_request *req,
                      srv_error *err);
void srv_request_clear(srv_request *req);

/* The name of an unnamed principle: its text, unless the text holds ',' or
 * ':' (which cannot travel in NIM's "name:score,name:score" content): then
 * "principle_<i>", i its position from 1. buf (>= 32 bytes) holds the
 * generated name. */
const char *srv_principle_name(const char *text, size_t index, char *buf, size_t n);

/* 1 when name can travel in the content form: non-empty, no ',' or ':'. */
int srv_name_ok(const char *name);

#endif
