/*
 * forward.c - the CUDA forward pass over a packed batch.
 *
 * Calls queue for the engine (a ticket lock: first come, first served), then
 * run alone on the engine's stream, so each gives bitwise what it gives
 * alone. A batch larger than the arena is split into passes of whole
 * sequences; a sequence whose parent fell into an earlier pass recomputes
 * its prefix. Per pass: the index arrays go up in one copy, then
 *
 *   x = embed[tokens]                                         fp32 residual
 *   per layer:  h = norm(x += delta)   qkv = h W_qkv^T (+bias, q/k-norm, RoPE)
 *               h = attention(q, k, v) delta = h W_o^T
 *               h = norm(x += delta)   delta = down(silu(gate) * up), in tiles
 *   last layer: K, V for every row; Q, attention, o_proj and the MLP only for
 *               each sequence's last token (xs, gathered from x)
 *   x[S] = final_norm(xs += delta)                            fp32, to the host
 *
 * In FP8 each GEMM's input is quantised per row (per tensor in the fallback)
 * just before it. Every launch and GEMM is checked; the first device error
 * becomes the engine's sticky status (cu_engine_fail).
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "cuda_engine.h"
#include "extras.h"
#include "kernels.h"

/* A pass: sequences [s0, s0 + n_seqs) of the batch, and where its index
 * arrays lie on the device (packed one after another in e->meta_dev). */
typedef struct pass {
    size_t s0, n_seqs, rows, keys;
    int max_q, max_keys;
    const int32_t *tok, *pos, *q_begin, *q_pos0, *key_off, *key_rows, *last_rows, *last_pos, *last_begin;
} pass;

/* What one forward call carries through its passes. */
typedef struct runner {
    rm_engine *e;
    rm_err *err;
    rm_cuda_profile *prof;      /* NULL unless profiling */
    cudaEvent_t *ev;
    int *ev_kind;
    size_t n_ev, cap_ev;
    cu_gemm_call *record;       /* profiling: the GEMMs run, for the replay */
    size_t cap_record;
} runner;

/* A GEMM's X operand: bf16 rows, or e4m3 rows with their scale(s). */
typedef struct operand {
    const void *x;
    size_t ld;                  /* row stride, elements */
    size_t elt;                 /* bytes per element */
    const float *scale;         /* FP8: per row, or the one per-tensor scale */
    int per_row;
} operand;

static rm_status mark(runner *r, rm_cuda_work kind) {
    if (!r->prof || r->n_ev >= r->cap_ev) return RM_OK;
    cudaError_t ce = cudaEventRecord(r->ev[r->n_ev], r->e->stream);
    if (ce != cudaSuccess) return rm_cu_fail(r->e->gpu, r->err, ce, "cudaEventRecord");
    r->ev_kind[r->n_ev++] = (int)kind;
    return RM_OK;
}

/* A launch, checked, then marked as work of `kind` when profiling. */
#define STEP(kind, call)                                                            \
    do {                                                                            \
        cudaError_t ce_ = (call);                                                   \
        if (ce_ != cudaSuccess) return rm_cu_fail(r->e->gpu, r->err, ce_, #call);  \
        rm_status ms_ = mark(r, (kind));                                            \
        if (ms_) return ms_;                                                        \
    } while (0)

#define TRY(call)                                                                   \
    do {                                                                            \
        rm_status st_ = (call);                                                     \
        if (st_) return st_;                                                        \
    } while (0)

/* ---------------------------------------------------------------- the batch */

static size_t shared_of(const rm_batch *b, size_t s) { return b->shared_len ? b->shared_len[s] : 0; }

static rm_status check_batch(const rm_engine *e, const rm_batch *b, rm_err *err) {
    if (!b->tokens || !b->n_tokens) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: batch without tokens");
    if ((b->parent == NULL) != (b->shared_len == NULL))
        return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: batch has parent without shared_len or the reverse");
    for (size_t s = 0; s < b->n_seqs; s++) {
        size_t n = b->n_tokens[s], shared = shared_of(b, s);
        if (n == 0) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: sequence %zu is empty", s);
        if (!b->tokens[s]) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: sequence %zu has NULL tokens", s);
        if (e->cfg.max_pos > 0 && n > (size_t)e->cfg.max_pos)
            return rm_fail(err, RM_ERR_TOO_LONG, "cuda engine: sequence %zu has %zu tokens, more than %lld positions",
                           s, n, (long long)e->cfg.max_pos);
        if (n > e->arena.tokens)
            return rm_fail(err, RM_ERR_TOO_LONG, "cuda engine: sequence %zu has %zu tokens, more than the %zu token "
                           "rows one pass holds on GPU %d (the activation arena: raise max_device_bytes or free "
                           "device memory)", s, n, e->arena.tokens, e->gpu);
        if (shared) {
            int32_t par = b->parent[s];
            if (par < 0 || (size_t)par >= s)
                return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: sequence %zu: parent %d is not an earlier "
                               "sequence", s, (int)par);
            if (shared > n || shared > b->n_tokens[par])
                return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: sequence %zu: shared_len %zu longer than the "
                               "sequence or its parent", s, shared);
            if (memcmp(b->tokens[s], b->tokens[par], shared * sizeof(int32_t)))
                return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: sequence %zu: the first %zu tokens differ "
                               "from those of parent %d", s, shared, (int)par);
        }
        for (size_t i = shared; i < n; i++) {
            int32_t t = b->tokens[s][i];
            if (t < 0 || t >= e->cfg.vocab)
                return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: token id %d at position %zu of sequence %zu "
                               "is outside the vocabulary [0, %lld)", (int)t, i, s, (long long)e->cfg.vocab);
        }
    }
    return RM_OK;
}

/* Tokens sequence s shares with a parent in the same pass (starting at s0). */
static size_t pass_shared(const rm_batch *b, size_t s, size_t s0) {
    size_t shared = shared_of(b, s);
    return shared && (size_t)b->parent[s] >= s0 ? shared : 0;
}

/* The sequences from s0 that fit one pass: rows, sequences and keys within the arena. */
static size_t pass_end(const rm_engine *e, const rm_batch *b, size_t s0) {
    size_t rows = 0, keys = 0, s = s0;
    for (; s < b->n_seqs; s++) {
        size_t n = b->n_tokens[s], own = n - pass_shared(b, s, s0);
        if (s > s0 && (rows + own > e->arena.tokens || s - s0 + 1 > e->arena.seqs || keys + n > e->meta.keys)) break;
        rows += own;
        keys += n;
    }
    return s;
}

/* Fills the pass's index arrays on the host (pinned), packed, and sends them
 * up in one copy. */
static rm_status pass_prepare(runner *r, const rm_batch *b, size_t s0, size_t s1, pass *p) {
    rm_engine *e = r->e;
    size_t S = s1 - s0, R = 0, K = 0;
    for (size_t s = s0; s < s1; s++) {
        R += b->n_tokens[s] - pass_shared(b, s, s0);
        K += b->n_tokens[s];
    }
    int32_t *h = e->meta_host;
    size_t o_tok = 0, o_pos = R, o_qb = 2 * R, o_qp = o_qb + S + 1, o_ko = o_qp + S, o_kr = o_ko + S + 1,
           o_lr = o_kr + K, o_lp = o_lr + S, o_lb = o_lp + S, total = o_lb + S + 1;
    size_t row = 0, key = 0;
    p->max_q = 0;
    p->max_keys = 0;
    for (size_t i = 0; i < S; i++) {
        size_t s = s0 + i, n = b->n_tokens[s], shared = pass_shared(b, s, s0);
        h[o_qb + i] = (int32_t)row;
        h[o_qp + i] = (int32_t)shared;
        h[o_ko + i] = (int32_t)key;
        if (shared) {   /* the parent's rows for the shared prefix: computed once */
            size_t parent_keys = (size_t)h[o_ko + (size_t)b->parent[s] - s0];
            memcpy(h + o_kr + key, h + o_kr + parent_keys, shared * sizeof(int32_t));
        }
        for (size_t j = shared; j < n; j++, row++) {
            h[o_kr + key + j] = (int32_t)row;
            h[o_tok + row] = b->tokens[s][j];
            h[o_pos + row] = (int32_t)j;
        }
        h[o_lr + i] = h[o_kr + key + n - 1];
        h[o_lp + i] = (int32_t)(n - 1);
        h[o_lb + i] = (int32_t)i;
        key += n;
        if ((int)(n - shared) > p->max_q) p->max_q = (int)(n - shared);
        if ((int)n > p->max_keys) p->max_keys = (int)n;
    }
    h[o_qb + S] = (int32_t)row;
    h[o_ko + S] = (int32_t)key;
    h[o_lb + S] = (int32_t)S;
    const int32_t *d = e->meta_dev;
    *p = (pass){.s0 = s0, .n_seqs = S, .rows = R, .keys = K, .max_q = p->max_q, .max_keys = p->max_keys,
                .tok = d + o_tok, .pos = d + o_pos, .q_begin = d + o_qb, .q_pos0 = d + o_qp, .key_off = d + o_ko,
                .key_rows = d + o_kr, .last_rows = d + o_lr, .last_pos = d + o_lp, .last_begin = d + o_lb};
    STEP(RM_CUDA_WORK_OTHER, cudaMemcpyAsync(e->meta_dev, h, total * sizeof(int32_t), cudaMemcpyHostToDevice,
                                             e->stream));
    return RM_OK;
}

/* ---------------------------------------------------------------- GEMMs */

/* The X operand of a GEMM from bf16 rows: as they are, or quantised to e4m3
 * into q / scales (tensor_slot: which pair of the arena's per-tensor floats). */
static rm_status operand_of(runner *r, const uint16_t *x, size_t ld, size_t rows, size_t cols, uint8_t *q,
                            float *scales, int tensor_slot, operand *out) {
    rm_engine *e = r->e;
    if (e->kind == CU_GEMM_BF16) {
        *out = (operand){x, ld, 2, NULL, 0};
        return RM_OK;
    }
    if (e->kind == CU_GEMM_FP8_ROWS) {
        STEP(RM_CUDA_WORK_QUANTIZE, rm_cu_quantize_fp8_rows(x, ld, rows, cols, q, scales, e->stream));
        *out = (operand){q, cols, 1, scales, 1};
        return RM_OK;
    }
    float *amax = (float *)(e->arena_base + e->arena.tensor_scales) + 2 * tensor_slot, *scale = amax + 1;
    STEP(RM_CUDA_WORK_QUANTIZE, cudaMemsetAsync(amax, 0, sizeof(float), e->stream));
    STEP(RM_CUDA_WORK_QUANTIZE, rm_cu_amax_bf16(x, ld, rows, cols, amax, e->stream));
    STEP(RM_CUDA_WORK_QUANTIZE, rm_cu_quantize_fp8_tensor(x, ld, rows, cols, amax, q, cols, scale, e->stream));
    *out = (operand){q, cols, 1, scale, 0};
    return RM_OK;
}

/* Rows [first, first + n) of an operand. */
static operand operand_rows(const operand *a, size_t first) {
    operand o = *a;
    o.x = (const char *)a->x + first * a->ld * a->elt;
    if (a->per_row) o.scale = a->scale + first;
    return o;
}

/* y[m, n] = x[m, k] . w[row0 .. row0 + n)^T */
static rm_status gemm(runner *r, const operand *x, size_t m, const cu_matrix *w, int64_t row0, int64_t n, uint16_t *y,
                      size_t ldy) {
    rm_engine *e = r->e;
    size_t elt = e->kind == CU_GEMM_BF16 ? 2 : 1;
    cu_gemm_call c = {.kind = e->kind, .m = (int)m, .n = (int)n, .k = (int)w->cols, .x = x->x, .ldx = x->ld,
                      .x_scale = x->scale, .w = (const char *)w->data + (size_t)row0 * (size_t)w->cols * elt,
                      .ldw = (size_t)w->cols, .w_scale = e->kind == CU_GEMM_FP8_ROWS ? w->scales + row0 : w->scales,
                      .y = y, .ldy = ldy};
    TRY(cu_gemm_run(&e->gemm, &c, e->stream, r->err));
    if (r->prof) r->prof->gemm_flops += 2.0 * (double)m * (double)n * (double)w->cols;
    return mark(r, RM_CUDA_WORK_GEMM);
}

/* Partial sums of tensor parallelism, then the bias. */
static rm_status reduce_and_bias(runner *r, uint16_t *y, size_t rows, size_t cols, const uint16_t *bias) {
    rm_engine *e = r->e;
    if (e->comm) {
        TRY(rm_comm_all_reduce(e->comm, y, rows * cols, RM_COMM_BF16, e->stream, r->err));
        TRY(mark(r, RM_CUDA_WORK_OTHER));
    }
    if (bias) STEP(RM_CUDA_WORK_OTHER, rm_cu_add_bias(y, cols, bias, rows, cols, e->stream));
    return RM_OK;
}

/* ---------------------------------------------------------------- a layer */

typedef struct buffers {
    float *x, *xs;
    uint16_t *delta, *h, *qkv, *gate_up, *act;
    uint8_t *a8, *act8;
    float *a_scale, *act_scale;
} buffers;

static buffers buffers_of(const rm_engine *e) {
    char *a = e->arena_base;
    const cu_arena_layout *l = &e->arena;
    return (buffers){(float *)(a + l->x), (float *)(a + l->xs), (uint16_t *)(a + l->delta), (uint16_t *)(a + l->h),
                     (uint16_t *)(a + l->qkv), (uint16_t *)(a + l->gate_up), (uint16_t *)(a + l->act),
                     (uint8_t *)(a + l->a8), (uint8_t *)(a + l->act8), (float *)(a + l->a_scale),
                     (float *)(a + l->act_scale)};
}

/* delta[rows] = down(silu(h gate) * (h up)), in tiles of the arena's MLP rows. */
static rm_status mlp(runner *r, const cu_layer *L, const buffers *B, size_t rows) {
    rm_engine *e = r->e;
    size_t H = (size_t)e->H, F = (size_t)e->F, M = e->arena.mlp_rows;
    operand in;
    TRY(operand_of(r, B->h, H, rows, H, B->a8, B->a_scale, 0, &in));
    for (size_t r0 = 0; r0 < rows; r0 += M) {
        size_t n = rows - r0 < M ? rows - r0 : M;
        operand tile = operand_rows(&in, r0), act;
        TRY(gemm(r, &tile, n, &L->gate_up, 0, 2 * e->F, B->gate_up, 2 * F));
        if (L->gate_up_bias)
            STEP(RM_CUDA_WORK_OTHER, rm_cu_add_bias(B->gate_up, 2 * F, L->gate_up_bias, n, 2 * F, e->stream));
        STEP(RM_CUDA_WORK_OTHER, rm_cu_silu_mul(B->act, B->gate_up, 2 * F, n, F, e->stream));
        TRY(operand_of(r, B->act, F, n, F, B->act8, B->act_scale, 1, &act));
        TRY(gemm(r, &act, n, &L->down, 0, e->H, B->delta + r0 * H, H));
    }
    return reduce_and_bias(r, B->delta, rows, H, L->down_bias);
}

static void count_attention(runner *r, double pairs) {
    if (r->prof) r->prof->attention_flops += 4.0 * (double)r->e->cfg.head_dim * (double)r->e->cfg.n_heads * pairs;
}

/* A layer but the last: every row is a query; x is updated in place. */
static rm_status layer_all_rows(runner *r, const rm_batch *b, const pass *p, int64_t l, const buffers *B) {
    rm_engine *e = r->e;
    const cu_layer *L = &e->layers[l];
    const rm_config *c = &e->cfg;
    size_t R = p->rows, H = (size_t)e->H, QD = (size_t)e->QD, KD = (size_t)e->KD, P = (size_t)e->P,
           NH = (size_t)c->n_heads, NKV = (size_t)c->n_kv_heads, HD = (size_t)c->head_dim;
    float eps = (float)c->rms_eps;
    cudaStream_t st = e->stream;
    STEP(RM_CUDA_WORK_OTHER, rm_cu_add_rmsnorm(B->x, l ? B->delta : NULL, H, L->attn_norm, B->h, NULL, R, H, eps, st));
    operand in;
    TRY(operand_of(r, B->h, H, R, H, B->a8, B->a_scale, 0, &in));
    TRY(gemm(r, &in, R, &L->qkv, 0, e->P, B->qkv, P));
    if (L->qkv_bias) STEP(RM_CUDA_WORK_OTHER, rm_cu_add_bias(B->qkv, P, L->qkv_bias, R, P, st));
    if (L->q_norm) {
        STEP(RM_CUDA_WORK_OTHER, rm_cu_head_rmsnorm(B->qkv, P, L->q_norm, R, NH, HD, eps, st));
        STEP(RM_CUDA_WORK_OTHER, rm_cu_head_rmsnorm(B->qkv + QD, P, L->k_norm, R, NKV, HD, eps, st));
    }
    STEP(RM_CUDA_WORK_OTHER, rm_cu_rope(B->qkv, P, R, NH, HD, p->pos, e->inv_freq, st));
    STEP(RM_CUDA_WORK_OTHER, rm_cu_rope(B->qkv + QD, P, R, NKV, HD, p->pos, e->inv_freq, st));
    rm_cu_attn a = {.q = B->qkv, .k = B->qkv + QD, .v = B->qkv + QD + KD, .out = B->h, .q_stride = P,
                    .kv_stride = P, .out_stride = QD, .n_heads = (int)NH, .n_kv_heads = (int)NKV,
                    .head_dim = (int)HD, .scale = (float)(1.0 / sqrt((double)HD)), .n_seqs = (int)p->n_seqs,
                    .max_q = p->max_q, .max_keys = p->max_keys, .q_begin = p->q_begin, .q_pos0 = p->q_pos0,
                    .key_off = p->key_off, .key_rows = p->key_rows};
    STEP(RM_CUDA_WORK_ATTENTION, rm_cu_attention(&a, st));
    if (r->prof)
        for (size_t s = p->s0; s < p->s0 + p->n_seqs; s++) {
            double n = (double)b->n_tokens[s], sh = (double)pass_shared(b, s, p->s0);
            count_attention(r, (n * (n + 1) - sh * (sh + 1)) / 2);
        }
    TRY(operand_of(r, B->h, QD, R, QD, B->a8, B->a_scale, 0, &in));
    TRY(gemm(r, &in, R, &L->o, 0, e->H, B->delta, H));
    TRY(reduce_and_bias(r, B->delta, R, H, L->o_bias));
    STEP(RM_CUDA_WORK_OTHER, rm_cu_add_rmsnorm(B->x, B->delta, H, L->mlp_norm, B->h, NULL, R, H, eps, st));
    TRY(mlp(r, L, B, R));
    rm_counter_add(&e->layer_tokens[l], R);
    rm_counter_add(&e->counts.tokens_computed, R);
    return RM_OK;
}

/* The last layer: K and V for every row (later queries' keys), the rest only
 * for each sequence's last token, whose residual rows move to xs. */
static rm_status layer_last(runner *r, const rm_batch *b, const pass *p, int64_t l, const buffers *B) {
    rm_engine *e = r->e;
    const cu_layer *L = &e->layers[l];
    const rm_config *c = &e->cfg;
    size_t R = p->rows, S = p->n_seqs, H = (size_t)e->H, QD = (size_t)e->QD, KD = (size_t)e->KD, P = (size_t)e->P,
           NH = (size_t)c->n_heads, NKV = (size_t)c->n_kv_heads, HD = (size_t)c->head_dim;
    float eps = (float)c->rms_eps;
    cudaStream_t st = e->stream;
    operand in;
    if (R) {
        STEP(RM_CUDA_WORK_OTHER, rm_cu_add_rmsnorm(B->x, l ? B->delta : NULL, H, L->attn_norm, B->h, NULL, R, H, eps, st));
        TRY(operand_of(r, B->h, H, R, H, B->a8, B->a_scale, 0, &in));
        TRY(gemm(r, &in, R, &L->qkv, e->QD, 2 * e->KD, B->qkv + QD, P));
        if (L->qkv_bias) STEP(RM_CUDA_WORK_OTHER, rm_cu_add_bias(B->qkv + QD, P, L->qkv_bias + QD, R, 2 * KD, st));
        if (L->k_norm) STEP(RM_CUDA_WORK_OTHER, rm_cu_head_rmsnorm(B->qkv + QD, P, L->k_norm, R, NKV, HD, eps, st));
        STEP(RM_CUDA_WORK_OTHER, rm_cu_rope(B->qkv + QD, P, R, NKV, HD, p->pos, e->inv_freq, st));
    }
    /* The last tokens' rows: x already holds the residual add above. */
    STEP(RM_CUDA_WORK_OTHER, rm_cu_gather_rows(B->xs, B->x, p->last_rows, S, H, st));
    STEP(RM_CUDA_WORK_OTHER, rm_cu_add_rmsnorm(B->xs, NULL, 0, L->attn_norm, B->h, NULL, S, H, eps, st));
    /* Their queries go in the Q columns of qkv rows 0 .. S, unused in this layer. */
    TRY(operand_of(r, B->h, H, S, H, B->a8, B->a_scale, 0, &in));
    TRY(gemm(r, &in, S, &L->qkv, 0, e->QD, B->qkv, P));
    if (L->qkv_bias) STEP(RM_CUDA_WORK_OTHER, rm_cu_add_bias(B->qkv, P, L->qkv_bias, S, QD, st));
    if (L->q_norm) STEP(RM_CUDA_WORK_OTHER, rm_cu_head_rmsnorm(B->qkv, P, L->q_norm, S, NH, HD, eps, st));
    STEP(RM_CUDA_WORK_OTHER, rm_cu_rope(B->qkv, P, S, NH, HD, p->last_pos, e->inv_freq, st));
    rm_cu_attn a = {.q = B->qkv, .k = B->qkv + QD, .v = B->qkv + QD + KD, .out = B->h, .q_stride = P,
                    .kv_stride = P, .out_stride = QD, .n_heads = (int)NH, .n_kv_heads = (int)NKV,
                    .head_dim = (int)HD, .scale = (float)(1.0 / sqrt((double)HD)), .n_seqs = (int)S, .max_q = 1,
                    .max_keys = p->max_keys, .q_begin = p->last_begin, .q_pos0 = p->last_pos,
                    .key_off = p->key_off, .key_rows = p->key_rows};
    STEP(RM_CUDA_WORK_ATTENTION, rm_cu_attention(&a, st));
    if (r->prof)
        for (size_t s = p->s0; s < p->s0 + S; s++) count_attention(r, (double)b->n_tokens[s]);
    TRY(operand_of(r, B->h, QD, S, QD, B->a8, B->a_scale, 0, &in));
    TRY(gemm(r, &in, S, &L->o, 0, e->H, B->delta, H));
    TRY(reduce_and_bias(r, B->delta, S, H, L->o_bias));
    STEP(RM_CUDA_WORK_OTHER, rm_cu_add_rmsnorm(B->xs, B->delta, H, L->mlp_norm, B->h, NULL, S, H, eps, st));
    TRY(mlp(r, L, B, S));
    rm_counter_add(&e->layer_tokens[l], S);
    rm_counter_add(&e->counts.tokens_computed, S);
    return RM_OK;
}

/* ---------------------------------------------------------------- a pass */

static rm_status pass_run(runner *r, const rm_batch *b, size_t s0, size_t s1, float *out_hidden) {
    rm_engine *e = r->e;
    pass p;
    TRY(pass_prepare(r, b, s0, s1, &p));
    buffers B = buffers_of(e);
    size_t H = (size_t)e->H;
    if (p.rows) STEP(RM_CUDA_WORK_OTHER, rm_cu_embedding(B.x, e->embed, p.tok, p.rows, H, e->stream));
    int64_t last = e->cfg.n_layers - 1;
    for (int64_t l = 0; l < last; l++) TRY(layer_all_rows(r, b, &p, l, &B));
    TRY(layer_last(r, b, &p, last, &B));
    /* The final norm, in fp32 for the heads, into x (free by now). */
    STEP(RM_CUDA_WORK_OTHER, rm_cu_add_rmsnorm(B.xs, B.delta, H, e->final_norm, NULL, B.x, p.n_seqs, H,
                                               (float)e->cfg.rms_eps, e->stream));
    STEP(RM_CUDA_WORK_OTHER, cudaMemcpyAsync(out_hidden + s0 * H, B.x, p.n_seqs * H * sizeof(float),
                                             cudaMemcpyDeviceToHost, e->stream));
    if (e->comm) {   /* bounded, and watching the other ranks: a dead peer never hangs this pass */
        TRY(e->comm->ops->wait(e->comm, e->stream, r->err));
    } else {
        cudaError_t ce = cudaStreamSynchronize(e->stream);
        if (ce != cudaSuccess) return rm_cu_fail(e->gpu, r->err, ce, "cudaStreamSynchronize");
    }
    rm_counter_add(&e->counts.tokens_last_layer, p.n_seqs);
    rm_counter_add(&e->counts.weight_bytes_read,
                   (uint64_t)(e->slab_bytes - (size_t)e->cfg.vocab * H * 2) + (uint64_t)p.rows * H * 2);
    return RM_OK;
}

/* Adds the pass's event intervals to the profile's kinds. */
static rm_status profile_collect(runner *r) {
    for (size_t i = 1; i < r->n_ev; i++) {
        float ms = 0;
        cudaError_t ce = cudaEventElapsedTime(&ms, r->ev[i - 1], r->ev[i]);
        if (ce != cudaSuccess) return rm_cu_fail(r->e->gpu, r->err, ce, "cudaEventElapsedTime");
        r->prof->seconds[r->ev_kind[i]] += ms * 1e-3;
    }
    r->n_ev = 0;
    return mark(r, RM_CUDA_WORK_OTHER);   /* the next pass's first interval starts here */
}

/* ---------------------------------------------------------------- the queue */

static void queue_enter(cu_queue *q) {
    pthread_mutex_lock(&q->lock);
    uint64_t ticket = q->next_ticket++;
    while (ticket != q->serving) pthread_cond_wait(&q->turn, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

static void queue_leave(cu_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->serving++;
    pthread_cond_broadcast(&q->turn);
    pthread_mutex_unlock(&q->lock);
}

static rm_status run_batch(runner *r, const rm_batch *b, float *out_hidden) {
    rm_engine *e = r->e;
    size_t passes = 0;
    for (size_t s0 = 0; s0 < b->n_seqs; passes++) {
        size_t s1 = pass_end(e, b, s0);
        TRY(pass_run(r, b, s0, s1, out_hidden));
        if (r->prof) TRY(profile_collect(r));
        s0 = s1;
    }
    if (r->prof) r->prof->passes += passes;
    rm_counter_add(&e->counts.forward_passes, 1);
    return RM_OK;
}

/* Runs fn under the queue, on the engine's GPU, with the sticky checks. */
static rm_status guarded(runner *r, const rm_batch *b, float *out_hidden,
                         rm_status (*fn)(runner *, const rm_batch *, float *)) {
    rm_engine *e = r->e;
    queue_enter(&e->queue);
    rm_cu_device_guard g;
    rm_status st = e->sticky ? rm_fail(r->err, e->sticky, "%s", e->sticky_msg) : RM_OK;
    if (!st) st = rm_cu_device_enter(&g, e->gpu, r->err);
    if (!st) {
        st = fn(r, b, out_hidden);
        rm_cu_device_leave(&g);
        if (st == RM_ERR_DEVICE) cu_engine_fail(e, st, r->err);
    }
    queue_leave(&e->queue);
    return st;
}

rm_status cu_forward(rm_engine *e, const rm_batch *b, float *out_hidden, rm_err *err) {
    if (!e || !b || !out_hidden) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL argument to forward");
    if (b->n_seqs == 0) return RM_OK;
    rm_status st = check_batch(e, b, err);
    if (st) return st;
    runner r = {.e = e, .err = err};
    return guarded(&r, b, out_hidden, run_batch);
}

/* ---------------------------------------------------------------- profiling */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every GEMM the pass recorded, run again back to back: the cuBLASLt rate at
 * exactly the forward's shapes, on its operands (the arena still holds them). */
static rm_status replay(runner *r) {
    rm_engine *e = r->e;
    cu_gemm *g = &e->gemm;
    size_t n = g->n_record;
    cu_gemm_call *calls = g->record;
    g->record = NULL;           /* the replay itself is not recorded */
    STEP(RM_CUDA_WORK_GEMM, cudaEventRecord(r->ev[0], e->stream));
    for (size_t i = 0; i < n; i++) TRY(cu_gemm_run(g, &calls[i], e->stream, r->err));
    STEP(RM_CUDA_WORK_GEMM, cudaEventRecord(r->ev[1], e->stream));
    STEP(RM_CUDA_WORK_GEMM, cudaEventSynchronize(r->ev[1]));
    float ms = 0;
    STEP(RM_CUDA_WORK_GEMM, cudaEventElapsedTime(&ms, r->ev[0], r->ev[1]));
    r->prof->gemm_replay_seconds = ms * 1e-3;
    double flops = 0;
    for (size_t i = 0; i < n; i++) flops += 2.0 * calls[i].m * (double)calls[i].n * (double)calls[i].k;
    r->prof->gemm_replay_flops = flops;
    return RM_OK;
}

static rm_status profile_batch(runner *r, const rm_batch *b, float *out_hidden) {
    rm_engine *e = r->e;
    rm_status st = RM_OK;
    size_t made = 0;
    for (; made < r->cap_ev; made++) {
        cudaError_t ce = cudaEventCreate(&r->ev[made]);
        if (ce != cudaSuccess) {
            st = rm_cu_fail(e->gpu, r->err, ce, "cudaEventCreate");
            break;
        }
    }
    if (!st) {
        e->gemm.record = r->record;
        e->gemm.n_record = 0;
        e->gemm.cap_record = r->cap_record;
        double t0 = now_seconds();
        st = mark(r, RM_CUDA_WORK_OTHER);
        if (!st) st = run_batch(r, b, out_hidden);
        r->prof->seconds_total = now_seconds() - t0;
        r->n_ev = 0;
        if (!st && r->prof->replay_gemms) st = replay(r);
        e->gemm.record = NULL;
    }
    for (size_t i = 0; i < made; i++) cudaEventDestroy(r->ev[i]);
    return st;
}

rm_status cu_profile(rm_engine *e, const rm_batch *b, float *out_hidden, rm_cuda_profile *prof, rm_err *err) {
    if (!e || !b || !out_hidden || !prof)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL argument to profile");
    int replay_gemms = prof->replay_gemms;
    memset(prof, 0, sizeof *prof);
    prof->replay_gemms = replay_gemms;
    prof->fp8_scaling = e->kind;
    prof->fast_accum = e->gemm.fast_accum;
    if (b->n_seqs == 0) return RM_OK;
    rm_status st = check_batch(e, b, err);
    if (st) return st;
    /* Events for one pass (8-12 marks a layer before the MLP, 3-9 per MLP
     * tile of 4096 rows), GEMM calls for every pass. */
    size_t L = (size_t)e->cfg.n_layers, tiles = (e->arena.tokens + e->arena.mlp_rows - 1) / e->arena.mlp_rows;
    runner r = {.e = e, .err = err, .prof = prof, .cap_ev = (16 + 10 * tiles) * L + 64,
                .cap_record = (4 + 2 * tiles) * L * 4 + 1024};
    r.ev = rm_calloc(r.cap_ev, sizeof *r.ev);
    r.ev_kind = rm_calloc(r.cap_ev, sizeof *r.ev_kind);
    r.record = rm_calloc(r.cap_record, sizeof *r.record);
    if (!r.ev || !r.ev_kind || !r.record) st = rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of memory for a profile");
    else st = guarded(&r, b, out_hidden, profile_batch);
    rm_mfree(r.ev);
    rm_mfree(r.ev_kind);
    rm_mfree(r.record);
    return st;
}
