/*
 * engine_cpu.c - the CPU forward pass: the reference every other engine is
 * tested against. fp32 arithmetic (the default), or bf16 weights with fp32
 * accumulation (rm_params.dtype BF16). All parallelism is one OpenMP team
 * of n_threads: the projections are lib/cpu/gemm.h products whose kernels
 * follow the CPU's features, each thread computing a range of output
 * columns; long prompts' attention runs single-threaded fp32 GEMMs of the
 * same kind, one head and block of queries per thread; everything else
 * goes through the row ops of cpu_ops.c. docs/performance.md says why.
 *
 * A packed batch has no padding: the engine computes one row per unique
 * token (a sequence's shared prefix reuses its parent's rows) and maps every
 * (sequence, position) to its row. The last layer computes K and V for all
 * rows but Q, attention, o_proj and the MLP only for the last token of each
 * sequence, which is all the heads read.
 *
 * Weights (docs/performance.md has the measurements behind the choices):
 *   fp32: fp32 and bf16 matrices are read in place from the mapping (the
 *     GEMM widens bf16 exactly while packing it, so the numbers are those
 *     of an fp32 copy); fp16 ones are converted to fp32 once at create()
 *     (a resident copy, when it fits the budget) or per matrix per pass.
 *     RM_CPU_WEIGHTS_CONVERT converts bf16 the same way (the bench's
 *     resident / stream modes).
 *   bf16: bf16 matrices in place; fp32 and fp16 ones converted once to a
 *     resident bf16 copy (rounded to nearest even).
 * Norms, biases and heads are fp32 in both.
 */
#include "engine.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu/gemm.h"
#include "cpu_ops.h"
#include "parallel/collective.h"

/* Rows of the MLP computed at a time: bounds the gate/up activations
 * (2 * MLP_CHUNK * ffn floats) whatever the batch size, while keeping the
 * GEMMs large enough to run near peak. */
#define MLP_CHUNK 512

/* A sequence with at least this many queries of its own in a layer runs its
 * attention through GEMMs (rm_cpu_attention_blas); shorter ones, and the
 * last layer's single queries, through rm_cpu_attention. */
#define ATTN_BLAS_MIN_QUERIES 64

/* Rows of the embedding gathered per task. */
#define EMBED_BLOCK 16

/* A weight matrix [rows, cols]: data points at what the GEMM reads, of
 * type wtype (the mapping itself or a resident copy), or is NULL when it is
 * converted to fp32 per pass. */
typedef struct cpu_matrix {
    const rm_tensor *t;
    const void *data;
    rm_gemm_wtype wtype;
    void *owned;                /* the resident copy, freed by destroy */
    int64_t rows, cols;
} cpu_matrix;

typedef struct cpu_layer {
    cpu_matrix wq, wk, wv, wo, w_gate, w_up, w_down;
    float *attn_norm, *mlp_norm;            /* [hidden] */
    float *bq, *bk, *bv, *bo;               /* NULL when absent */
    float *b_gate, *b_up, *b_down;
    float *q_norm, *k_norm;                 /* [head_dim], qwen3 */
} cpu_layer;

struct rm_engine {
    rm_config cfg;                          /* copy of the numbers (labels not owned, not used) */
    const rm_model_weights *w;              /* borrowed: outlives the engine */
    int n_threads;
    rm_dtype dtype;                         /* FP32 or BF16 */
    const rm_gemm_kernel *gemm;             /* the projections' kernel */
    size_t gemm_max_k;                      /* the widest product's k (scratch size) */
    int resident;                           /* no matrix converted per pass */
    cpu_layer *layers;
    float *final_norm;
    float *inv_freq;                        /* head_dim / 2 */
    size_t stream_floats;                   /* scratch for one layer's per-pass conversions */
    size_t attn_blas_min;                   /* ATTN_BLAS_MIN_QUERIES unless a test set it */
    rm_comm *comm;                          /* a tensor-parallel rank: sums o_proj / down_proj outputs */

    /* Counters, updated with atomic adds. */
    rm_engine_counters counts;              /* rm_counter_add */
    uint64_t *layer_tokens;
    uint64_t gemm_flops, gemm_ns, gemm_cpu_ns; /* the projections: FLOPs, wall and process CPU time inside */
};

static uint64_t load(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* The budget for resident fp32 copies: NIM_REWARD_CPU_F32_CACHE_MB when set,
 * else half of physical memory. */
size_t rm_engine_cpu_default_budget(void) {
    const char *env = getenv("NIM_REWARD_CPU_F32_CACHE_MB");
    if (env && *env) {
        char *end;
        unsigned long long mb = strtoull(env, &end, 10);
        if (*end == 0) return mb > SIZE_MAX >> 20 ? SIZE_MAX : (size_t)mb << 20;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    return (size_t)pages * (size_t)page / 2;
}

/* ---------------------------------------------------------------- create */

static int is_f32_in_place(const rm_tensor *t) {
    return t->dtype == RM_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0;
}

static rm_status vector_f32(float **out, const rm_tensor *t, int64_t len, const char *what, int64_t layer,
                            rm_err *err) {
    *out = NULL;
    if (!t) return RM_OK;
    if (rm_tensor_numel(t) != len)
        return rm_fail(err, RM_ERR_SHAPE, "cpu engine: layer %lld %s (%s) has %lld values, expected %lld",
                       (long long)layer, what, t->name ? t->name : "?", (long long)rm_tensor_numel(t),
                       (long long)len);
    *out = rm_malloc((size_t)len * sizeof(float));
    if (!*out) return rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory for %s", what);
    rm_tensor_rows_f32(t, 0, 1, *out);
    return RM_OK;
}

static int is_bf16_in_place(const rm_tensor *t) {
    return t->dtype == RM_DT_BF16 && ((uintptr_t)t->data % sizeof(uint16_t)) == 0;
}

/* Which stored types the GEMM reads in place (the others are converted). */
enum { IN_PLACE_F32 = 1, IN_PLACE_BF16 = 2 };

/* Binds the tensor; data is set when the GEMM reads it in place, else left
 * for make_resident / per-pass conversion. */
static rm_status bind_matrix(cpu_matrix *m, const rm_tensor *t, int64_t rows, int64_t cols, const char *what,
                             int64_t layer, int in_place, rm_err *err) {
    if (!t)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: layer %lld has no %s", (long long)layer, what);
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return rm_fail(err, RM_ERR_SHAPE, "cpu engine: layer %lld %s (%s) is not [%lld, %lld]", (long long)layer,
                       what, t->name ? t->name : "?", (long long)rows, (long long)cols);
    m->t = t;
    m->rows = rows;
    m->cols = cols;
    m->data = NULL;
    if ((in_place & IN_PLACE_F32) && is_f32_in_place(t)) m->data = t->data, m->wtype = RM_GEMM_W_F32;
    else if ((in_place & IN_PLACE_BF16) && is_bf16_in_place(t)) m->data = t->data, m->wtype = RM_GEMM_W_BF16;
    return RM_OK;
}

static size_t matrix_floats(const cpu_matrix *m) { return (size_t)m->rows * (size_t)m->cols; }

/* Floats of one layer's matrices that need converting. */
static size_t layer_convert_floats(const cpu_layer *L) {
    const cpu_matrix *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    size_t n = 0;
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        if (!ms[i]->data) n += matrix_floats(ms[i]);
    return n;
}

static void free_layers(rm_engine *e) {
    if (!e->layers) return;
    for (int64_t l = 0; l < e->cfg.n_layers; l++) {
        cpu_layer *L = &e->layers[l];
        cpu_matrix *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) rm_mfree(ms[i]->owned);
        float *vs[] = {L->attn_norm, L->mlp_norm, L->bq, L->bk, L->bv, L->bo,
                       L->b_gate, L->b_up, L->b_down, L->q_norm, L->k_norm};
        for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) rm_mfree(vs[i]);
    }
    rm_mfree(e->layers);
    e->layers = NULL;
}

static void cpu_destroy(rm_engine *e) {
    if (!e) return;
    free_layers(e);
    rm_mfree(e->final_norm);
    rm_mfree(e->inv_freq);
    rm_mfree(e->layer_tokens);
    rm_mfree(e);
}

static rm_status check_config(const rm_config *c, rm_err *err) {
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->ffn <= 0 || c->vocab <= 0)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: config has a non-positive dimension");
    if (c->n_heads % c->n_kv_heads)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cpu engine: %lld attention heads not a multiple of %lld kv heads",
                       (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->head_dim % 2)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cpu engine: odd head_dim %lld (RoPE rotates pairs)",
                       (long long)c->head_dim);
    if (!(c->rope_theta > 0) || (c->rope_type == RM_ROPE_LLAMA3 &&
                                 (!(c->rope_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
                                  !(c->rope_low_freq_factor > 0) || c->rope_orig_max_pos <= 0)))
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cpu engine: bad RoPE parameters (theta %g, factor %g, low %g, "
                       "high %g, original_max_position_embeddings %lld)", c->rope_theta, c->rope_factor,
                       c->rope_low_freq_factor, c->rope_high_freq_factor, (long long)c->rope_orig_max_pos);
    if (!(c->rms_eps >= 0))
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: negative rms_norm_eps");
    return RM_OK;
}

static rm_status bind_layer(rm_engine *e, int64_t l, int in_place, rm_err *err) {
    const rm_config *c = &e->cfg;
    const rm_layer_weights *lw = &e->w->layers[l];
    cpu_layer *L = &e->layers[l];
    int64_t H = c->hidden, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, F = c->ffn;
    int b = in_place;
    rm_status st;
    if ((st = bind_matrix(&L->wq, lw->wq, QD, H, "q_proj", l, b, err)) ||
        (st = bind_matrix(&L->wk, lw->wk, KD, H, "k_proj", l, b, err)) ||
        (st = bind_matrix(&L->wv, lw->wv, KD, H, "v_proj", l, b, err)) ||
        (st = bind_matrix(&L->wo, lw->wo, H, QD, "o_proj", l, b, err)) ||
        (st = bind_matrix(&L->w_gate, lw->w_gate, F, H, "gate_proj", l, b, err)) ||
        (st = bind_matrix(&L->w_up, lw->w_up, F, H, "up_proj", l, b, err)) ||
        (st = bind_matrix(&L->w_down, lw->w_down, H, F, "down_proj", l, b, err)))
        return st;
    if (!lw->attn_norm || !lw->mlp_norm)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: layer %lld has no norm weights", (long long)l);
    if (c->qk_norm && (!lw->q_norm || !lw->k_norm))
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: layer %lld has no q_norm / k_norm", (long long)l);
    if ((st = vector_f32(&L->attn_norm, lw->attn_norm, H, "input_layernorm", l, err)) ||
        (st = vector_f32(&L->mlp_norm, lw->mlp_norm, H, "post_attention_layernorm", l, err)) ||
        (st = vector_f32(&L->bq, lw->bq, QD, "q_proj.bias", l, err)) ||
        (st = vector_f32(&L->bk, lw->bk, KD, "k_proj.bias", l, err)) ||
        (st = vector_f32(&L->bv, lw->bv, KD, "v_proj.bias", l, err)) ||
        (st = vector_f32(&L->bo, lw->bo, H, "o_proj.bias", l, err)) ||
        (st = vector_f32(&L->b_gate, lw->b_gate, F, "gate_proj.bias", l, err)) ||
        (st = vector_f32(&L->b_up, lw->b_up, F, "up_proj.bias", l, err)) ||
        (st = vector_f32(&L->b_down, lw->b_down, H, "down_proj.bias", l, err)))
        return st;
    if (c->qk_norm &&
        ((st = vector_f32(&L->q_norm, lw->q_norm, c->head_dim, "q_norm", l, err)) ||
         (st = vector_f32(&L->k_norm, lw->k_norm, c->head_dim, "k_norm", l, err))))
        return st;
    return RM_OK;
}

/* Rows of a matrix rounded to bf16 per block of rows, for the resident bf16 copy. */
#define BF16_BLOCK_ROWS 16

static void convert_to_bf16(const cpu_matrix *m, uint16_t *out, float *buf_all, int n_threads) {
    int64_t n_blocks = (m->rows + BF16_BLOCK_ROWS - 1) / BF16_BLOCK_ROWS;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < n_blocks; b++) {
        float *buf = buf_all + (size_t)omp_get_thread_num() * BF16_BLOCK_ROWS * (size_t)m->cols;
        int64_t r0 = b * BF16_BLOCK_ROWS, nr = m->rows - r0 < BF16_BLOCK_ROWS ? m->rows - r0 : BF16_BLOCK_ROWS;
        rm_tensor_rows_f32(m->t, r0, nr, buf);
        size_t n = (size_t)nr * (size_t)m->cols;
        uint16_t *o = out + (size_t)r0 * (size_t)m->cols;
        for (size_t i = 0; i < n; i++) o[i] = rm_f32_to_bf16(buf[i]);
    }
}

/* Converts every matrix the GEMM cannot read in place into a resident copy:
 * fp32 (dtype FP32) or bf16 rounded to nearest even (dtype BF16). */
static rm_status make_resident(rm_engine *e, rm_err *err) {
    int bf16 = e->dtype == RM_DTYPE_BF16;
    size_t esize = bf16 ? sizeof(uint16_t) : sizeof(float), buf_bytes;
    float *buf = NULL;
    if (bf16) {
        if (!rm_mul_ok((size_t)e->n_threads * BF16_BLOCK_ROWS, (size_t)(e->cfg.ffn > e->cfg.hidden ? e->cfg.ffn
                       : e->cfg.hidden) * 2 * sizeof(float), &buf_bytes) || !(buf = rm_malloc(buf_bytes)))
            return rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory for the bf16 conversion");
    }
    rm_status st = RM_OK;
    for (int64_t l = 0; l < e->cfg.n_layers && !st; l++) {
        cpu_layer *L = &e->layers[l];
        cpu_matrix *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
            cpu_matrix *m = ms[i];
            if (m->data) continue;
            size_t bytes;
            if (!rm_mul_ok(matrix_floats(m), esize, &bytes) || !(m->owned = rm_malloc(bytes))) {
                st = rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory for a%s copy of %s (%zu bytes)",
                             bf16 ? " bf16" : "n fp32", m->t->name ? m->t->name : "a weight", bytes);
                break;
            }
            if (bf16) convert_to_bf16(m, m->owned, buf, e->n_threads);
            else rm_cpu_convert(m->t, m->rows, m->cols, m->owned, e->n_threads);
            m->data = m->owned;
            m->wtype = bf16 ? RM_GEMM_W_BF16 : RM_GEMM_W_F32;
        }
    }
    rm_mfree(buf);
    return st;
}

rm_status rm_engine_cpu_create_opts(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                                    const rm_engine_cpu_opts *o, rm_err *err) {
    if (!out) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: NULL output pointer");
    *out = NULL;
    if (!cfg || !w || !o) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: NULL config, weights or options");
    int n_threads = o->n_threads;
    if (n_threads < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: negative thread count %d", n_threads);
    if (o->dtype != RM_DTYPE_FP32 && o->dtype != RM_DTYPE_BF16)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "rm_params.dtype %s: the CPU engine runs fp32 or bf16%s",
                       rm_dtype_name(o->dtype), o->dtype == RM_DTYPE_FP8 ? " (FP8 needs the CUDA engine)" : "");
    int bf16 = o->dtype == RM_DTYPE_BF16;
    const rm_gemm_kernel *kernel = o->kernel ? o->kernel
                                             : rm_gemm_kernel_pick(bf16 ? RM_GEMM_BF16 : RM_GEMM_FP32, RM_ISA_COUNT);
    if (!bf16 && rm_gemm_kernel_arith(kernel) != RM_GEMM_FP32)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: kernel %s does not compute in fp32",
                       rm_gemm_kernel_name(kernel));
    rm_status st = check_config(cfg, err);
    if (st) return st;
    if (!w->layers || w->n_layers != cfg->n_layers || !w->embed || !w->final_norm)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: weights not bound to this config (%lld layers vs %lld)",
                       (long long)w->n_layers, (long long)cfg->n_layers);
    if (w->embed->n_dims != 2 || w->embed->shape[0] != cfg->vocab || w->embed->shape[1] != cfg->hidden)
        return rm_fail(err, RM_ERR_SHAPE, "cpu engine: embed_tokens is not [%lld, %lld]", (long long)cfg->vocab,
                       (long long)cfg->hidden);
    for (int64_t l = 0; l < w->n_layers; l++) {
        const rm_layer_weights *L = &w->layers[l];
        const rm_tensor *proj[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int k = 0; k < 7; k++)
            if (proj[k] && proj[k]->dtype == RM_DT_F8_E4M3)
                return rm_fail(err, RM_ERR_UNSUPPORTED, "cpu engine: %s is FP8 (e4m3, from an FP8 pack): only the "
                               "CUDA engine takes FP8 weights", proj[k]->name ? proj[k]->name : "a projection");
    }

    rm_engine *e = rm_calloc(1, sizeof *e);
    if (!e) return rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory");
    e->cfg = *cfg;
    e->cfg.labels = NULL;
    e->w = w;
    e->n_threads = n_threads ? n_threads : online_cores();
    e->attn_blas_min = ATTN_BLAS_MIN_QUERIES;
    e->dtype = o->dtype;
    e->gemm = kernel;
    int64_t max_k = cfg->hidden > cfg->ffn ? cfg->hidden : cfg->ffn;
    e->gemm_max_k = (size_t)(max_k > cfg->n_heads * cfg->head_dim ? max_k : cfg->n_heads * cfg->head_dim);
    size_t L = (size_t)cfg->n_layers, half = (size_t)cfg->head_dim / 2;
    e->layers = rm_calloc(L, sizeof *e->layers);
    e->layer_tokens = rm_calloc(L, sizeof *e->layer_tokens);
    e->inv_freq = rm_malloc(half * sizeof *e->inv_freq);
    if (!e->layers || !e->layer_tokens || !e->inv_freq) {
        st = rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory");
        goto fail;
    }
    int in_place = bf16 ? IN_PLACE_BF16 : o->weights == RM_CPU_WEIGHTS_AUTO ? IN_PLACE_F32 | IN_PLACE_BF16 : IN_PLACE_F32;
    for (int64_t l = 0; l < cfg->n_layers; l++)
        if ((st = bind_layer(e, l, in_place, err))) goto fail;
    if ((st = vector_f32(&e->final_norm, w->final_norm, cfg->hidden, "model.norm", -1, err))) goto fail;
    rm_cpu_rope_inv_freq(&e->cfg, e->inv_freq);

    /* fp32: a resident fp32 copy of what the GEMM cannot read in place when
     * all of it fits the budget; otherwise every such matrix is converted
     * per pass (memory stays at the file's size). bf16: always a resident
     * bf16 copy (at most the size of the file). */
    size_t total = 0, max_layer = 0;
    for (size_t l = 0; l < L; l++) {
        size_t n = layer_convert_floats(&e->layers[l]);
        total += n;
        if (n > max_layer) max_layer = n;
    }
    size_t total_bytes;
    if (!total) {
        e->resident = 1;    /* every matrix read in place */
    } else if (bf16 || (rm_mul_ok(total, sizeof(float), &total_bytes) && total_bytes <= o->f32_budget)) {
        if ((st = make_resident(e, err))) goto fail;
        e->resident = 1;
    } else {
        e->stream_floats = max_layer;
    }
    *out = e;
    return RM_OK;
fail:
    cpu_destroy(e);
    return st;
}

rm_status rm_engine_cpu_create_ex(rm_engine **out, const rm_config *cfg, const rm_model_weights *w, int n_threads,
                                  size_t f32_budget, rm_err *err) {
    rm_engine_cpu_opts o = {.n_threads = n_threads, .dtype = RM_DTYPE_FP32, .weights = RM_CPU_WEIGHTS_CONVERT,
                            .f32_budget = f32_budget};
    return rm_engine_cpu_create_opts(out, cfg, w, &o, err);
}

static rm_status cpu_create(rm_engine **out, const rm_config *cfg, const rm_model_weights *w,
                            const rm_engine_opts *opts, rm_err *err) {
    if (out) *out = NULL;
    if (!opts) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: NULL options");
    rm_engine_cpu_opts o = {.n_threads = opts->n_threads, .dtype = opts->dtype, .weights = RM_CPU_WEIGHTS_AUTO,
                            .f32_budget = rm_engine_cpu_default_budget()};
    rm_status st = rm_engine_cpu_create_opts(out, cfg, w, &o, err);
    if (st == RM_OK) (*out)->comm = opts->comm;   /* a tensor-parallel rank: all-reduce after o_proj and down */
    return st;
}

int rm_engine_cpu_is_resident(const rm_engine *e) { return e ? e->resident : 0; }

const char *rm_engine_cpu_kernel(const rm_engine *e) { return e ? rm_gemm_kernel_name(e->gemm) : "none"; }

void rm_engine_cpu_gemm_stats(const rm_engine *e, double *flops, double *seconds, double *cpu_seconds) {
    *flops = e ? (double)load(&e->gemm_flops) : 0;
    *seconds = e ? (double)load(&e->gemm_ns) * 1e-9 : 0;
    *cpu_seconds = e ? (double)load(&e->gemm_cpu_ns) * 1e-9 : 0;
}

void rm_engine_cpu_set_attn_blas_min(rm_engine *e, size_t min_queries) {
    if (e) e->attn_blas_min = min_queries;
}

/* ---------------------------------------------------------------- forward */

/* One forward pass's plan and scratch, all from one rm_malloc'ed list. */
typedef struct pass {
    size_t n_seqs, n_rows, n_total, max_len;
    size_t *seq_off;        /* n_seqs: start of sequence s in row_of */
    size_t *seq_len, *seq_shared; /* n_seqs: the batch's n_tokens and shared_len (0 without sharing) */
    size_t *row_of;         /* n_total: row of (s, p) at row_of[seq_off[s] + p] */
    size_t *row_pos;        /* n_rows: position of each row */
    int32_t *row_tok;       /* n_rows */
    size_t *row_keys;       /* n_rows: offset of the row's sequence map (key_off of attention) */
    size_t *row_nkeys;      /* n_rows: position + 1, or 0 when the row's sequence uses BLAS attention */
    size_t *blas_seqs, n_blas; /* sequences whose attention runs through BLAS (not in the last layer) */
    float *kbuf, *vbuf;     /* such a sequence's keys and values gathered when it shares a prefix */
    float *scores;          /* n_threads * RM_CPU_ATTN_BLOCK * max_len */
    size_t *last_row, *last_pos, *last_keys, *last_nkeys; /* n_seqs: the last token of each sequence */
    float *x, *h, *q, *k, *v, *att;        /* activations */
    float *xs, *hs;                        /* last layer: the n_seqs rows */
    float *gate, *up, *mlp_out;            /* MLP_CHUNK rows */
    float *cos_tab, *sin_tab;
    float *attn_scratch;
    float *wbuf;                           /* per-pass weight conversion (not resident) */
    void *gemm_scratch;                    /* n_threads x gemm_scratch_bytes: the projections', attention's */
    size_t gemm_scratch_bytes;
    uint64_t bytes_read;
    void *blocks[40];
    size_t n_blocks;
} pass;

static void *pass_alloc(pass *p, size_t count, size_t size, int *ok) {
    size_t bytes;
    if (!*ok || p->n_blocks == sizeof p->blocks / sizeof *p->blocks || !rm_mul_ok(count, size, &bytes)) {
        *ok = 0;
        return NULL;
    }
    void *b = rm_malloc(bytes);
    if (!b) {
        *ok = 0;
        return NULL;
    }
    p->blocks[p->n_blocks++] = b;
    return b;
}

static void pass_free(pass *p) {
    for (size_t i = 0; i < p->n_blocks; i++) rm_mfree(p->blocks[i]);
    p->n_blocks = 0;
}

/* Checks the batch and counts rows; messages name the sequence and position. */
static rm_status check_batch(const rm_engine *e, const rm_batch *b, pass *p, rm_err *err) {
    if (!b->tokens || !b->n_tokens)
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: batch without tokens");
    if ((b->parent == NULL) != (b->shared_len == NULL))
        return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: batch has parent without shared_len or the reverse");
    size_t rows = 0, total = 0, max_len = 0;
    for (size_t s = 0; s < b->n_seqs; s++) {
        size_t n = b->n_tokens[s], shared = b->shared_len ? b->shared_len[s] : 0;
        if (n == 0) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: sequence %zu is empty", s);
        if (!b->tokens[s]) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: sequence %zu has NULL tokens", s);
        if (e->cfg.max_pos > 0 && n > (size_t)e->cfg.max_pos)
            return rm_fail(err, RM_ERR_TOO_LONG, "cpu engine: sequence %zu has %zu tokens, more than %lld positions",
                           s, n, (long long)e->cfg.max_pos);
        if (shared) {
            int32_t par = b->parent[s];
            if (par < 0 || (size_t)par >= s)
                return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: sequence %zu: parent %d is not an earlier "
                               "sequence", s, (int)par);
            if (shared > n || shared > b->n_tokens[par])
                return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: sequence %zu: shared_len %zu longer than the "
                               "sequence or its parent", s, shared);
            if (memcmp(b->tokens[s], b->tokens[par], shared * sizeof(int32_t)))
                return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: sequence %zu: the first %zu tokens differ "
                               "from those of parent %d", s, shared, (int)par);
        }
        for (size_t i = shared; i < n; i++) {
            int32_t t = b->tokens[s][i];
            if (t < 0 || t >= e->cfg.vocab)
                return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: token id %d at position %zu of sequence %zu "
                               "is outside the vocabulary [0, %lld)", (int)t, i, s, (long long)e->cfg.vocab);
        }
        rows += n - shared;
        total += n;
        if (n > max_len) max_len = n;
    }
    p->n_seqs = b->n_seqs;
    p->n_rows = rows;
    p->n_total = total;
    p->max_len = max_len;
    return RM_OK;
}

/* A sequence's own queries (those after its shared prefix) go through BLAS
 * attention when there are enough of them. */
static int uses_blas_attention(const rm_engine *e, size_t n, size_t shared) {
    return n > shared && n - shared >= e->attn_blas_min;
}

/* Allocates the pass's scratch and maps every (sequence, position) to a row. */
static rm_status plan(rm_engine *e, const rm_batch *b, pass *p, rm_err *err) {
    const rm_config *c = &e->cfg;
    size_t S = p->n_seqs, R = p->n_rows, H = (size_t)c->hidden, QD = (size_t)(c->n_heads * c->head_dim),
           KD = (size_t)(c->n_kv_heads * c->head_dim), F = (size_t)c->ffn, half = (size_t)c->head_dim / 2,
           group = (size_t)(c->n_heads / c->n_kv_heads);
    /* A fully shared sequence has no rows of its own, so the last layer's
     * n_seqs queries can outnumber the rows. */
    size_t RQ = R > S ? R : S, chunk = RQ < MLP_CHUNK ? RQ : MLP_CHUNK;
    int ok = 1;
    p->seq_off = pass_alloc(p, S, sizeof(size_t), &ok);
    p->seq_len = pass_alloc(p, S, sizeof(size_t), &ok);
    p->seq_shared = pass_alloc(p, S, sizeof(size_t), &ok);
    p->row_of = pass_alloc(p, p->n_total, sizeof(size_t), &ok);
    p->row_pos = pass_alloc(p, R, sizeof(size_t), &ok);
    p->row_tok = pass_alloc(p, R, sizeof(int32_t), &ok);
    p->row_keys = pass_alloc(p, R, sizeof(size_t), &ok);
    p->row_nkeys = pass_alloc(p, R, sizeof(size_t), &ok);
    p->last_row = pass_alloc(p, 4 * S, sizeof(size_t), &ok);
    p->blas_seqs = pass_alloc(p, S, sizeof(size_t), &ok);
    int any_blas = 0, any_gather = 0;
    for (size_t s = 0; s < S; s++) {
        size_t shared = b->shared_len ? b->shared_len[s] : 0;
        if (uses_blas_attention(e, b->n_tokens[s], shared)) any_blas = 1, any_gather |= shared > 0;
    }
    if (any_blas)
        p->scores = pass_alloc(p, (size_t)e->n_threads * RM_CPU_ATTN_BLOCK * p->max_len, sizeof(float), &ok);
    if (any_gather) {
        p->kbuf = pass_alloc(p, p->max_len * KD, sizeof(float), &ok);
        p->vbuf = pass_alloc(p, p->max_len * KD, sizeof(float), &ok);
    }
    p->x = pass_alloc(p, R * H, sizeof(float), &ok);
    p->h = pass_alloc(p, RQ * H, sizeof(float), &ok);
    p->q = pass_alloc(p, RQ * QD, sizeof(float), &ok);
    p->k = pass_alloc(p, R * KD, sizeof(float), &ok);
    p->v = pass_alloc(p, R * KD, sizeof(float), &ok);
    p->att = pass_alloc(p, RQ * QD, sizeof(float), &ok);
    p->xs = pass_alloc(p, S * H, sizeof(float), &ok);
    p->hs = pass_alloc(p, S * H, sizeof(float), &ok);
    p->gate = pass_alloc(p, chunk * F, sizeof(float), &ok);
    p->up = pass_alloc(p, chunk * F, sizeof(float), &ok);
    p->mlp_out = pass_alloc(p, chunk * H, sizeof(float), &ok);
    p->cos_tab = pass_alloc(p, p->max_len * half, sizeof(float), &ok);
    p->sin_tab = pass_alloc(p, p->max_len * half, sizeof(float), &ok);
    p->attn_scratch = pass_alloc(p, (size_t)e->n_threads * group * p->max_len, sizeof(float), &ok);
    if (e->stream_floats) p->wbuf = pass_alloc(p, e->stream_floats, sizeof(float), &ok);
    p->gemm_scratch_bytes = rm_gemm_scratch_bytes(e->gemm, e->gemm_max_k, 0);
    if (any_blas) {     /* attention's fp32 products: k up to the longest sequence */
        size_t attn = rm_gemm_scratch_bytes(rm_gemm_kernel_pick(RM_GEMM_FP32, RM_ISA_COUNT), p->max_len, 0);
        if (attn > p->gemm_scratch_bytes) p->gemm_scratch_bytes = attn;
    }
    p->gemm_scratch = pass_alloc(p, (size_t)e->n_threads, p->gemm_scratch_bytes, &ok);
    if (!ok)
        return rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory for a pass of %zu sequences, %zu token rows",
                       S, R);
    p->last_pos = p->last_row + S;
    p->last_keys = p->last_row + 2 * S;
    p->last_nkeys = p->last_row + 3 * S;

    size_t r = 0, off = 0;
    for (size_t s = 0; s < S; s++) {
        size_t n = b->n_tokens[s], shared = b->shared_len ? b->shared_len[s] : 0;
        int blas = uses_blas_attention(e, n, shared);
        if (blas) p->blas_seqs[p->n_blas++] = s;
        p->seq_off[s] = off;
        p->seq_len[s] = n;
        p->seq_shared[s] = shared;
        if (shared) memcpy(p->row_of + off, p->row_of + p->seq_off[b->parent[s]], shared * sizeof(size_t));
        for (size_t i = shared; i < n; i++, r++) {
            p->row_of[off + i] = r;
            p->row_pos[r] = i;
            p->row_tok[r] = b->tokens[s][i];
            p->row_keys[r] = off;
            p->row_nkeys[r] = blas ? 0 : i + 1;
        }
        p->last_row[s] = p->row_of[off + n - 1];
        p->last_pos[s] = n - 1;
        p->last_keys[s] = off;
        p->last_nkeys[s] = n;
        off += n;
    }
    return RM_OK;
}

/* What the GEMM reads for matrix m: resident / in place, or converted into dst. */
typedef struct weights {
    const void *data;
    rm_gemm_wtype wtype;
} weights;

static weights weights_of(rm_engine *e, pass *p, const cpu_matrix *m, float *dst) {
    if (m->data) {
        p->bytes_read += matrix_floats(m) * (m->wtype == RM_GEMM_W_BF16 ? sizeof(uint16_t) : sizeof(float));
        return (weights){m->data, m->wtype};
    }
    rm_cpu_convert(m->t, m->rows, m->cols, dst, e->n_threads);
    p->bytes_read += m->t->n_bytes;
    return (weights){dst, RM_GEMM_W_F32};
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Y[n, m->rows] = X[n, m->cols] . W^T (+ bias). The GEMM counters let the
 * benchmark report the rate of the products alone. */
static void linear(rm_engine *e, pass *p, const float *X, size_t n, const cpu_matrix *m, weights W, const float *bias,
                   float *Y) {
    size_t out = (size_t)m->rows, in = (size_t)m->cols;
    rm_gemm_args g = {.m = n, .n = out, .k = in, .x = X, .ldx = in, .w = W.data, .ldw = in, .wtype = W.wtype,
                      .bias = bias, .y = Y, .ldy = out};
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    rm_gemm(e->gemm, &g, p->gemm_scratch, e->n_threads);  /* cannot fail: kernel, W and scratch are the engine's */
    rm_counter_add(&e->gemm_ns, clock_ns(CLOCK_MONOTONIC) - t0);
    rm_counter_add(&e->gemm_cpu_ns, clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0);
    rm_counter_add(&e->gemm_flops, 2 * (uint64_t)n * out * in);
}

static void gather_rows(float *dst, const float *src, const size_t *rows, size_t n, size_t width) {
    for (size_t i = 0; i < n; i++) memcpy(dst + i * width, src + rows[i] * width, width * sizeof(float));
}

/* The sequences with many queries: BLAS attention over their own rows. */
static rm_status attention_blas(rm_engine *e, pass *p, rm_err *err) {
    const rm_config *c = &e->cfg;
    size_t QD = (size_t)(c->n_heads * c->head_dim), KD = (size_t)(c->n_kv_heads * c->head_dim);
    for (size_t i = 0; i < p->n_blas; i++) {
        size_t s = p->blas_seqs[i], off = p->seq_off[s], n = p->seq_len[s], shared = p->seq_shared[s];
        size_t r0 = p->row_of[off + shared];
        const float *k = p->k + r0 * KD, *v = p->v + r0 * KD;
        if (shared) {   /* the keys are the parent's rows then these: gather them */
            for (size_t j = 0; j < n; j++) {
                memcpy(p->kbuf + j * KD, p->k + p->row_of[off + j] * KD, KD * sizeof(float));
                memcpy(p->vbuf + j * KD, p->v + p->row_of[off + j] * KD, KD * sizeof(float));
            }
            k = p->kbuf, v = p->vbuf;
        }
        rm_cpu_attn_run run = {
            .q = p->q + r0 * QD, .out = p->att + r0 * QD, .k = k, .v = v,
            .n_q = n - shared, .first_pos = shared, .n_heads = (size_t)c->n_heads,
            .n_kv_heads = (size_t)c->n_kv_heads, .head_dim = (size_t)c->head_dim,
            .scale = (float)(1.0 / sqrt((double)c->head_dim)), .scores = p->scores,
            .gemm_scratch = p->gemm_scratch, .gemm_scratch_bytes = p->gemm_scratch_bytes,
        };
        if (rm_cpu_attention_blas(&run, e->n_threads) != RM_OK)
            return rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory for attention's GEMM scratch");
    }
    return RM_OK;
}

/* A tensor-parallel rank holds a slice of the input columns of o_proj and
 * down_proj: its output is a partial sum, completed over the ranks. */
static rm_status all_reduce(rm_engine *e, float *y, size_t n, rm_err *err) {
    return e->comm ? rm_comm_all_reduce(e->comm, y, n, RM_COMM_F32, NULL, err) : RM_OK;
}

/* One decoder layer. Not last: every row is a query and x is updated in
 * place. Last: the queries are the sequences' last tokens, whose updated
 * residual rows land in p->xs. */
static rm_status layer(rm_engine *e, pass *p, int64_t l, int last, rm_err *err) {
    const rm_config *c = &e->cfg;
    const cpu_layer *L = &e->layers[l];
    int nt = e->n_threads;
    size_t R = p->n_rows, H = (size_t)c->hidden, NH = (size_t)c->n_heads, NKV = (size_t)c->n_kv_heads,
           HD = (size_t)c->head_dim, F = (size_t)c->ffn;
    size_t nq = last ? p->n_seqs : R;
    /* Per-pass conversion slots: the attention matrices one at a time, the
     * three MLP matrices side by side (the MLP runs in row chunks). */
    float *wslot = p->wbuf, *wgate = p->wbuf, *wup = NULL, *wdown = NULL;
    if (p->wbuf) {
        wup = wgate + (L->w_gate.data ? 0 : matrix_floats(&L->w_gate));
        wdown = wup + (L->w_up.data ? 0 : matrix_floats(&L->w_up));
    }

    /* Attention. */
    rm_cpu_rmsnorm(p->h, p->x, L->attn_norm, R, H, c->rms_eps, nt);
    linear(e, p, p->h, R, &L->wk, weights_of(e, p, &L->wk, wslot), L->bk, p->k);
    linear(e, p, p->h, R, &L->wv, weights_of(e, p, &L->wv, wslot), L->bv, p->v);
    const float *hq = p->h;
    if (last) {
        gather_rows(p->hs, p->h, p->last_row, nq, H);
        hq = p->hs;
    }
    linear(e, p, hq, nq, &L->wq, weights_of(e, p, &L->wq, wslot), L->bq, p->q);
    if (c->qk_norm) {
        rm_cpu_head_rmsnorm(p->q, L->q_norm, nq, NH, HD, c->rms_eps, nt);
        rm_cpu_head_rmsnorm(p->k, L->k_norm, R, NKV, HD, c->rms_eps, nt);
    }
    rm_cpu_rope(p->q, nq, NH, HD, last ? p->last_pos : p->row_pos, p->cos_tab, p->sin_tab, nt);
    rm_cpu_rope(p->k, R, NKV, HD, p->row_pos, p->cos_tab, p->sin_tab, nt);
    rm_cpu_attn a = {
        .q = p->q, .k = p->k, .v = p->v, .out = p->att,
        .n_q = nq, .n_heads = NH, .n_kv_heads = NKV, .head_dim = HD,
        .key_rows = p->row_of, .key_off = last ? p->last_keys : p->row_keys,
        .n_keys = last ? p->last_nkeys : p->row_nkeys,
        .max_keys = p->max_len, .scale = (float)(1.0 / sqrt((double)HD)), .scratch = p->attn_scratch,
    };
    if (!last) {
        rm_status ast = attention_blas(e, p, err);
        if (ast) return ast;
    }
    rm_cpu_attention(&a, nt);
    float *xq = p->x;
    if (last) {
        gather_rows(p->xs, p->x, p->last_row, nq, H);
        xq = p->xs;
    }
    linear(e, p, p->att, nq, &L->wo, weights_of(e, p, &L->wo, wslot), L->bo, p->h);   /* h: free again */
    rm_status st = all_reduce(e, p->h, nq * H, err);
    if (st) return st;
    rm_cpu_add(xq, p->h, nq * H, nt);

    /* MLP, in row chunks. */
    weights Wg = weights_of(e, p, &L->w_gate, wgate), Wu = weights_of(e, p, &L->w_up, wup),
            Wd = weights_of(e, p, &L->w_down, wdown);
    size_t chunk = nq < MLP_CHUNK ? nq : MLP_CHUNK;   /* plan() sized the buffers for this */
    for (size_t r0 = 0; r0 < nq; r0 += chunk) {
        size_t n = nq - r0 < chunk ? nq - r0 : chunk;
        float *xr = xq + r0 * H, *hr = p->h + r0 * H;
        rm_cpu_rmsnorm(hr, xr, L->mlp_norm, n, H, c->rms_eps, nt);
        linear(e, p, hr, n, &L->w_gate, Wg, L->b_gate, p->gate);
        linear(e, p, hr, n, &L->w_up, Wu, L->b_up, p->up);
        rm_cpu_silu_mul(p->gate, p->up, n * F, nt);
        linear(e, p, p->gate, n, &L->w_down, Wd, L->b_down, p->mlp_out);
        if ((st = all_reduce(e, p->mlp_out, n * H, err))) return st;
        rm_cpu_add(xr, p->mlp_out, n * H, nt);
    }
    rm_counter_add(&e->layer_tokens[l], nq);
    rm_counter_add(&e->counts.tokens_computed, nq);
    return RM_OK;
}

static void embed(rm_engine *e, pass *p) {
    const rm_tensor *t = e->w->embed;
    size_t H = (size_t)e->cfg.hidden, R = p->n_rows;
    size_t n_blocks = (R + EMBED_BLOCK - 1) / EMBED_BLOCK;
#pragma omp parallel for num_threads(e->n_threads) schedule(static) if (R * H >= 32768)
    for (size_t bi = 0; bi < n_blocks; bi++)
        for (size_t r = bi * EMBED_BLOCK; r < R && r < (bi + 1) * EMBED_BLOCK; r++)
            rm_tensor_rows_f32(t, p->row_tok[r], 1, p->x + r * H);
    p->bytes_read += (uint64_t)R * H * rm_dtype_size(t->dtype);
}

static rm_status cpu_forward(rm_engine *e, const rm_batch *b, float *out_hidden, rm_err *err) {
    if (!e || !b || !out_hidden) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: NULL argument to forward");
    if (b->n_seqs == 0) return RM_OK;
    pass p;
    memset(&p, 0, sizeof p);
    rm_status st = check_batch(e, b, &p, err);
    if (st) return st;
    if ((st = plan(e, b, &p, err))) {
        pass_free(&p);
        return st;
    }

    const rm_config *c = &e->cfg;
    rm_cpu_rope_table(e->inv_freq, (size_t)c->head_dim / 2, p.max_len, p.cos_tab, p.sin_tab, e->n_threads);
    embed(e, &p);
    for (int64_t l = 0; l < c->n_layers; l++)
        if ((st = layer(e, &p, l, l == c->n_layers - 1, err))) {
            pass_free(&p);
            return st;
        }
    rm_cpu_rmsnorm(out_hidden, p.xs, e->final_norm, p.n_seqs, (size_t)c->hidden, c->rms_eps, e->n_threads);

    rm_counter_add(&e->counts.forward_passes, 1);
    rm_counter_add(&e->counts.tokens_last_layer, p.n_seqs);
    rm_counter_add(&e->counts.weight_bytes_read, p.bytes_read);
    pass_free(&p);
    return RM_OK;
}

/* ---------------------------------------------------------------- heads */

static rm_status cpu_head_rows(rm_engine *e, const rm_tensor *t, const int64_t *rows, size_t n_rows,
                               const float *hidden, float *out, rm_err *err) {
    if (!e || !t) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: NULL engine or head matrix");
    if (n_rows == 0) return RM_OK;
    if (!rows || !hidden || !out) return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: NULL head argument");
    int64_t H = e->cfg.hidden, n_mat_rows, width;
    if (t->n_dims == 2) n_mat_rows = t->shape[0], width = t->shape[1];
    else if (t->n_dims == 1) n_mat_rows = 1, width = t->shape[0];
    else return rm_fail(err, RM_ERR_SHAPE, "cpu engine: head %s has %d dimensions", t->name ? t->name : "?", t->n_dims);
    if (width != H)
        return rm_fail(err, RM_ERR_SHAPE, "cpu engine: head %s rows have %lld values, hidden is %lld",
                       t->name ? t->name : "?", (long long)width, (long long)H);
    for (size_t i = 0; i < n_rows; i++)
        if (rows[i] < 0 || rows[i] >= n_mat_rows)
            return rm_fail(err, RM_ERR_INVALID_ARG, "cpu engine: row %lld of head %s outside [0, %lld)",
                           (long long)rows[i], t->name ? t->name : "?", (long long)n_mat_rows);
    int in_place = is_f32_in_place(t);
    float *buf = in_place ? NULL : rm_malloc((size_t)H * sizeof *buf);
    if (!in_place && !buf) return rm_fail(err, RM_ERR_NOMEM, "cpu engine: out of memory for a head row");
    for (size_t i = 0; i < n_rows; i++) {
        const float *w = in_place ? (const float *)t->data + rows[i] * H : buf;
        if (!in_place) rm_tensor_rows_f32(t, rows[i], 1, buf);
        double acc = 0;
        for (int64_t j = 0; j < H; j++) acc += (double)w[j] * hidden[j];
        out[i] = (float)acc;
    }
    rm_mfree(buf);
    rm_counter_add(&e->counts.weight_bytes_read, (uint64_t)n_rows * (uint64_t)H * rm_dtype_size(t->dtype));
    return RM_OK;
}

/* ---------------------------------------------------------------- counters */

static void cpu_counters(rm_engine *e, rm_engine_counters *out, uint64_t *layer_tokens_out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (e) rm_counters_read(&e->counts, e->layer_tokens, e->cfg.n_layers, out, layer_tokens_out);
}

static void cpu_counters_reset(rm_engine *e) {
    if (!e) return;
    rm_counters_clear(&e->counts, e->layer_tokens, e->cfg.n_layers);
    __atomic_store_n(&e->gemm_flops, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->gemm_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->gemm_cpu_ns, 0, __ATOMIC_RELAXED);
}

const rm_engine_ops rm_engine_cpu = {
    .name = "cpu",
    .create = cpu_create,
    .forward = cpu_forward,
    .head_rows = cpu_head_rows,
    .counters = cpu_counters,
    .counters_reset = cpu_counters_reset,
    .destroy = cpu_destroy,
};
