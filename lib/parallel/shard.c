/*
 * shard.c - the sharding rule and one rank's slice of the weights
 * (Megatron-style): q/k/v and gate/up split by output rows (heads, ffn
 * rows), o_proj and down_proj by input columns, so a rank's attention and
 * MLP need nothing from the other ranks until the two all-reduces that
 * complete o_proj's and down_proj's sums. A rank reads only its own slices:
 * row ranges stay in the mapping, column ranges are copied (in the file's
 * dtype), and the whole model is never materialised.
 */
#include "parallel/tp.h"

#include <string.h>

#include "pack/pack.h"

rm_status rm_shard_check(const rm_config *c, int tp, rm_err *err) {
    if (tp < 1) return rm_fail(err, RM_ERR_INVALID_ARG, "tensor parallelism over %d ranks", tp);
    if (c->n_heads % tp)
        return rm_fail(err, RM_ERR_INVALID_ARG, "tensor parallelism over %d ranks: the %lld attention heads "
                       "(num_attention_heads) do not divide over %d ranks", tp, (long long)c->n_heads, tp);
    if (c->n_kv_heads % tp && tp % c->n_kv_heads)
        return rm_fail(err, RM_ERR_INVALID_ARG, "tensor parallelism over %d ranks: the %lld key/value heads "
                       "(num_key_value_heads) neither divide over %d ranks nor divide %d (to be replicated)", tp,
                       (long long)c->n_kv_heads, tp, tp);
    if (c->ffn % tp)
        return rm_fail(err, RM_ERR_INVALID_ARG, "tensor parallelism over %d ranks: the intermediate size %lld "
                       "(intermediate_size) does not divide over %d ranks", tp, (long long)c->ffn, tp);
    return RM_OK;
}

void rm_shard_config(const rm_config *full, int tp, int rank, rm_config *local) {
    (void)rank;   /* every rank has the same counts */
    *local = *full;
    local->labels = NULL;
    local->n_heads = full->n_heads / tp;
    /* Fewer kv heads than ranks: each rank keeps the one its query heads read. */
    local->n_kv_heads = full->n_kv_heads % tp == 0 ? full->n_kv_heads / tp : 1;
    local->ffn = full->ffn / tp;
}

/* ------------------------------------------------ slices of the mapped checkpoint */

typedef struct slicer {
    rm_shard *s;
    rm_err *err;
} slicer;

static rm_tensor *next_slice(slicer *x, const rm_tensor *t) {
    rm_tensor *o = &x->s->slices[x->s->n_slices++];
    *o = *t;
    return o;
}

/* Elements [first, first + n) of a 1-D tensor, or rows [first, first + n)
 * of a 2-D one: contiguous, so the slice points into the mapping. */
static const rm_tensor *rows_of(slicer *x, const rm_tensor *t, int64_t first, int64_t n) {
    if (!t) return NULL;
    size_t row_bytes = rm_dtype_size(t->dtype) * (size_t)(t->n_dims == 2 ? t->shape[1] : 1);
    rm_tensor *o = next_slice(x, t);
    o->shape[0] = n;
    o->data = (const char *)t->data + (size_t)first * row_bytes;
    o->n_bytes = (size_t)n * row_bytes;
    return o;
}

/* Columns [first, first + n) of a 2-D tensor: strided in the file, so copied
 * row by row into a buffer of the shard's own. */
static const rm_tensor *cols_of(slicer *x, const rm_tensor *t, int64_t first, int64_t n, rm_status *st) {
    size_t es = rm_dtype_size(t->dtype), rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
    size_t row_bytes = (size_t)n * es, bytes;
    char *buf = rm_mul_ok(rows, row_bytes, &bytes) ? rm_malloc(bytes ? bytes : 1) : NULL;
    if (!buf) {
        *st = rm_fail(x->err, RM_ERR_NOMEM, "tensor-parallel rank %d: out of memory for its %zu bytes of %s",
                      x->s->rank, bytes, t->name);
        return NULL;
    }
    x->s->owned[x->s->n_owned++] = buf;
    const char *src = (const char *)t->data + (size_t)first * es;
    for (size_t r = 0; r < rows; r++) memcpy(buf + r * row_bytes, src + r * cols * es, row_bytes);
    rm_tensor *o = next_slice(x, t);
    o->shape[1] = n;
    o->data = buf;
    o->n_bytes = bytes;
    return o;
}

/* Tensors a layer may slice: q, k, v (+ biases), o, gate, up (+ biases), down. */
#define SLICES_PER_LAYER 12
#define OWNED_PER_LAYER 2

static rm_status slice_checkpoint(rm_shard *s, const rm_config *full, const rm_model_weights *mw, rm_err *err) {
    const rm_config *c = &s->cfg;
    int64_t hd = full->head_dim;
    size_t L = (size_t)full->n_layers;
    s->slices = rm_calloc(L * SLICES_PER_LAYER, sizeof *s->slices);
    s->owned = rm_calloc(L * OWNED_PER_LAYER, sizeof *s->owned);
    s->mw.layers = rm_calloc(L, sizeof *s->mw.layers);
    if (!s->slices || !s->owned || !s->mw.layers)
        return rm_fail(err, RM_ERR_NOMEM, "tensor-parallel rank %d: out of memory", s->rank);
    s->mw.n_layers = mw->n_layers;
    s->mw.embed = mw->embed;
    s->mw.final_norm = mw->final_norm;
    s->mw.lm_head = mw->lm_head;
    s->mw.score = mw->score;
    slicer x = {s, err};
    rm_status st = RM_OK;
    int64_t q0 = s->q_head0 * hd, qn = c->n_heads * hd, k0 = s->kv_head0 * hd, kn = c->n_kv_heads * hd;
    for (size_t l = 0; l < L; l++) {
        const rm_layer_weights *f = &mw->layers[l];
        rm_layer_weights *o = &s->mw.layers[l];
        *o = *f;   /* norms, o_proj / down_proj biases: whole */
        o->wq = rows_of(&x, f->wq, q0, qn);
        o->wk = rows_of(&x, f->wk, k0, kn);
        o->wv = rows_of(&x, f->wv, k0, kn);
        o->bq = rows_of(&x, f->bq, q0, qn);
        o->bk = rows_of(&x, f->bk, k0, kn);
        o->bv = rows_of(&x, f->bv, k0, kn);
        o->w_gate = rows_of(&x, f->w_gate, s->ffn0, c->ffn);
        o->w_up = rows_of(&x, f->w_up, s->ffn0, c->ffn);
        o->b_gate = rows_of(&x, f->b_gate, s->ffn0, c->ffn);
        o->b_up = rows_of(&x, f->b_up, s->ffn0, c->ffn);
        if (!(o->wo = cols_of(&x, f->wo, q0, qn, &st)) || !(o->w_down = cols_of(&x, f->w_down, s->ffn0, c->ffn, &st)))
            return st;
    }
    return RM_OK;
}

/* ------------------------------------------------ a pack rank */

static rm_status from_pack(rm_shard *s, const struct rm_pack *pack, int n_threads, rm_err *err) {
    rm_status st = rm_pack_load_rank(pack, s->rank, n_threads, &s->weights, err);
    if (st) return st;
    /* The pack's tensors are already this rank's slices: bind them to its config. */
    return rm_model_weights_bind(&s->mw, s->weights, &s->cfg, err);
}

rm_status rm_shard_load(rm_shard **out, const rm_shard_source *src, int tp, int rank, int n_threads, rm_err *err) {
    *out = NULL;
    const rm_config *full = src->cfg;
    rm_status st = rm_shard_check(full, tp, err);
    if (st) return st;
    if (rank < 0 || rank >= tp)
        return rm_fail(err, RM_ERR_INVALID_ARG, "tensor-parallel rank %d outside [0, %d)", rank, tp);
    if (!src->pack && (!src->mw || src->mw->n_layers != full->n_layers || !src->mw->layers))
        return rm_fail(err, RM_ERR_INVALID_ARG, "tensor parallelism: no weights bound to the config");
    rm_shard *s = rm_calloc(1, sizeof *s);
    if (!s) return rm_fail(err, RM_ERR_NOMEM, "tensor-parallel rank %d: out of memory", rank);
    s->rank = rank;
    s->tp = tp;
    rm_shard_config(full, tp, rank, &s->cfg);
    s->q_head0 = (int64_t)rank * s->cfg.n_heads;
    s->kv_head0 = full->n_kv_heads % tp == 0 ? (int64_t)rank * s->cfg.n_kv_heads
                                             : (int64_t)rank / (tp / full->n_kv_heads);
    s->ffn0 = (int64_t)rank * s->cfg.ffn;
    st = src->pack ? from_pack(s, src->pack, n_threads, err) : slice_checkpoint(s, full, src->mw, err);
    if (st) {
        rm_shard_free(s);
        return st;
    }
    *out = s;
    return RM_OK;
}

void rm_shard_free(rm_shard *s) {
    if (!s) return;
    if (s->weights) rm_model_weights_free(&s->mw);   /* bound by the binder: it owns the layer array */
    else rm_mfree(s->mw.layers);
    for (size_t i = 0; i < s->n_owned; i++) rm_mfree(s->owned[i]);
    rm_mfree(s->owned);
    rm_mfree(s->slices);
    rm_weights_close(s->weights);
    rm_mfree(s);
}
