/*
 * random_model.c - the random model of lib/random_model.h made on the GPU
 * (rm_cu_random_bf16): the benchmark's 80-layer 70B shape without a 140 GB
 * file, and the real-shape test, whose CPU side builds the same weights.
 * FP8 matrices are generated in bf16 into the empty activation arena and
 * quantised from there, as a checkpoint's are at load.
 */
#include "cuda_engine.h"
#include "extras.h"
#include "kernels.h"
#include "random_model.h"

typedef struct part {
    rm_rnd_kind kind;
    int64_t rows;
} part;

static rm_status fill_matrix(rm_engine *e, uint64_t seed, int64_t layer, const cu_matrix *m, const part *parts,
                             int n_parts, rm_err *err) {
    int gpu = e->gpu;
    size_t cols = (size_t)m->cols;
    float scale = rm_rnd_matrix_scale(m->cols);
    uint16_t *dst = e->kind == CU_GEMM_BF16 ? (uint16_t *)m->data : (uint16_t *)e->arena_base;
    size_t row = 0;
    for (int i = 0; i < n_parts; i++) {
        CU_TRY(gpu, err, rm_cu_random_bf16(dst + row * cols, (size_t)parts[i].rows * cols, seed,
                                           rm_rnd_layer_tensor(layer, parts[i].kind), scale, e->stream));
        row += (size_t)parts[i].rows;
    }
    if (e->kind == CU_GEMM_FP8_ROWS)
        CU_TRY(gpu, err, rm_cu_quantize_fp8_rows(dst, cols, row, cols, m->data, m->scales, e->stream));
    if (e->kind == CU_GEMM_FP8_TENSOR) {
        size_t at = (row * cols * 2 + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;
        float *amax = (float *)(e->arena_base + at);
        CU_TRY(gpu, err, cudaMemsetAsync(amax, 0, sizeof(float), e->stream));
        CU_TRY(gpu, err, rm_cu_amax_bf16(dst, cols, row, cols, amax, e->stream));
        CU_TRY(gpu, err, rm_cu_quantize_fp8_tensor(dst, cols, row, cols, amax, m->data, cols, m->scales, e->stream));
    }
    return RM_OK;
}

static rm_status fill_norm(rm_engine *e, uint64_t seed, uint64_t tensor, uint16_t *dst, uint16_t *host, rm_err *err) {
    for (int64_t i = 0; i < e->H; i++) host[i] = rm_rnd_bf16(rm_rnd_norm_value(seed, tensor, (uint64_t)i));
    /* Pageable source: the call returns once the bytes are staged, so host is free again. */
    CU_TRY(e->gpu, err, cudaMemcpyAsync(dst, host, (size_t)e->H * 2, cudaMemcpyHostToDevice, e->stream));
    return RM_OK;
}

static rm_status fill_all(rm_engine *e, uint64_t seed, uint16_t *host, rm_err *err) {
    rm_status st;
    CU_TRY(e->gpu, err, rm_cu_random_bf16(e->embed, (size_t)e->cfg.vocab * (size_t)e->H, seed, RM_RND_EMBED, 1.0f,
                                          e->stream));
    for (int64_t l = 0; l < e->cfg.n_layers; l++) {
        cu_layer *L = &e->layers[l];
        part qkv[3] = {{RM_RND_WQ, e->QD}, {RM_RND_WK, e->KD}, {RM_RND_WV, e->KD}}, o[1] = {{RM_RND_WO, e->H}},
             gu[2] = {{RM_RND_WGATE, e->F}, {RM_RND_WUP, e->F}}, down[1] = {{RM_RND_WDOWN, e->H}};
        if ((st = fill_matrix(e, seed, l, &L->qkv, qkv, 3, err)) || (st = fill_matrix(e, seed, l, &L->o, o, 1, err)) ||
            (st = fill_matrix(e, seed, l, &L->gate_up, gu, 2, err)) ||
            (st = fill_matrix(e, seed, l, &L->down, down, 1, err)) ||
            (st = fill_norm(e, seed, rm_rnd_layer_tensor(l, RM_RND_ATTN_NORM), L->attn_norm, host, err)) ||
            (st = fill_norm(e, seed, rm_rnd_layer_tensor(l, RM_RND_MLP_NORM), L->mlp_norm, host, err)))
            return st;
    }
    if ((st = fill_norm(e, seed, RM_RND_FINAL_NORM, e->final_norm, host, err))) return st;
    CU_TRY(e->gpu, err, cudaStreamSynchronize(e->stream));
    return RM_OK;
}

rm_status cu_create_random(rm_engine **out, const rm_config *cfg, uint64_t seed, const rm_engine_opts *opts,
                           rm_err *err) {
    if (!out || !cfg || !opts) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL argument");
    *out = NULL;
    if (cfg->qk_norm || cfg->qkv_bias || cfg->o_bias || cfg->mlp_bias)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cuda engine: a random model is Llama-shaped (no biases, no q/k norm)");
    size_t H = (size_t)cfg->hidden, QD = (size_t)(cfg->n_heads * cfg->head_dim),
           KD = (size_t)(cfg->n_kv_heads * cfg->head_dim), F = (size_t)cfg->ffn, widest = (QD + 2 * KD) * H;
    if (2 * F * H > widest) widest = 2 * F * H;
    if (QD * H > widest) widest = QD * H;
    /* FP8: the largest matrix in bf16 plus its amax, in the arena. */
    size_t stage = opts->dtype == RM_DTYPE_FP8 ? widest * 2 + 2 * CU_ALIGN : CU_ALIGN;
    rm_engine *e;
    rm_status st = cu_engine_begin(&e, cfg, NULL, opts, stage, err);
    if (st) return st;
    uint16_t *host = rm_malloc(H * sizeof *host);
    rm_cu_device_guard g;
    if (!host) st = rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of memory");
    else if (!(st = rm_cu_device_enter(&g, e->gpu, err))) {
        st = fill_all(e, seed, host, err);
        rm_cu_device_leave(&g);
    }
    rm_mfree(host);
    if (!st) st = cu_engine_finish(e, err);
    if (st) {
        cu_engine_destroy(e);
        return st;
    }
    *out = e;
    return RM_OK;
}
