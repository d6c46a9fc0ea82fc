/*
 * fuzz_jinja.c - libFuzzer harness for the chat-template interpreter
 * (lib/jinja.h): parse any template, render what parses with a few messages
 * under tight limits. Must never crash, hang, leak or read past its input.
 *
 * Input layout:  TEMPLATE \0 MSG \0 MSG ...   (at most 4 messages)
 *   each MSG is one role byte (role = byte % 4: system, user, assistant, tool;
 *   the role byte may itself be 0;
 *   bit 2 of the first one sets add_generation_prompt, bit 3 leaves
 *   bos_token/eos_token undefined) followed by the content bytes.
 *   With no NUL, the whole input is the template and two default messages
 *   are used.
 *
 * Build by hand: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude
 * -Ilib, this file, every lib/jinja/ source and lib/common.c, with -ljansson
 * -lpcre2-8 -lm; run with -dict=tests/fuzz/jinja.dict tests/fuzz/corpus/jinja.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "jinja.h"

#define MAX_MESSAGES 4

static const char *const ROLES[4] = {"system", "user", "assistant", "tool"};

static void check_err(const rm_err *err) {
    /* The message must be a terminated string (a reader will print it). */
    invariant(memchr(err->msg, 0, sizeof err->msg) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;

    /* An exact-size copy without a terminator, so a read past the template's
     * length shows up under AddressSanitizer. */
    char *src = malloc(tlen ? tlen : 1);
    if (!src) return 0;
    memcpy(src, data, tlen);

    rm_chat_message msgs[MAX_MESSAGES];
    size_t n_msgs = 0;
    int add_generation_prompt = 0, tokens_undefined = 0;
    if (nul) {
        const uint8_t *p = nul + 1, *end = data + size;
        while (p < end && n_msgs < MAX_MESSAGES) {
            uint8_t role = *p;
            const uint8_t *c = p + 1; /* the content follows the role byte (which may be 0) */
            const uint8_t *q = c < end ? memchr(c, 0, (size_t)(end - c)) : NULL;
            if (!q) q = end;
            if (n_msgs == 0) {
                add_generation_prompt = (role >> 2) & 1;
                tokens_undefined = (role >> 3) & 1;
            }
            msgs[n_msgs].role = ROLES[role % 4];
            msgs[n_msgs].role_len = strlen(ROLES[role % 4]);
            msgs[n_msgs].content = (const char *)c;
            msgs[n_msgs].content_len = (size_t)(q - c);
            n_msgs++;
            p = q + 1;
        }
    } else {
        static const char hello[] = "Hello {{ x }} <|eot_id|>";
        static const char reply[] = "<think>\nhm\n</think>\n\n  Hi \xe4\xbd\xa0\xe5\xa5\xbd ";
        msgs[0] = (rm_chat_message){"user", 4, hello, sizeof hello - 1};
        msgs[1] = (rm_chat_message){"assistant", 9, reply, sizeof reply - 1};
        n_msgs = 2;
    }

    rm_err err = {0};
    rm_template *t = NULL;
    rm_status st = rm_template_parse(&t, src, tlen, &err);
    if (st != RM_OK) {
        invariant(t == NULL);
        check_err(&err);
        free(src);
        return 0;
    }
    invariant(t != NULL);

    rm_jinja_limits limits = {.max_output = 1 << 16, .max_steps = 20000, .max_depth = 24};
    rm_render_opts opts = {
        .bos_token = tokens_undefined ? NULL : "<s>",
        .eos_token = tokens_undefined ? NULL : "</s>",
        .add_generation_prompt = add_generation_prompt,
        .now = "2026-11-26T09:30:00",
        .mark_message_data = 1,
        .limits = &limits,
    };
    char *out = NULL;
    size_t out_len = 0;
    uint8_t *mask = NULL;
    st = rm_template_render(t, msgs, n_msgs, &opts, &out, &out_len, &mask, &err);
    if (st == RM_OK) {
        invariant(out != NULL && mask != NULL);
        invariant(out_len <= limits.max_output);
        invariant(out[out_len] == 0);
        unsigned marked = 0;
        for (size_t i = 0; i < out_len; i++) marked += mask[i] != 0; /* every mask byte is readable */
        invariant(marked <= out_len);
    } else {
        check_err(&err);
    }
    /* Rendering again gives the same bytes (the first left no state behind). */
    if (st == RM_OK && size < 4096) {
        char *again = NULL;
        size_t again_len = 0;
        rm_err err2 = {0};
        rm_status st2 = rm_template_render(t, msgs, n_msgs, &opts, &again, &again_len, NULL, &err2);
        invariant(st2 == RM_OK && again_len == out_len && memcmp(again, out, out_len) == 0);
        rm_mfree(again);
    }
    rm_mfree(out);
    rm_mfree(mask);

    rm_template_free(t);
    free(src);
    return 0;
}
