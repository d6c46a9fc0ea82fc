/*
 * fuzz_request.c - libFuzzer harness for nimreward-server's request parsing
 * (srv_request_parse, lib/server/request.c) and the answer written from it
 * (lib/server/response.c). The input is one POST /v1/chat/completions body.
 *
 * A body that parses must give an item the API can take: a non-empty list
 * of messages with string roles and contents ending with the assistant,
 * principles only where the model takes them, each named (non-empty, no ','
 * or ':', no two alike). Then the completion written for those names must be
 * JSON whose content "name:score,..." and logprobs read back to the exact
 * names and doubles. A body that does not parse must give a 4xx/5xx status
 * and a UTF-8 message, and its error body must read back to that message.
 *
 * The input's length picks the model (so trailing whitespace flips it):
 * bit 0 a causal one (principles allowed), bit 1 --principle defaults in force.
 *
 * Built by tests/fuzz/run.sh (make fuzz); replayed without libFuzzer by
 * tests/test_fuzz_regressions.sh through tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "server/request.h"
#include "server/response.h"

static const srv_principle DEFAULTS[] = {{"helpful", "the response helps"}, {"principle_2", "a, b: c"}};
static const char *const LABELS[] = {"helpfulness", "correctness", "coherence"};

/* A score from the input's bytes: ordinary, tiny, huge, negative zero. */
static double score_of(const uint8_t *data, size_t size, size_t i) {
    uint64_t h = 1469598103934665603ULL ^ i;
    for (size_t k = 0; k < size && k < 64; k++) h = (h ^ data[k]) * 1099511628211ULL;
    switch (h % 5) {
    case 0: return -0.0;
    case 1: return ldexp((double)(h >> 11), -(int)(h % 1100));   /* down to subnormals */
    case 2: return -ldexp((double)(h >> 12), (int)(h % 900));
    default: return ((double)(int64_t)(h >> 8) - (double)(1LL << 55)) / 3.0;
    }
}

static void check_completion(const srv_request *req, const uint8_t *data, size_t size) {
    size_t n = req->item.n_principles ? req->item.n_principles : 3;
    const char *const *names = req->item.n_principles ? req->names : LABELS;
    double values[SRV_MAX_PRINCIPLES];
    for (size_t i = 0; i < n; i++) values[i] = score_of(data, size, i);
    srv_completion c = {.id = "chatcmpl-0", .created = 1, .model = "m\"odel", .n_scores = n, .names = names,
                        .values = values, .prompt_tokens = 7};
    size_t len = 0;
    char *body = srv_completion_json(&c, &len);
    if (!body) return;   /* out of memory */
    json_error_t je;
    json_t *o = json_loadb(body, len, 0, &je);
    invariant(o != NULL);
    json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
    const char *content = json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    json_t *lp = json_object_get(json_object_get(choice, "logprobs"), "content");
    invariant(content != NULL && json_array_size(lp) == n);
    invariant(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")) == 7);
    invariant(!strcmp(json_string_value(json_object_get(o, "model")), "m\"odel"));
    /* The content form read as NIM's documented client reads it: split on ',' then ':'. */
    const char *p = content;
    for (size_t i = 0; i < n; i++) {
        size_t name_len = strlen(names[i]);
        invariant(!strncmp(p, names[i], name_len) && p[name_len] == ':');
        char *end;
        double v = strtod(p + name_len + 1, &end);
        invariant(v == values[i] && signbit(v) == signbit(values[i]));
        invariant(*end == (i + 1 < n ? ',' : 0));
        p = end + 1;
        json_t *e = json_array_get(lp, i);
        invariant(!strcmp(json_string_value(json_object_get(e, "token")), names[i]));
        invariant(json_number_value(json_object_get(e, "logprob")) == values[i]);
    }
    json_decref(o);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);     /* exact size, no terminator */
    if (!text) return 0;
    memcpy(text, data, size);
    size_t pick = size;
    srv_model_info info = {.served_name = "tiny", .takes_principles = pick & 1};
    if (info.takes_principles && (pick & 2)) info.principles = DEFAULTS, info.n_principles = 2;

    srv_request req;
    srv_error err;
    int rc = srv_request_parse(text, size, &info, &req, &err);
    if (rc == 0) {
        const rm_item *it = &req.item;
        invariant(req.json != NULL && it->struct_size == sizeof(rm_item));
        invariant(it->messages != NULL && it->n_messages >= 1);
        for (size_t i = 0; i < it->n_messages; i++) {
            invariant(it->messages[i].struct_size == sizeof(rm_message));
            invariant(it->messages[i].role != NULL && it->messages[i].content != NULL);
            (void)strlen(it->messages[i].content);
        }
        invariant(!strcmp(it->messages[it->n_messages - 1].role, "assistant"));
        invariant(it->n_principles <= SRV_MAX_PRINCIPLES);
        invariant(it->n_principles == 0 || info.takes_principles);
        for (size_t i = 0; i < it->n_principles; i++) {
            invariant(it->principles[i] != NULL && it->principles[i][0] != 0);
            invariant(req.names[i] != NULL && srv_name_ok(req.names[i]));
            for (size_t k = 0; k < i; k++) invariant(strcmp(req.names[k], req.names[i]) != 0);
        }
        check_completion(&req, data, size);
    } else {
        invariant(rc == -1);
        invariant(err.http_status >= 400 && err.http_status < 600 && err.type != NULL);
        invariant(memchr(err.message, 0, sizeof err.message) != NULL && err.message[0] != 0);
        invariant(rm_utf8_check(err.message, strlen(err.message)) == strlen(err.message));
        size_t len = 0;
        char *body = srv_error_json(&err, &len);
        if (body) {
            json_error_t je;
            json_t *o = json_loadb(body, len, 0, &je);
            invariant(o != NULL);
            const char *msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
            invariant(msg != NULL && !strcmp(msg, err.message));
            json_decref(o);
            free(body);
        }
    }
    srv_request_clear(&req);
    invariant(req.json == NULL && req.messages == NULL && req.names == NULL);
    free(text);
    return 0;
}
