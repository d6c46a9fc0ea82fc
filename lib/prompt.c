/*
 * prompt.c - a conversation becomes token ids as transformers makes them:
 * render the checkpoint's chat template, then tokenize with the special
 * tokens that the template itself wrote recognised, and no post-processor
 * (the template writes BOS). One deliberate difference, on by default: bytes
 * that came from message data are plain text, so a "<|eot_id|>" inside a
 * user's or a policy's text cannot forge a turn (rm_params.content_special_tokens).
 */
#include "model.h"

#include <string.h>

/* The principle question of Llama-3.3-Nemotron-70B-Reward-Principle. */
static const char PRINCIPLE_PREFIX[] =
    "Evaluate the response to the previous prompt in terms of whether it satisfies this principle: ";
static const char PRINCIPLE_SUFFIX[] = ". Only answer Yes or No.";

/* Message i of an array whose stride is its elements' struct_size (checked
 * by check_messages first): a caller built with a later, larger rm_message
 * still works. */
static const rm_message *message_at(const rm_message *msgs, size_t i) {
    return (const rm_message *)((const char *)msgs + i * msgs[0].struct_size);
}

static rm_status check_messages(const rm_message *msgs, size_t n, rm_err *err) {
    if (n && !msgs) return rm_fail(err, RM_ERR_INVALID_ARG, "messages is NULL");
    if (n && (msgs[0].struct_size < sizeof(rm_message) || msgs[0].struct_size > (1u << 16)))
        return rm_fail(err, RM_ERR_INVALID_ARG, "messages[0].struct_size is %zu: fill messages with RM_MESSAGE()",
                       msgs[0].struct_size);
    for (size_t i = 0; i < n; i++) {
        const rm_message *m = message_at(msgs, i);
        if (m->struct_size != msgs[0].struct_size)
            return rm_fail(err, RM_ERR_INVALID_ARG, "messages[%zu].struct_size is %zu, messages[0]'s %zu: one array, "
                           "one size", i, m->struct_size, msgs[0].struct_size);
        if (!m->role || !m->content)
            return rm_fail(err, RM_ERR_INVALID_ARG, "messages[%zu]: %s is NULL", i, m->role ? "content" : "role");
        const char *fields[2] = {m->role, m->content};
        for (int f = 0; f < 2; f++) {
            size_t len = strlen(fields[f]), bad = rm_utf8_check(fields[f], len);
            if (bad != len)
                return rm_fail(err, RM_ERR_UTF8, "messages[%zu].%s: invalid UTF-8 at byte %zu", i,
                               f ? "content" : "role", bad);
        }
    }
    return RM_OK;
}

static rm_status render(const rm_model *m, const rm_chat_message *cm, size_t n, int add_generation_prompt,
                        char **out, size_t *out_len, uint8_t **mask, rm_err *err) {
    rm_render_opts o = {0};
    o.bos_token = m->bos_token;
    o.eos_token = m->eos_token;
    o.add_generation_prompt = add_generation_prompt;
    o.now = m->now;
    o.mark_message_data = mask != NULL;
    return rm_template_render(m->chat_template, cm, n, &o, out, out_len, mask, err);
}

/* msgs (+ an optional extra user turn) as the interpreter wants them. */
static rm_chat_message *chat_messages(const rm_message *msgs, size_t n, const char *extra_user) {
    rm_chat_message *cm = rm_calloc(n + 1, sizeof *cm);
    if (!cm) return NULL;
    for (size_t i = 0; i < n; i++) {
        const rm_message *m = message_at(msgs, i);
        cm[i].role = m->role;
        cm[i].role_len = strlen(m->role);
        cm[i].content = m->content;
        cm[i].content_len = strlen(m->content);
    }
    if (extra_user) {
        cm[n].role = "user";
        cm[n].role_len = 4;
        cm[n].content = extra_user;
        cm[n].content_len = strlen(extra_user);
    }
    return cm;
}

rm_status rm_prompt_render(const rm_model *m, const rm_message *msgs, size_t n, int add_generation_prompt,
                           char **out, size_t *out_len, uint8_t **mask, rm_err *err) {
    rm_status st = check_messages(msgs, n, err);
    if (st) return st;
    rm_chat_message *cm = chat_messages(msgs, n, NULL);
    if (!cm) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    st = render(m, cm, n, add_generation_prompt, out, out_len, mask, err);
    rm_mfree(cm);
    return st;
}

/* Renders cm[0..n) and appends its tokens as one more sequence of p. */
static rm_status add_sequence(const rm_model *m, const rm_chat_message *cm, size_t n, int add_generation_prompt,
                              rm_prompt *p, rm_err *err) {
    char *text = NULL;
    uint8_t *mask = NULL;
    size_t len = 0;
    int plain_content = !m->content_special_tokens;
    rm_status st = render(m, cm, n, add_generation_prompt, &text, &len, plain_content ? &mask : NULL, err);
    if (st) return st;
    p->ids.limit = p->offsets[p->n_seqs] + (size_t)m->n_ctx;   /* stop one context in */
    p->ids.limit_hit = 0;
    st = rm_tok_encode(m->tok, text, len, mask, 1, &p->ids, err);
    rm_mfree(text);
    rm_mfree(mask);
    if (p->ids.limit_hit)
        return rm_fail(err, RM_ERR_TOO_LONG, "input is longer than the model's context of %lld tokens (tokenizing "
                       "stopped there; the rendered prompt has %zu bytes)", (long long)m->n_ctx, len);
    if (st) return st;
    size_t seq_len = p->ids.len - p->offsets[p->n_seqs];
    if (seq_len == 0) return rm_fail(err, RM_ERR_INVALID_ARG, "the rendered conversation has no tokens");
    p->offsets[++p->n_seqs] = p->ids.len;
    return RM_OK;
}

rm_status rm_prompt_build(const rm_model *m, const rm_message *msgs, size_t n, const char *const *principles,
                          size_t n_principles, int add_generation_prompt, rm_prompt *p, rm_err *err) {
    memset(p, 0, sizeof *p);
    rm_status st = check_messages(msgs, n, err);
    if (st) return st;
    size_t n_seqs = n_principles ? n_principles : 1;
    p->offsets = rm_calloc(n_seqs + 1, sizeof *p->offsets);
    rm_chat_message *cm = chat_messages(msgs, n, "");
    if (!p->offsets || !cm) {
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!n_principles) {
        st = add_sequence(m, cm, n, add_generation_prompt, p, err);
        goto done;
    }
    if (n == 0 || strcmp(cm[n - 1].role, "assistant") != 0) {
        st = rm_fail(err, RM_ERR_INVALID_ARG, "principle scoring: the conversation must end with an assistant "
                     "turn (it ends with %.64s)", n ? cm[n - 1].role : "no message");
        goto done;
    }
    for (size_t i = 0; i < n_principles && !st; i++) {
        if (!principles || !principles[i]) {
            st = rm_fail(err, RM_ERR_INVALID_ARG, "principles[%zu] is NULL", i);
            break;
        }
        size_t plen = strlen(principles[i]), bad = rm_utf8_check(principles[i], plen);
        if (bad != plen) {
            st = rm_fail(err, RM_ERR_UTF8, "principles[%zu]: invalid UTF-8 at byte %zu", i, bad);
            break;
        }
        rm_buf q = {0};
        rm_buf_append(&q, PRINCIPLE_PREFIX, sizeof PRINCIPLE_PREFIX - 1);
        rm_buf_append(&q, principles[i], plen);
        rm_buf_append(&q, PRINCIPLE_SUFFIX, sizeof PRINCIPLE_SUFFIX - 1);
        if (q.oom) st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        if (!st) {
            cm[n].content = q.data;
            cm[n].content_len = q.len;
            st = add_sequence(m, cm, n + 1, 1, p, err);
            if (st) rm_err_prefix(err, "principle %zu", i);
        }
        rm_buf_free(&q);
    }
done:
    rm_mfree(cm);
    if (st) rm_prompt_free(p);
    return st;
}

void rm_prompt_free(rm_prompt *p) {
    rm_ids_release(&p->ids);
    rm_mfree(p->offsets);
    memset(p, 0, sizeof *p);
}
