/*
 * response.c - JSON bodies written by hand (see response.h for why).
 */
#include "response.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"   /* cli_format_double */

static int grow(srv_text *t, size_t extra) {
    if (t->oom) return 0;
    if (t->len + extra + 1 <= t->cap) return 1;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + extra + 1) cap *= 2;
    char *d = realloc(t->data, cap);
    if (!d) return t->oom = 1, 0;
    t->data = d;
    t->cap = cap;
    return 1;
}

void srv_text_append(srv_text *t, const char *s, size_t n) {
    if (!grow(t, n)) return;
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = 0;
}

void srv_text_puts(srv_text *t, const char *s) { srv_text_append(t, s, strlen(s)); }

void srv_text_printf(srv_text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !grow(t, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

void srv_text_json_string(srv_text *t, const char *s, size_t n) {
    srv_text_append(t, "\"", 1);
    size_t run = 0;             /* bytes copied as they are, in one append */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        srv_text_append(t, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': srv_text_append(t, "\\\"", 2); break;
        case '\\': srv_text_append(t, "\\\\", 2); break;
        case '\n': srv_text_append(t, "\\n", 2); break;
        case '\r': srv_text_append(t, "\\r", 2); break;
        case '\t': srv_text_append(t, "\\t", 2); break;
        default: srv_text_printf(t, "\\u%04x", c);
        }
    }
    srv_text_append(t, s + run, n - run);
    srv_text_append(t, "\"", 1);
}

static void json_str(srv_text *t, const char *s) { srv_text_json_string(t, s, strlen(s)); }

char *srv_text_take(srv_text *t, size_t *len) {
    if (!t->oom && !t->data) grow(t, 0);
    if (t->oom) {
        free(t->data);
        memset(t, 0, sizeof *t);
        return NULL;
    }
    char *d = t->data;
    if (len) *len = t->len;
    memset(t, 0, sizeof *t);
    return d;
}

/* The scores as text, each formatted once (the shortest form costs up to 17 printf/strtod rounds). */
static char (*numbers(const srv_completion *c))[32] {
    char (*num)[32] = malloc((c->n_scores ? c->n_scores : 1) * sizeof *num);
    if (num)
        for (size_t i = 0; i < c->n_scores; i++) cli_format_double(num[i], sizeof num[i], c->values[i]);
    return num;
}

static void content(srv_text *t, const srv_completion *c, char (*num)[32]) {
    for (size_t i = 0; i < c->n_scores; i++) {
        if (i) srv_text_append(t, ",", 1);
        srv_text_puts(t, c->names[i]);
        srv_text_append(t, ":", 1);
        srv_text_puts(t, num[i]);
    }
}

char *srv_content_string(const srv_completion *c, size_t *len) {
    srv_text t = {0};
    char (*num)[32] = numbers(c);
    if (!num) return NULL;
    content(&t, c, num);
    free(num);
    return srv_text_take(&t, len);
}

char *srv_completion_json(const srv_completion *c, size_t *len) {
    srv_text t = {0}, text = {0};
    char (*num)[32] = numbers(c);
    if (!num) return NULL;
    content(&text, c, num);
    srv_text_puts(&t, "{\"id\":");
    json_str(&t, c->id);
    srv_text_printf(&t, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", c->created);
    json_str(&t, c->model);
    srv_text_puts(&t, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    srv_text_json_string(&t, text.data ? text.data : "", text.len);
    srv_text_puts(&t, "},\"logprobs\":{\"content\":[");
    for (size_t i = 0; i < c->n_scores; i++) {
        srv_text_puts(&t, i ? ",{\"token\":" : "{\"token\":");
        json_str(&t, c->names[i]);
        srv_text_printf(&t, ",\"logprob\":%s,\"bytes\":null,\"top_logprobs\":[]}", num[i]);
    }
    srv_text_printf(&t, "]},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":0,"
                    "\"total_tokens\":%zu}}", c->prompt_tokens, c->prompt_tokens);
    if (text.oom) t.oom = 1;
    free(text.data);
    free(num);
    return srv_text_take(&t, len);
}

char *srv_error_json(const srv_error *e, size_t *len) {
    srv_text t = {0};
    srv_text_puts(&t, "{\"error\":{\"message\":");
    json_str(&t, e->message);
    srv_text_puts(&t, ",\"type\":");
    json_str(&t, e->type ? e->type : "invalid_request_error");
    srv_text_puts(&t, ",\"param\":");
    if (e->param) json_str(&t, e->param);
    else srv_text_puts(&t, "null");
    srv_text_puts(&t, ",\"code\":");
    if (e->code) json_str(&t, e->code);
    else srv_text_puts(&t, "null");
    srv_text_puts(&t, "}}");
    return srv_text_take(&t, len);
}

char *srv_models_json(const char *served_name, long long created, size_t max_model_len, size_t *len) {
    srv_text t = {0};
    srv_text_puts(&t, "{\"object\":\"list\",\"data\":[{\"id\":");
    json_str(&t, served_name);
    srv_text_printf(&t, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"nimreward\",\"root\":", created);
    json_str(&t, served_name);
    srv_text_printf(&t, ",\"max_model_len\":%zu}]}", max_model_len);
    return srv_text_take(&t, len);
}
