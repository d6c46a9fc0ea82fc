/*
 * score.c - rm_score* : conversations -> prompts -> one packed forward pass
 * per chunk -> heads -> rm_scores. Sequences that begin alike (several
 * principles of one conversation, several responses to one prompt) share the
 * computation of their common token prefix.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

/* Unique tokens per forward pass: bounds the activations of one call. */
#define CHUNK_TOKENS 16384
/* Earlier sequences searched for a shared prefix. */
#define PREFIX_SEARCH 64

typedef struct scores_impl {
    rm_scores pub;
    char *error;
    char **names;
    double *values;
    size_t *offsets;
    int32_t *tokens;
} scores_impl;

void rm_scores_free(rm_scores *s) {
    if (!s) return;
    scores_impl *r = (scores_impl *)s;
    if (r->names)
        for (size_t i = 0; i < s->n_scores; i++) rm_mfree(r->names[i]);
    rm_mfree(r->names);
    rm_mfree(r->error);
    rm_mfree(r->values);
    rm_mfree(r->offsets);
    rm_mfree(r->tokens);
    rm_mfree(r);
}

static scores_impl *scores_new(void) {
    scores_impl *r = rm_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->pub.struct_size = sizeof(rm_scores);
    r->pub.error = "";
    return r;
}

/* Marks r failed with err's message and drops what it held. */
static void scores_fail(scores_impl *r, const rm_err *err) {
    if (r->names)
        for (size_t i = 0; i < r->pub.n_scores; i++) rm_mfree(r->names[i]);
    rm_mfree(r->names);
    rm_mfree(r->values);
    rm_mfree(r->offsets);
    rm_mfree(r->tokens);
    rm_mfree(r->error);
    memset(r, 0, sizeof *r);
    r->pub.struct_size = sizeof(rm_scores);
    r->pub.status = err->status ? err->status : RM_ERR_INTERNAL;
    r->error = rm_strdup(err->msg);
    r->pub.error = r->error ? r->error : rm_status_string(r->pub.status);
}

/* One item's work in flight. */
typedef struct item_work {
    const rm_item *item;
    scores_impl *res;
    rm_prompt prompt;
    int principle;
    size_t first_seq;             /* index of its first sequence in the chunk */
} item_work;

/* Items travel in arrays whose stride is items[0].struct_size (checked first),
 * so a caller built with a later, larger rm_item still works. */
static const rm_item *item_at(const rm_item *items, size_t i) {
    return (const rm_item *)((const char *)items + i * items[0].struct_size);
}

static rm_status item_check(const rm_model *m, const rm_item *it, size_t stride, rm_err *err) {
    if (it->struct_size != stride)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_item.struct_size is %zu, the first item's %zu: one array, one size",
                       it->struct_size, stride);
    if (it->n_principles && !m->cfg.is_causal_lm)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_item.principles: principle scoring needs a causal LM, but %s "
                       "is a classification model (%s)", m->path, m->cfg.architecture);
    if (it->n_principles && (m->yes_id < 0 || m->no_id < 0))
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_item.principles: the principle head's Yes/No tokens are not in "
                       "the vocabulary (set rm_params.yes_token / no_token)");
    if (!it->n_principles && m->principle_only)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_item.principles is empty, but the principle head "
                       "(rm_params.head) needs at least one principle per item");
    return RM_OK;
}

/* Fills the result of a prompt-ready item: names, token sequences; values later. */
static rm_status result_prepare(const rm_model *m, item_work *w, rm_err *err) {
    scores_impl *r = w->res;
    size_t n = w->principle ? w->prompt.n_seqs : rm_head_width(m, 0);
    r->names = rm_calloc(n, sizeof *r->names);
    r->values = rm_calloc(n, sizeof *r->values);
    r->offsets = rm_calloc(w->prompt.n_seqs + 1, sizeof *r->offsets);
    r->tokens = rm_calloc(w->prompt.ids.len, sizeof *r->tokens);
    if (!r->names || !r->values || !r->offsets || !r->tokens) return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    r->pub.n_scores = n;
    for (size_t i = 0; i < n; i++)
        if (!(r->names[i] = rm_strdup(w->principle ? w->item->principles[i] : m->names[i])))
            return rm_fail(err, RM_ERR_NOMEM, "out of memory");
    memcpy(r->offsets, w->prompt.offsets, (w->prompt.n_seqs + 1) * sizeof *r->offsets);
    memcpy(r->tokens, w->prompt.ids.data, w->prompt.ids.len * sizeof *r->tokens);
    r->pub.names = (const char *const *)r->names;
    r->pub.values = r->values;
    r->pub.n_sequences = w->prompt.n_seqs;
    r->pub.seq_offsets = r->offsets;
    r->pub.tokens = r->tokens;
    return RM_OK;
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* Runs one forward pass over the ready items w[0..n) and applies the heads. */
static rm_status run_chunk(rm_model *m, item_work *w, size_t n, rm_err *err) {
    size_t n_seqs = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        w[i].first_seq = n_seqs;
        n_seqs += w[i].prompt.n_seqs;
        total += w[i].prompt.ids.len;
    }
    if (!n_seqs) return RM_OK;
    rm_status st = RM_OK;
    const int32_t **tokens = rm_calloc(n_seqs, sizeof *tokens);
    size_t *lens = rm_calloc(n_seqs, sizeof *lens), *shared = rm_calloc(n_seqs, sizeof *shared);
    int32_t *parent = rm_calloc(n_seqs, sizeof *parent);
    size_t hidden_count;
    float *hidden = rm_mul_ok(n_seqs, (size_t)m->cfg.hidden, &hidden_count)
                        ? rm_calloc(hidden_count, sizeof *hidden) : NULL;
    if (!tokens || !lens || !shared || !parent || !hidden) {
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory for a batch of %zu sequences", n_seqs);
        goto done;
    }
    for (size_t i = 0, s = 0; i < n; i++)
        for (size_t k = 0; k < w[i].prompt.n_seqs; k++, s++) {
            tokens[s] = w[i].prompt.ids.data + w[i].prompt.offsets[k];
            lens[s] = w[i].prompt.offsets[k + 1] - w[i].prompt.offsets[k];
            parent[s] = -1;
            for (size_t j = s > PREFIX_SEARCH ? s - PREFIX_SEARCH : 0; j < s; j++) {
                size_t l = common_prefix(tokens[s], lens[s], tokens[j], lens[j]);
                if (l >= lens[s]) l = lens[s] - 1;  /* the last token is always computed */
                if (l > shared[s]) shared[s] = l, parent[s] = (int32_t)j;
            }
        }
    rm_batch b = {n_seqs, tokens, lens, parent, shared};
    if ((st = m->engine_ops->forward(m->engine, &b, hidden, err))) goto done;
    pthread_mutex_lock(&m->counter_lock);
    m->sequences += n_seqs;
    m->tokens_input += total;
    pthread_mutex_unlock(&m->counter_lock);
    for (size_t i = 0; i < n; i++) {
        if (w[i].res->pub.status) continue;   /* failed before the forward pass */
        rm_err item_err = {0};
        const float *h = hidden + w[i].first_seq * (size_t)m->cfg.hidden;
        rm_status ist = RM_OK;
        if (w[i].principle)
            for (size_t k = 0; k < w[i].prompt.n_seqs && !ist; k++)
                ist = rm_head_apply(m, 1, h + k * (size_t)m->cfg.hidden, w[i].res->values + k, &item_err);
        else
            ist = rm_head_apply(m, 0, h, w[i].res->values, &item_err);
        if (ist) scores_fail(w[i].res, &item_err);
    }
done:
    rm_mfree(tokens);
    rm_mfree(lens);
    rm_mfree(shared);
    rm_mfree(parent);
    rm_mfree(hidden);
    return st;
}

/* The batch: out[i] always set unless the whole call fails (then all NULL). */
/* Marks the items of a chunk whose forward pass failed (those not failed already). */
static void chunk_fail(item_work *w, size_t n, const rm_err *err) {
    for (size_t i = 0; i < n; i++)
        if (!w[i].res->pub.status) scores_fail(w[i].res, err);
}

static rm_status score_batch(rm_model *m, const rm_item *items, size_t n_items, rm_scores **out, rm_err *err) {
    if (out)
        for (size_t i = 0; i < n_items; i++) out[i] = NULL;
    if (!m || !out || (n_items && !items)) return rm_fail(err, RM_ERR_INVALID_ARG, "model, items and out must not be NULL");
    if (m->sticky) return rm_fail(err, m->sticky, "%s", m->sticky_msg);
    if (n_items && (items[0].struct_size < sizeof(rm_item) || items[0].struct_size > (1u << 16)))
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_item.struct_size is %zu: initialise items with rm_item_init()",
                       items[0].struct_size);
    item_work *w = rm_calloc(n_items ? n_items : 1, sizeof *w);
    if (!w) return rm_fail(err, RM_ERR_NOMEM, "out of memory for %zu items", n_items);
    rm_status st = RM_OK;
    for (size_t i = 0; i < n_items && !st; i++) {
        if (!(w[i].res = scores_new())) st = rm_fail(err, RM_ERR_NOMEM, "out of memory");
        w[i].item = item_at(items, i);
    }
    /* From here on a failure belongs to the items it touches, never to the others. */
    size_t chunk_start = 0, chunk_tokens = 0;
    for (size_t i = 0; i < n_items && !st; i++) {
        rm_err item_err = {0};
        const rm_item *it = w[i].item;
        rm_status ist = item_check(m, it, items[0].struct_size, &item_err);
        if (!ist) {
            w[i].principle = it->n_principles > 0;
            ist = rm_prompt_build(m, it->messages, it->n_messages, it->principles, it->n_principles, 0,
                                  &w[i].prompt, &item_err);
        }
        if (!ist) ist = result_prepare(m, &w[i], &item_err);
        if (ist) {
            rm_prompt_free(&w[i].prompt);
            scores_fail(w[i].res, &item_err);
        }
        chunk_tokens += w[i].prompt.ids.len;
        if (chunk_tokens >= CHUNK_TOKENS || i + 1 == n_items) {
            rm_err chunk_err = {0};
            if (run_chunk(m, w + chunk_start, i + 1 - chunk_start, &chunk_err))
                chunk_fail(w + chunk_start, i + 1 - chunk_start, &chunk_err);
            for (size_t k = chunk_start; k <= i; k++) rm_prompt_free(&w[k].prompt);
            chunk_start = i + 1;
            chunk_tokens = 0;
        }
    }
    rm_status first_fail = RM_OK;   /* of the first item, in order, that failed */
    for (size_t i = 0; i < n_items; i++) {
        rm_prompt_free(&w[i].prompt);
        if (st) {
            if (w[i].res) rm_scores_free(&w[i].res->pub);
        } else {
            out[i] = &w[i].res->pub;
            if (!first_fail && out[i]->status) {
                first_fail = out[i]->status;
                rm_fail(err, first_fail, "%s", out[i]->error);
            }
        }
    }
    rm_mfree(w);
    return st ? st : first_fail;
}

rm_status rm_score_batch(rm_model *m, const rm_item *items, size_t n_items, rm_scores **out) {
    rm_err err = {0};
    rm_status st = score_batch(m, items, n_items, out, &err);
    if (st && m) rm_model_set_error(m, &err);
    return st;
}

rm_status rm_score_item(rm_model *m, const rm_item *item, rm_scores **out) {
    rm_scores *r = NULL;
    if (out) *out = NULL;
    if (!out || !item) {
        rm_err err = {0};
        rm_fail(&err, RM_ERR_INVALID_ARG, "item and out must not be NULL");
        if (m) rm_model_set_error(m, &err);
        return RM_ERR_INVALID_ARG;
    }
    rm_status st = rm_score_batch(m, item, 1, &r);
    if (st) rm_scores_free(r);
    else *out = r;
    return st;
}

rm_status rm_score_messages(rm_model *m, const rm_message *messages, size_t n_messages, rm_scores **out) {
    rm_item it;
    rm_item_init(&it);
    it.messages = messages;
    it.n_messages = n_messages;
    return rm_score_item(m, &it, out);
}

rm_status rm_score(rm_model *m, const char *prompt, const char *response, rm_scores **out) {
    rm_message msgs[2] = {RM_MESSAGE("user", prompt), RM_MESSAGE("assistant", response)};
    return rm_score_messages(m, msgs, 2, out);
}
