/*
 * request.c - POST /v1/chat/completions bodies: parsed, checked, turned into
 * an rm_item (see request.h). Every refusal names the field at fault.
 */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"   /* rm_utf8_check */

#define BAD "invalid_request_error"

int srv_error_set(srv_error *e, int http_status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) {
    e->http_status = http_status;
    e->type = type;
    e->code = code;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* A cut may split a UTF-8 sequence (a quoted role or name): end before it. */
    size_t len = strlen(e->message), ok = rm_utf8_check(e->message, len);
    if (ok < len) e->message[ok] = 0;
    return -1;
}

int srv_name_ok(const char *name) {
    return name[0] && !strpbrk(name, ",:");
}

const char *srv_principle_name(const char *text, size_t index, char *buf, size_t n) {
    if (srv_name_ok(text)) return text;
    snprintf(buf, n, "principle_%zu", index + 1);
    return buf;
}

void srv_request_clear(srv_request *req) {
    json_decref(req->json);
    free(req->messages);
    free(req->texts);
    free(req->names);
    free(req->generated);
    memset(req, 0, sizeof *req);
}

static int parse_messages(json_t *msgs, srv_request *req, srv_error *err) {
    const char *shape = "a list of {\"role\", \"content\"} objects ending with the assistant's response";
    if (!msgs) return srv_error_set(err, 400, BAD, NULL, "messages", "\"messages\" is required: %s", shape);
    if (!json_is_array(msgs)) return srv_error_set(err, 400, BAD, NULL, "messages", "\"messages\" must be %s", shape);
    size_t n = json_array_size(msgs);
    if (!n) return srv_error_set(err, 400, BAD, NULL, "messages", "\"messages\" is empty: it must be %s", shape);
    if (!(req->messages = calloc(n, sizeof *req->messages)))
        return srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    int any_assistant = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i), *role, *content;
        if (!json_is_object(m))
            return srv_error_set(err, 400, BAD, NULL, "messages", "messages[%zu] must be an object with \"role\" and "
                                 "\"content\"", i);
        if (!(role = json_object_get(m, "role")))
            return srv_error_set(err, 400, BAD, NULL, "messages", "messages[%zu] has no \"role\"", i);
        if (!json_is_string(role))
            return srv_error_set(err, 400, BAD, NULL, "messages", "messages[%zu].role must be a string", i);
        if (!(content = json_object_get(m, "content")))
            return srv_error_set(err, 400, BAD, NULL, "messages", "messages[%zu] has no \"content\"", i);
        if (!json_is_string(content))
            return srv_error_set(err, 400, BAD, NULL, "messages", "messages[%zu].content must be a string (a reward "
                                 "model reads text; content parts are not supported)", i);
        req->messages[i] = RM_MESSAGE(json_string_value(role), json_string_value(content));
        any_assistant |= !strcmp(req->messages[i].role, "assistant");
    }
    if (!any_assistant)
        return srv_error_set(err, 400, BAD, NULL, "messages", "the conversation has no assistant turn: a reward "
                             "model scores the assistant's response, so \"messages\" must end with it");
    if (strcmp(req->messages[n - 1].role, "assistant"))
        return srv_error_set(err, 400, BAD, NULL, "messages", "the conversation must end with the assistant's "
                             "response, but the last message (messages[%zu]) has the role \"%.64s\"", n - 1,
                             req->messages[n - 1].role);
    req->item.messages = req->messages;
    req->item.n_messages = n;
    return 0;
}

/* The request's own principles (a list of strings or {"name", "text"}). */
static int parse_principles(json_t *list, const srv_model_info *info, srv_request *req, srv_error *err) {
    if (!json_is_array(list))
        return srv_error_set(err, 400, BAD, NULL, "principles", "\"principles\" must be a list of strings or "
                             "{\"name\", \"text\"} objects");
    size_t n = json_array_size(list);
    if (n && !info->takes_principles)
        return srv_error_set(err, 400, BAD, NULL, "principles", "principles were given, but \"%.200s\" is a "
                             "classification model: principles need a causal reward model (Nemotron-Reward-Principle "
                             "style)", info->served_name);
    if (n > SRV_MAX_PRINCIPLES)
        return srv_error_set(err, 400, BAD, NULL, "principles", "%zu principles: at most %d per request", n,
                             SRV_MAX_PRINCIPLES);
    req->texts = calloc(n ? n : 1, sizeof *req->texts);
    req->names = calloc(n ? n : 1, sizeof *req->names);
    req->generated = calloc(n ? n : 1, 32);
    if (!req->texts || !req->names || !req->generated)
        return srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(list, i), *name = NULL, *text = p;
        if (json_is_object(p)) {
            name = json_object_get(p, "name");
            text = json_object_get(p, "text");
            if (!json_is_string(text))
                return srv_error_set(err, 400, BAD, NULL, "principles", "principles[%zu].text must be a string", i);
            if (name && !json_is_null(name) && !json_is_string(name))
                return srv_error_set(err, 400, BAD, NULL, "principles", "principles[%zu].name must be a string", i);
            if (json_is_null(name)) name = NULL;
        } else if (!json_is_string(p)) {
            return srv_error_set(err, 400, BAD, NULL, "principles", "principles[%zu] must be a string or a "
                                 "{\"name\", \"text\"} object", i);
        }
        req->texts[i] = json_string_value(text);
        if (!req->texts[i][0])
            return srv_error_set(err, 400, BAD, NULL, "principles", "principles[%zu] has an empty text", i);
        if (name) {
            req->names[i] = json_string_value(name);
            if (!srv_name_ok(req->names[i]))
                return srv_error_set(err, 400, BAD, NULL, "principles", "principles[%zu].name \"%.64s\" must be "
                                     "non-empty without ',' or ':' (NIM's content form separates scores with them)",
                                     i, req->names[i]);
        } else {
            req->names[i] = srv_principle_name(req->texts[i], i, req->generated + 32 * i, 32);
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(req->names[k], req->names[i]))
                return srv_error_set(err, 400, BAD, NULL, "principles", "principles[%zu] and principles[%zu] are "
                                     "both named \"%.64s\": each score needs its own name", k, i, req->names[i]);
    }
    req->item.principles = req->texts;
    req->item.n_principles = n;
    return 0;
}

int srv_request_parse(const char *body, size_t len, const srv_model_info *info, srv_request *req,
                      srv_error *err) {
    memset(req, 0, sizeof *req);
    memset(err, 0, sizeof *err);
    rm_item_init(&req->item);
    size_t bad = rm_utf8_check(body, len);
    if (bad < len)
        return srv_error_set(err, 400, BAD, NULL, NULL, "the request body is not valid UTF-8 (byte %zu)", bad);
    json_error_t je;
    if (!(req->json = json_loadb(body, len, 0, &je)))
        return srv_error_set(err, 400, BAD, NULL, NULL, "the request body is not valid JSON: %s (line %d, column %d)",
                             je.text, je.line, je.column);
    if (!json_is_object(req->json))
        return srv_error_set(err, 400, BAD, NULL, NULL, "the request body must be a JSON object");

    json_t *model = json_object_get(req->json, "model");
    if (!json_is_string(model))
        return srv_error_set(err, 400, BAD, NULL, "model", "\"model\" must be given as a string: this server serves "
                             "\"%.200s\"", info->served_name);
    if (strcmp(json_string_value(model), info->served_name))
        return srv_error_set(err, 404, BAD, "model_not_found", "model", "The model `%.200s` does not exist: this "
                             "server serves `%.200s`.", json_string_value(model), info->served_name);

    json_t *stream = json_object_get(req->json, "stream");
    if (json_is_true(stream))
        return srv_error_set(err, 400, BAD, NULL, "stream", "\"stream\": true is not supported: reward models do not "
                             "stream (the scores come in one response); send \"stream\": false or leave it out");
    if (stream && !json_is_false(stream) && !json_is_null(stream))
        return srv_error_set(err, 400, BAD, NULL, "stream", "\"stream\" must be a boolean");

    if (parse_messages(json_object_get(req->json, "messages"), req, err)) return -1;

    json_t *principles = json_object_get(req->json, "principles");
    if (principles && !json_is_null(principles)) return parse_principles(principles, info, req, err);
    /* None in the request: the --principle flags (already named). */
    if (info->n_principles) {
        req->texts = calloc(info->n_principles, sizeof *req->texts);
        req->names = calloc(info->n_principles, sizeof *req->names);
        if (!req->texts || !req->names) return srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        for (size_t i = 0; i < info->n_principles; i++) {
            req->texts[i] = info->principles[i].text;
            req->names[i] = info->principles[i].name;
        }
        req->item.principles = req->texts;
        req->item.n_principles = info->n_principles;
    }
    return 0;
}
