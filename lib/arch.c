/*
 * arch.c - binds a checkpoint's tensors to the architecture the config names:
 * finds every tensor by the name Hugging Face writes and checks its shape
 * against the config, so an engine can trust every size it reads.
 * Tensors the architecture does not use (rotary inv_freq, ...) are ignored.
 */
#include "weights.h"

#include <stdio.h>
#include <string.h>

typedef struct binder {
    const rm_weights *w;
    rm_err *err;
} binder;

static int shape_str(char *buf, size_t cap, int n_dims, const int64_t *shape) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, cap - off, "[");
    for (int d = 0; d < n_dims && off < cap; d++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (off < cap) snprintf(buf + off, cap - off, "]");
    return 0;
}

/* Finds `name` and checks it has the n_dims-dimensional shape given. */
static rm_status need(const binder *b, const char *name, int n_dims, int64_t d0, int64_t d1,
                      const rm_tensor **out) {
    const rm_tensor *t = rm_weights_find(b->w, name);
    *out = NULL;
    if (!t)
        return rm_fail(b->err, RM_ERR_FORMAT, "%s: tensor \"%s\" is missing from the checkpoint",
                       rm_weights_dir(b->w), name);
    int64_t want[2] = {d0, d1};
    int ok = t->n_dims == n_dims;
    for (int d = 0; ok && d < n_dims; d++) ok = t->shape[d] == want[d];
    if (!ok) {
        char exp[64], got[128];
        shape_str(exp, sizeof exp, n_dims, want);
        shape_str(got, sizeof got, t->n_dims, t->shape);
        return rm_fail(b->err, RM_ERR_SHAPE, "%s: tensor \"%s\": expected shape %s from the config, found %s",
                       rm_weights_shard_file(b->w, t->shard), name, exp, got);
    }
    *out = t;
    return RM_OK;
}

#define NEED1(name, n, out) need(b, name, 1, n, 0, out)
#define NEED2(name, r, c, out) need(b, name, 2, r, c, out)

/* An e4m3 projection (an FP8 pack) comes with "<name>_scale", one fp32 per
 * row; other dtypes have none. */
static rm_status need_scale(const binder *b, const rm_tensor *t, const rm_tensor **out) {
    *out = NULL;
    if (t->dtype != RM_DT_F8_E4M3) return RM_OK;
    char name[512];
    snprintf(name, sizeof name, "%s_scale", t->name);
    rm_status st = NEED1(name, t->shape[0], out);
    if (!st && (*out)->dtype != RM_DT_F32)
        st = rm_fail(b->err, RM_ERR_FORMAT, "%s: tensor \"%s\" must be F32", rm_weights_dir(b->w), name);
    return st;
}

static rm_status bind_layer(const binder *b, const rm_config *cfg, int64_t i, rm_layer_weights *L) {
    char name[160];
    const int64_t h = cfg->hidden, q = cfg->n_heads * cfg->head_dim, kv = cfg->n_kv_heads * cfg->head_dim;
    rm_status st;
#define NAME(suffix) (snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)i, suffix), name)
    if ((st = NEED1(NAME("input_layernorm.weight"), h, &L->attn_norm)) ||
        (st = NEED2(NAME("self_attn.q_proj.weight"), q, h, &L->wq)) ||
        (st = NEED2(NAME("self_attn.k_proj.weight"), kv, h, &L->wk)) ||
        (st = NEED2(NAME("self_attn.v_proj.weight"), kv, h, &L->wv)) ||
        (st = NEED2(NAME("self_attn.o_proj.weight"), h, q, &L->wo)) ||
        (st = NEED1(NAME("post_attention_layernorm.weight"), h, &L->mlp_norm)) ||
        (st = NEED2(NAME("mlp.gate_proj.weight"), cfg->ffn, h, &L->w_gate)) ||
        (st = NEED2(NAME("mlp.up_proj.weight"), cfg->ffn, h, &L->w_up)) ||
        (st = NEED2(NAME("mlp.down_proj.weight"), h, cfg->ffn, &L->w_down)))
        return st;
    const rm_tensor *proj[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    for (int k = 0; k < 7; k++)
        if ((st = need_scale(b, proj[k], &L->scale[k]))) return st;
    if (cfg->qkv_bias &&
        ((st = NEED1(NAME("self_attn.q_proj.bias"), q, &L->bq)) ||
         (st = NEED1(NAME("self_attn.k_proj.bias"), kv, &L->bk)) ||
         (st = NEED1(NAME("self_attn.v_proj.bias"), kv, &L->bv))))
        return st;
    if (cfg->o_bias && (st = NEED1(NAME("self_attn.o_proj.bias"), h, &L->bo))) return st;
    if (cfg->qk_norm &&
        ((st = NEED1(NAME("self_attn.q_norm.weight"), cfg->head_dim, &L->q_norm)) ||
         (st = NEED1(NAME("self_attn.k_norm.weight"), cfg->head_dim, &L->k_norm))))
        return st;
    if (cfg->mlp_bias &&
        ((st = NEED1(NAME("mlp.gate_proj.bias"), cfg->ffn, &L->b_gate)) ||
         (st = NEED1(NAME("mlp.up_proj.bias"), cfg->ffn, &L->b_up)) ||
         (st = NEED1(NAME("mlp.down_proj.bias"), h, &L->b_down))))
        return st;
#undef NAME
    return RM_OK;
}

rm_status rm_model_weights_bind(rm_model_weights *mw, const rm_weights *w, const rm_config *cfg, rm_err *err) {
    memset(mw, 0, sizeof *mw);
    if (!w || !cfg || cfg->n_layers <= 0)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_model_weights_bind: no weights or no config");
    binder bd = {w, err}, *b = &bd;
    rm_status st;
    if ((st = NEED2("model.embed_tokens.weight", cfg->vocab, cfg->hidden, &mw->embed)) ||
        (st = NEED1("model.norm.weight", cfg->hidden, &mw->final_norm)))
        goto fail;
    if (cfg->is_causal_lm) {
        /* Tied: transformers points lm_head at the embedding whether or not a
         * copy was saved, so the embedding is what it computes with. */
        if (cfg->tie_embeddings) mw->lm_head = mw->embed;
        else if ((st = NEED2("lm_head.weight", cfg->vocab, cfg->hidden, &mw->lm_head))) goto fail;
    } else if ((st = NEED2("score.weight", cfg->n_labels, cfg->hidden, &mw->score))) {
        goto fail;
    }
    mw->layers = rm_calloc((size_t)cfg->n_layers, sizeof *mw->layers);
    if (!mw->layers) {
        st = rm_fail(err, RM_ERR_NOMEM, "out of memory for %lld layers", (long long)cfg->n_layers);
        goto fail;
    }
    mw->n_layers = cfg->n_layers;
    for (int64_t i = 0; i < cfg->n_layers; i++)
        if ((st = bind_layer(b, cfg, i, &mw->layers[i]))) goto fail;
    return RM_OK;
fail:
    rm_model_weights_free(mw);
    return st;
}

void rm_model_weights_free(rm_model_weights *mw) {
    if (!mw) return;
    rm_mfree(mw->layers);
    memset(mw, 0, sizeof *mw);
}
