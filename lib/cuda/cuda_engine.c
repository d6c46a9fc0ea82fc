/*
 * cuda_engine.c - the CUDA engine's life: create (checks, the FP8 scaling
 * mode, the weight slab, the memory plan, the upload, a warm-up pass),
 * destroy, counters and the memory report. The forward pass is forward.c.
 */
#include "cuda_engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_ops.h"

#define GEMM_WORKSPACE_BYTES ((size_t)32 << 20)   /* what cuBLASLt's Hopper kernels ask for at most */
#define MAX_HEAD_DIM 256                          /* the attention kernel's bound (kernels.h) */

static double gib(size_t b) { return (double)b / (double)((size_t)1 << 30); }

rm_status cu_engine_fail(rm_engine *e, rm_status st, const rm_err *err) {
    if (st == RM_ERR_DEVICE && !e->sticky) {
        snprintf(e->sticky_msg, sizeof e->sticky_msg, "%s", err ? err->msg : "device error");
        e->sticky = st;
    }
    return st;
}

/* ---------------------------------------------------------------- checks */

static rm_status check_config(const rm_config *c, rm_err *err) {
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->ffn <= 0 || c->vocab <= 0)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: config has a non-positive dimension");
    if (c->n_heads % c->n_kv_heads)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cuda engine: %lld attention heads not a multiple of %lld kv heads",
                       (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->head_dim % 2 || c->head_dim > MAX_HEAD_DIM)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cuda engine: head_dim %lld: the attention kernel takes an even "
                       "head_dim up to %d", (long long)c->head_dim, MAX_HEAD_DIM);
    if (!(c->rope_theta > 0) || (c->rope_type == RM_ROPE_LLAMA3 &&
                                 (!(c->rope_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
                                  !(c->rope_low_freq_factor > 0) || c->rope_orig_max_pos <= 0)))
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cuda engine: bad RoPE parameters (theta %g, factor %g, low %g, "
                       "high %g, original_max_position_embeddings %lld)", c->rope_theta, c->rope_factor,
                       c->rope_low_freq_factor, c->rope_high_freq_factor, (long long)c->rope_orig_max_pos);
    if (!(c->rms_eps >= 0)) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: negative rms_norm_eps");
    /* cuBLASLt takes int dimensions. */
    int64_t widest = c->ffn * 2 > c->n_heads * c->head_dim + 2 * c->n_kv_heads * c->head_dim
                         ? c->ffn * 2 : c->n_heads * c->head_dim + 2 * c->n_kv_heads * c->head_dim;
    if (widest > INT32_MAX / 2 || c->hidden > INT32_MAX / 2)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cuda engine: a projection %lld wide is beyond cuBLASLt's int sizes",
                       (long long)widest);
    return RM_OK;
}

static rm_status check_matrix(const rm_tensor *t, int64_t rows, int64_t cols, const char *what, int64_t l,
                              rm_err *err) {
    if (!t) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: layer %lld has no %s", (long long)l, what);
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return rm_fail(err, RM_ERR_SHAPE, "cuda engine: layer %lld %s (%s) is not [%lld, %lld]", (long long)l, what,
                       t->name ? t->name : "?", (long long)rows, (long long)cols);
    return RM_OK;
}

static rm_status check_vector(const rm_tensor *t, int64_t len, const char *what, int64_t l, rm_err *err) {
    if (!t) return RM_OK;
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    if (n != len)
        return rm_fail(err, RM_ERR_SHAPE, "cuda engine: layer %lld %s (%s) has %lld values, expected %lld",
                       (long long)l, what, t->name ? t->name : "?", (long long)n, (long long)len);
    return RM_OK;
}

static rm_status check_weights(const rm_engine *e, rm_err *err) {
    const rm_model_weights *w = e->w;
    const rm_config *c = &e->cfg;
    if (!w->layers || w->n_layers != c->n_layers || !w->embed || !w->final_norm)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: weights not bound to this config (%lld layers vs %lld)",
                       (long long)w->n_layers, (long long)c->n_layers);
    if (w->embed->n_dims != 2 || w->embed->shape[0] != c->vocab || w->embed->shape[1] != c->hidden)
        return rm_fail(err, RM_ERR_SHAPE, "cuda engine: embed_tokens is not [%lld, %lld]", (long long)c->vocab,
                       (long long)c->hidden);
    rm_status st = check_vector(w->final_norm, e->H, "model.norm", -1, err);
    for (int64_t l = 0; l < c->n_layers && !st; l++) {
        const rm_layer_weights *lw = &w->layers[l];
        if ((st = check_matrix(lw->wq, e->QD, e->H, "q_proj", l, err)) ||
            (st = check_matrix(lw->wk, e->KD, e->H, "k_proj", l, err)) ||
            (st = check_matrix(lw->wv, e->KD, e->H, "v_proj", l, err)) ||
            (st = check_matrix(lw->wo, e->H, e->QD, "o_proj", l, err)) ||
            (st = check_matrix(lw->w_gate, e->F, e->H, "gate_proj", l, err)) ||
            (st = check_matrix(lw->w_up, e->F, e->H, "up_proj", l, err)) ||
            (st = check_matrix(lw->w_down, e->H, e->F, "down_proj", l, err)))
            return st;
        if (!lw->attn_norm || !lw->mlp_norm)
            return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: layer %lld has no norm weights", (long long)l);
        if (c->qk_norm && (!lw->q_norm || !lw->k_norm))
            return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: layer %lld has no q_norm / k_norm", (long long)l);
        if ((st = check_vector(lw->attn_norm, e->H, "input_layernorm", l, err)) ||
            (st = check_vector(lw->mlp_norm, e->H, "post_attention_layernorm", l, err)) ||
            (st = check_vector(lw->bq, e->QD, "q_proj.bias", l, err)) ||
            (st = check_vector(lw->bk, e->KD, "k_proj.bias", l, err)) ||
            (st = check_vector(lw->bv, e->KD, "v_proj.bias", l, err)) ||
            (st = check_vector(lw->bo, e->H, "o_proj.bias", l, err)) ||
            (st = check_vector(lw->b_gate, e->F, "gate_proj.bias", l, err)) ||
            (st = check_vector(lw->b_up, e->F, "up_proj.bias", l, err)) ||
            (st = check_vector(lw->b_down, e->H, "down_proj.bias", l, err)))
            return st;
        if (c->qk_norm && ((st = check_vector(lw->q_norm, c->head_dim, "q_norm", l, err)) ||
                           (st = check_vector(lw->k_norm, c->head_dim, "k_norm", l, err))))
            return st;
    }
    return st;
}

/* ---------------------------------------------------------------- the weight slab */

typedef struct bump {
    char *base;                 /* NULL: a dry run that only measures */
    size_t off;
} bump;

static void *take(bump *b, size_t bytes) {
    size_t at = (b->off + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;
    b->off = at + bytes;
    return b->base ? b->base + at : NULL;
}

static void take_matrix(rm_engine *e, bump *b, cu_matrix *m, int64_t rows, int64_t cols) {
    m->rows = rows;
    m->cols = cols;
    size_t n = (size_t)rows * (size_t)cols;
    m->data = take(b, e->kind == CU_GEMM_BF16 ? n * 2 : n);
    m->scales = e->kind == CU_GEMM_BF16 ? NULL : take(b, (e->kind == CU_GEMM_FP8_ROWS ? (size_t)rows : 1) * 4);
}

/* Lays the weights out in the slab at b->base (or measures them). */
static void slab_layout(rm_engine *e, bump *b) {
    const rm_config *c = &e->cfg;
    size_t H = (size_t)e->H, HD = (size_t)c->head_dim;
    e->embed = take(b, (size_t)c->vocab * H * 2);
    for (int64_t l = 0; l < c->n_layers; l++) {
        cu_layer *L = &e->layers[l];
        const rm_layer_weights *lw = e->w ? &e->w->layers[l] : NULL;
        take_matrix(e, b, &L->qkv, e->P, e->H);
        take_matrix(e, b, &L->o, e->H, e->QD);
        take_matrix(e, b, &L->gate_up, 2 * e->F, e->H);
        take_matrix(e, b, &L->down, e->H, e->F);
        L->attn_norm = take(b, H * 2);
        L->mlp_norm = take(b, H * 2);
        L->qkv_bias = lw && (lw->bq || lw->bk || lw->bv) ? take(b, (size_t)e->P * 2) : NULL;
        L->o_bias = lw && lw->bo ? take(b, H * 2) : NULL;
        L->gate_up_bias = lw && (lw->b_gate || lw->b_up) ? take(b, (size_t)e->F * 4) : NULL;
        L->down_bias = lw && lw->b_down ? take(b, H * 2) : NULL;
        L->q_norm = c->qk_norm ? take(b, HD * 2) : NULL;
        L->k_norm = c->qk_norm ? take(b, HD * 2) : NULL;
    }
    e->final_norm = take(b, H * 2);
}

/* ---------------------------------------------------------------- FP8 scaling mode */

/* Per-row scales where cuBLASLt's heuristic offers them at every projection
 * shape, per-tensor otherwise (NIMREWARD_FP8_SCALING=row|tensor forces one). */
static rm_status choose_fp8_scaling(rm_engine *e, rm_err *err) {
    const char *env = getenv("NIMREWARD_FP8_SCALING");
    int force_rows = env && !strcmp(env, "row"), force_tensor = env && !strcmp(env, "tensor");
    if (env && *env && !force_rows && !force_tensor && strcmp(env, "auto"))
        return rm_fail(err, RM_ERR_INVALID_ARG, "NIMREWARD_FP8_SCALING is \"%s\": expected row, tensor or auto", env);
    const int shapes[][2] = {{(int)e->P, (int)e->H}, {(int)e->QD, (int)e->H}, {(int)(2 * e->KD), (int)e->H},
                             {(int)e->H, (int)e->QD}, {(int)(2 * e->F), (int)e->H}, {(int)e->H, (int)e->F}};
    cu_gemm_kind kinds[2] = {CU_GEMM_FP8_ROWS, CU_GEMM_FP8_TENSOR};
    rm_err why[2] = {{0}, {0}};
    for (int i = force_tensor ? 1 : 0; i < (force_rows ? 1 : 2); i++) {
        rm_status st = RM_OK;
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes && !st; s++)
            for (int m = 1; m <= 4096 && !st; m *= 64)   /* 1, 64 and 4096 tokens */
                st = cu_gemm_check(&e->gemm, kinds[i], m, shapes[s][0], shapes[s][1], &why[i]);
        if (st == RM_OK) {
            e->kind = kinds[i];
            return RM_OK;
        }
        /* A cuBLASLt that refuses the OUTER_VEC mode may say so by "not
         * supported" or by rejecting the attribute: either way, per tensor. */
        if (rm_cu_poisoned(e->gpu, NULL)) return rm_fail(err, RM_ERR_DEVICE, "%s", why[i].msg);
    }
    return rm_fail(err, RM_ERR_UNSUPPORTED, "cuda engine: no FP8 GEMM on GPU %d: per-row scales: %s; per-tensor "
                   "scales: %s", e->gpu, why[0].msg[0] ? why[0].msg : "not tried",
                   why[1].msg[0] ? why[1].msg : "not tried");
}

/* ---------------------------------------------------------------- create */

static rm_status engine_alloc(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                              const rm_engine_opts *opts, rm_err *err) {
    rm_engine *e = rm_calloc(1, sizeof *e);
    if (!e) return rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of memory");
    e->cfg = *cfg;
    e->cfg.labels = NULL;
    e->w = w;
    e->gpu = opts->gpu;
    e->dtype = opts->dtype;
    e->n_threads = opts->n_threads;
    e->comm = opts->comm;
    e->H = cfg->hidden;
    e->QD = cfg->n_heads * cfg->head_dim;
    e->KD = cfg->n_kv_heads * cfg->head_dim;
    e->F = cfg->ffn;
    e->P = e->QD + 2 * e->KD;
    e->kind = CU_GEMM_BF16;
    pthread_mutex_init(&e->queue.lock, NULL);
    pthread_cond_init(&e->queue.turn, NULL);
    e->layers = rm_calloc((size_t)cfg->n_layers, sizeof *e->layers);
    e->layer_tokens = rm_calloc((size_t)cfg->n_layers, sizeof *e->layer_tokens);
    *out = e;
    if (!e->layers || !e->layer_tokens) return rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of memory");
    return RM_OK;
}

/* Tensor-parallel ranks agree on the smallest of their values (each rank's
 * own in its slot of a vector the group sums): every rank must split a batch
 * into the same passes, or their collectives would not pair up. */
static rm_status ranks_agree_min(rm_comm *c, size_t *value, rm_err *err) {
    if (!c || c->size < 2) return RM_OK;
    float *all = rm_calloc((size_t)c->size, sizeof *all);
    if (!all) return rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of memory");
    size_t exact = (size_t)1 << 24;   /* integers an fp32 sum carries exactly */
    all[c->rank] = (float)(*value < exact ? *value : exact);
    rm_status st = rm_comm_all_reduce(c, all, (size_t)c->size, RM_COMM_F32, NULL, err);
    for (int r = 0; !st && r < c->size; r++)
        if ((size_t)all[r] < *value) *value = (size_t)all[r];
    rm_mfree(all);
    return st;
}

/* "needed X, allowed Y (why)": the message of every out-of-memory at load. */
static rm_status no_room(rm_engine *e, size_t need, size_t allowed, size_t free_b, size_t margin, int explicit_budget,
                         const char *what, rm_err *err) {
    char why[160];
    if (explicit_budget) snprintf(why, sizeof why, "rm_params.max_device_bytes; %.2f GiB free", gib(free_b));
    else snprintf(why, sizeof why, "the free %.2f GiB less a margin of %.2f GiB", gib(free_b), gib(margin));
    return rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of device memory on GPU %d for %s: the model needs %.2f GiB "
                   "(%zu bytes: weights %.2f GiB, GEMM workspace %.0f MiB, activations for %d tokens at least), "
                   "%.2f GiB are allowed (%s)", e->gpu, what, gib(need), need, gib(e->slab_bytes),
                   (double)GEMM_WORKSPACE_BYTES / (1 << 20), CU_MIN_TOKENS, gib(allowed), why);
}

rm_status cu_engine_begin(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                          const rm_engine_opts *opts, size_t min_stage, rm_err *err) {
    *out = NULL;
    if (!cfg || !opts) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL config or options");
    if (opts->dtype != RM_DTYPE_BF16 && opts->dtype != RM_DTYPE_FP8)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "rm_params.dtype %s: the CUDA engine runs bf16 and fp8",
                       opts->dtype == RM_DTYPE_FP32 ? "fp32" : "auto");
    rm_status st = check_config(cfg, err);
    if (st) return st;
    rm_cuda_device_info info;
    if ((st = rm_cu_probe(opts->gpu, &info, err))) return st;
    if (opts->dtype == RM_DTYPE_FP8 && info.cc_major * 10 + info.cc_minor < 89)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "rm_params.dtype fp8 needs compute capability 8.9 or later; GPU %d "
                       "(%s) is %d.%d", opts->gpu, info.name, info.cc_major, info.cc_minor);
    rm_engine *e = NULL;
    if ((st = engine_alloc(&e, cfg, w, opts, err))) goto fail;
    if (w && (st = check_weights(e, err))) goto fail;
    rm_cu_device_guard g;
    if ((st = rm_cu_device_enter(&g, e->gpu, err))) goto fail;
    int gpu = e->gpu;
    /* Its own non-blocking stream: never the legacy default stream a caller
     * (a trainer's torch) may be using, and never synchronised with it. */
    CU_TRY_GOTO(gpu, err, st, leave, cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
    if ((st = cu_gemm_init(&e->gemm, gpu, GEMM_WORKSPACE_BYTES, err))) goto leave;
    if (opts->dtype == RM_DTYPE_FP8 && (st = choose_fp8_scaling(e, err))) goto leave;

    bump b = {NULL, 0};
    slab_layout(e, &b);
    e->slab_bytes = (b.off + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;

    /* The budget, and the largest arena that fits in it. */
    size_t free_b = 0, total_b = 0;
    /* Ranks sharing this GPU read the free memory together, before any of
     * them takes its share. */
    int shares = opts->device_shares > 1 ? opts->device_shares : 1;
    if (shares > 1 && e->comm && (st = e->comm->ops->barrier(e->comm, err))) goto leave;
    CU_TRY_GOTO(gpu, err, st, leave, cudaMemGetInfo(&free_b, &total_b));
    if (shares > 1 && e->comm && (st = e->comm->ops->barrier(e->comm, err))) goto leave;
    /* The budget covers everything the engine holds, the workspace (already
     * allocated, so no longer in free_b) included. */
    size_t margin = cu_default_margin(total_b), budget = opts->max_device_bytes;
    if (!budget) budget = (free_b > margin ? free_b - margin : 0) / (size_t)shares + GEMM_WORKSPACE_BYTES;
    e->shape = (cu_shape){(size_t)e->H, (size_t)e->QD, (size_t)e->KD, (size_t)e->F, e->kind != CU_GEMM_BF16};
    size_t fixed = e->slab_bytes + GEMM_WORKSPACE_BYTES + (size_t)cfg->head_dim * 2 + CU_ALIGN;
    size_t cap = (size_t)(cfg->max_pos > CU_TOKENS_CAP_MIN ? cfg->max_pos : CU_TOKENS_CAP_MIN);
    size_t tokens = budget > fixed ? cu_plan_tokens(&e->shape, budget - fixed, cap, min_stage, &e->arena, &e->meta) : 0;
    if (tokens && e->comm) {   /* a rank with no room fails below, and its failure ends the others' wait */
        size_t agreed = tokens;
        if ((st = ranks_agree_min(e->comm, &agreed, err))) goto leave;
        if (agreed < tokens) tokens = cu_plan_tokens(&e->shape, budget - fixed, agreed, min_stage, &e->arena, &e->meta);
    }
    if (!tokens) {
        size_t need = fixed + cu_plan_bytes(&e->shape, CU_MIN_TOKENS, min_stage, NULL, NULL);
        st = no_room(e, need, budget, free_b, margin, opts->max_device_bytes != 0, "its weights and activations",
                     err);
        goto leave;
    }
    size_t need = fixed + e->arena.bytes + e->meta.count * 4;
    cudaError_t ce = cudaMalloc(&e->slab, e->slab_bytes);
    if (ce == cudaSuccess) ce = cudaMalloc((void **)&e->arena_base, e->arena.bytes);
    e->meta_bytes = e->meta.count * 4 + (size_t)cfg->head_dim * 2;
    if (ce == cudaSuccess) ce = cudaMalloc((void **)&e->meta_dev, e->meta_bytes);
    if (ce == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        st = no_room(e, need, budget, free_b, margin, opts->max_device_bytes != 0, "an allocation cudaMalloc refused",
                     err);
        goto leave;
    }
    CU_TRY_GOTO(gpu, err, st, leave, ce);
    CU_TRY_GOTO(gpu, err, st, leave, cudaHostAlloc((void **)&e->meta_host, e->meta.count * 4, cudaHostAllocDefault));
    e->inv_freq = (float *)(e->meta_dev + e->meta.count);
    b = (bump){e->slab, 0};
    slab_layout(e, &b);

    e->mem.weights = e->slab_bytes;
    e->mem.activations = e->arena.bytes;
    e->mem.workspace = GEMM_WORKSPACE_BYTES + e->meta_bytes;
    e->mem.budget = budget;
    e->mem.peak_load = e->mem.weights + e->mem.activations + e->mem.workspace;
    e->mem.tokens_per_pass = tokens;
leave:
    rm_cu_device_leave(&g);
    if (st) goto fail;
    *out = e;
    return RM_OK;
fail:
    cu_engine_destroy(e);
    return st;
}

rm_status cu_engine_finish(rm_engine *e, rm_err *err) {
    rm_cu_device_guard g;
    rm_status st = rm_cu_device_enter(&g, e->gpu, err);
    if (st) return st;
    float inv_freq[MAX_HEAD_DIM / 2];
    rm_cpu_rope_inv_freq(&e->cfg, inv_freq);
    CU_TRY_GOTO(e->gpu, err, st, leave, cudaMemcpyAsync(e->inv_freq, inv_freq, (size_t)e->cfg.head_dim / 2 * 4,
                                                        cudaMemcpyHostToDevice, e->stream));
    CU_TRY_GOTO(e->gpu, err, st, leave, cudaStreamSynchronize(e->stream));
leave:
    rm_cu_device_leave(&g);
    if (st) return st;
    /* A warm-up pass: every kernel and GEMM path runs once at load, so a
     * broken build or device fails here, and the lazily loaded kernels are in
     * before the first real call. */
    int32_t toks[2] = {0, (int32_t)(e->cfg.vocab > 1)};
    const int32_t *tp[1] = {toks};
    size_t n = 2;
    rm_batch wb = {1, tp, &n, NULL, NULL};
    float *hidden = rm_malloc((size_t)e->H * sizeof *hidden);
    if (!hidden) return rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of memory");
    st = cu_forward(e, &wb, hidden, err);
    rm_mfree(hidden);
    if (st) return st;
    rm_engine_cuda.counters_reset(e);
    return RM_OK;
}

static rm_status cuda_create(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                             const rm_engine_opts *opts, rm_err *err) {
    if (!out) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL output pointer");
    *out = NULL;
    if (!w || !cfg || !opts) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL weights, config or options");
    /* Staging for the upload (upload.c): two chunks of at least one fp32 row
     * each, and the per-tensor amax. A larger arena gives larger chunks. */
    size_t widest = (size_t)cfg->hidden;
    if ((size_t)(cfg->n_heads * cfg->head_dim) > widest) widest = (size_t)(cfg->n_heads * cfg->head_dim);
    if ((size_t)cfg->ffn > widest) widest = (size_t)cfg->ffn;
    size_t stage = 2 * (widest * 4 + CU_ALIGN) + CU_ALIGN;
    rm_engine *e;
    rm_status st = cu_engine_begin(&e, cfg, w, opts, stage, err);
    if (st) return st;
    if ((st = cu_upload_weights(e, err)) || (st = cu_engine_finish(e, err))) {
        cu_engine_destroy(e);
        return st;
    }
    *out = e;
    return RM_OK;
}

void cu_engine_destroy(rm_engine *e) {
    if (!e) return;
    rm_cu_device_guard g;
    rm_err ignored;
    int entered = rm_cu_device_enter(&g, e->gpu, &ignored) == RM_OK;
    if (e->stream) cudaStreamSynchronize(e->stream);
    if (e->meta_host) cudaFreeHost(e->meta_host);
    if (e->meta_dev) cudaFree(e->meta_dev);
    if (e->arena_base) cudaFree(e->arena_base);
    if (e->slab) cudaFree(e->slab);
    cu_gemm_free(&e->gemm);
    if (e->stream) cudaStreamDestroy(e->stream);
    (void)cudaGetLastError();
    if (entered) rm_cu_device_leave(&g);
    pthread_mutex_destroy(&e->queue.lock);
    pthread_cond_destroy(&e->queue.turn);
    rm_mfree(e->layers);
    rm_mfree(e->layer_tokens);
    rm_mfree(e);
}

/* ---------------------------------------------------------------- counters, memory, options */

static void cuda_counters(rm_engine *e, rm_engine_counters *out, uint64_t *layer_tokens_out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (e) rm_counters_read(&e->counts, e->layer_tokens, e->cfg.n_layers, out, layer_tokens_out);
}

static void cuda_counters_reset(rm_engine *e) {
    if (e) rm_counters_clear(&e->counts, e->layer_tokens, e->cfg.n_layers);
}

static void cuda_memory(rm_engine *e, rm_engine_memory *out) {
    if (out) *out = e ? e->mem : (rm_engine_memory){0};
}

rm_status cu_set_option(rm_engine *e, rm_cuda_option option, int value, rm_err *err) {
    if (!e) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL engine");
    if (option != RM_CUDA_OPTION_FP8_FAST_ACCUM || (value != 0 && value != 1))
        return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: option %d = %d is not a setting", (int)option, value);
    /* Under the queue: no pass is running while the GEMMs change. The plan
     * key carries the setting, so plans of either setting stay cached. */
    pthread_mutex_lock(&e->queue.lock);
    uint64_t t = e->queue.next_ticket++;
    while (t != e->queue.serving) pthread_cond_wait(&e->queue.turn, &e->queue.lock);
    e->gemm.fast_accum = value;
    e->queue.serving++;
    pthread_cond_broadcast(&e->queue.turn);
    pthread_mutex_unlock(&e->queue.lock);
    return RM_OK;
}

const rm_engine_ops rm_engine_cuda = {
    .name = "cuda",
    .create = cuda_create,
    .forward = cu_forward,
    .head_rows = cu_head_rows,
    .counters = cuda_counters,
    .counters_reset = cuda_counters_reset,
    .destroy = cu_engine_destroy,
    .memory = cuda_memory,
};
