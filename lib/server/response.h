/*
 * response.h - the JSON bodies the server answers with: a chat completion
 * carrying the scores in NIM's form, OpenAI-style errors, the model list.
 * Written by hand (not through jansson) so every score prints as the
 * shortest string that reads back to the same double (cli_format_double),
 * in the content and in the logprobs alike.
 *
 * Each function returns a malloc'ed, NUL-terminated body (free with free())
 * and its length in *len, or NULL when out of memory.
 */
#ifndef RM_SERVER_RESPONSE_H
#define RM_SERVER_RESPONSE_H

#include <stddef.h>

#include "request.h"

/* A growable text buffer from malloc. Zero-initialise. */
typedef struct srv_text {
    char *data;
    size_t len, cap;
    int oom;                  /* sticky: an append failed */
} srv_text;
void srv_text_append(srv_text *t, const char *s, size_t n);
void srv_text_puts(srv_text *t, const char *s);
void srv_text_printf(srv_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included (s is UTF-8). */
void srv_text_json_string(srv_text *t, const char *s, size_t n);
/* Hands the text over (NULL after an append failed, and then freed). */
char *srv_text_take(srv_text *t, size_t *len);

typedef struct srv_completion {
    const char *id;                   /* "chatcmpl-..." */
    long long created;                /* Unix seconds */
    const char *model;                /* the served name */
    size_t n_scores;
    const char *const *names;
    const double *values;             /* finite (the caller checks) */
    size_t prompt_tokens;             /* tokens the model saw, every principle's sequence counted */
} srv_completion;

/* NIM's content "name:score,name:score" alone (the fuzz harness reads it back). */
char *srv_content_string(const srv_completion *c, size_t *len);
/* The chat.completion object: content as above, logprobs.content one
 * {"token", "logprob", "bytes": null, "top_logprobs": []} per score,
 * finish_reason "stop", usage with completion_tokens 0. */
char *srv_completion_json(const srv_completion *c, size_t *len);
/* {"error": {"message", "type", "param", "code"}} */
char *srv_error_json(const srv_error *e, size_t *len);
/* GET /v1/models: {"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]} */
char *srv_models_json(const char *served_name, long long created, size_t max_model_len, size_t *len);

#endif
