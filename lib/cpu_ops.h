/*
 * cpu_ops.h - the row operations of the CPU forward pass (engine_cpu.c).
 * The CUDA engine's kernels carry the same names and are tested against
 * these. All data is fp32, rows contiguous with the stride given; every op
 * that takes n_threads splits its rows over at most that many OpenMP
 * threads, each row computed by one thread with the same code, so results
 * do not depend on the thread count.
 */
#ifndef RM_CPU_OPS_H
#define RM_CPU_OPS_H

#include "common.h"
#include "config.h"
#include "weights.h"

/* y[r] = x[r] * rsqrt(mean(x[r]^2) + eps) * w, for n_rows rows of dim floats
 * (Hugging Face LlamaRMSNorm in fp32). y may equal x. */
RM_INTERNAL void rm_cpu_rmsnorm(float *y, const float *x, const float *w, size_t n_rows, size_t dim,
                                double eps, int n_threads);

/* The same per head, in place: each row holds n_heads vectors of head_dim
 * (Qwen3's q_norm / k_norm). */
RM_INTERNAL void rm_cpu_head_rmsnorm(float *x, const float *w, size_t n_rows, size_t n_heads,
                                     size_t head_dim, double eps, int n_threads);

/* Y[n, out] = X[n, in] . W[out, in]^T (+ bias[out]) in fp32: the GEMM of
 * every projection, through the widest fp32 kernel of lib/cpu/gemm.h (the
 * engine calls rm_gemm itself, with its scratch and bf16 weights). The
 * output columns are split over the OpenMP threads; every element is
 * computed the same way whatever the thread count, the number of rows and
 * the ISA (gemm.h). Returns RM_ERR_NOMEM when its scratch cannot be had. */
RM_INTERNAL rm_status rm_cpu_linear(float *Y, const float *X, size_t n, const float *W, size_t out, size_t in,
                                    const float *bias, int n_threads);

/* y[i] += x[i]. */
RM_INTERNAL void rm_cpu_add(float *y, const float *x, size_t n, int n_threads);

/* g[i] = silu(g[i]) * u[i] (the SwiGLU of the MLP). */
RM_INTERNAL void rm_cpu_silu_mul(float *g, const float *u, size_t n, int n_threads);

/* RoPE inverse frequencies, head_dim / 2 of them, computed in fp32 exactly
 * as transformers does (default and llama3 rope types). */
RM_INTERNAL void rm_cpu_rope_inv_freq(const rm_config *cfg, float *inv_freq);

/* cos / sin tables for positions [0, n_pos): tab[p * half + i] of
 * angle = (float)p * inv_freq[i], rounded to fp32 before cos/sin as
 * transformers does (the fp32 product matters at long positions). */
RM_INTERNAL void rm_cpu_rope_table(const float *inv_freq, size_t half, size_t n_pos, float *cos_tab,
                                   float *sin_tab, int n_threads);

/* Rotates n_heads vectors of head_dim in each row in place (rotate_half
 * convention: pairs (i, i + head_dim/2)); row r is at position pos[r]. */
RM_INTERNAL void rm_cpu_rope(float *x, size_t n_rows, size_t n_heads, size_t head_dim, const size_t *pos,
                             const float *cos_tab, const float *sin_tab, int n_threads);

/* Causal grouped-query attention over packed rows.
 * Query i (row i of q, n_heads * head_dim floats) attends to the key/value
 * rows key_rows[key_off[i] + j] for j < n_keys[i] (k and v rows hold
 * n_kv_heads * head_dim floats). out row i gets n_heads * head_dim floats;
 * a query with n_keys[i] == 0 is skipped (another path computes it).
 * scratch: n_threads * (n_heads / n_kv_heads) * max_keys floats. */
typedef struct rm_cpu_attn {
    const float *q, *k, *v;
    float *out;
    size_t n_q, n_heads, n_kv_heads, head_dim;
    const size_t *key_rows, *key_off, *n_keys;
    size_t max_keys;
    float scale;
    float *scratch;
} rm_cpu_attn;
RM_INTERNAL void rm_cpu_attention(const rm_cpu_attn *a, int n_threads);

/* The same for a run of consecutive query rows of one sequence, through
 * GEMMs: per head and block of queries, scores = Q K^T (one GEMM), scaled,
 * a masked softmax per row, then P V (another GEMM). Faster than
 * rm_cpu_attention when a sequence has many queries (long prompts); the
 * causal mask costs at most one block of extra keys per query.
 * Query i is at position first_pos + i and attends keys 0 .. first_pos + i,
 * which are rows 0 .. of k and v (contiguous, stride n_kv_heads * head_dim).
 * Heads and blocks are split over the threads, each running a
 * single-threaded fp32 rm_gemm (lib/cpu/gemm.h) in its own scratch.
 * scores: n_threads * RM_CPU_ATTN_BLOCK * (first_pos + n_q) floats.
 * gemm_scratch: n_threads * gemm_scratch_bytes, at least
 * rm_gemm_scratch_bytes(fp32 kernel, first_pos + n_q, 0) each; NULL: each
 * thread allocates its own, and RM_ERR_NOMEM is the only failure. */
#define RM_CPU_ATTN_BLOCK 256
typedef struct rm_cpu_attn_run {
    const float *q;             /* n_q rows of n_heads * head_dim */
    float *out;                 /* n_q rows, same layout */
    const float *k, *v;         /* first_pos + n_q rows of n_kv_heads * head_dim */
    size_t n_q, first_pos, n_heads, n_kv_heads, head_dim;
    float scale;
    float *scores;
    void *gemm_scratch;
    size_t gemm_scratch_bytes;
} rm_cpu_attn_run;
RM_INTERNAL rm_status rm_cpu_attention_blas(const rm_cpu_attn_run *a, int n_threads);

/* Converts rows of a weight matrix (rm_tensor) to fp32 with up to
 * n_threads threads: out holds n_rows * row_len floats. */
RM_INTERNAL void rm_cpu_convert(const rm_tensor *t, int64_t n_rows, int64_t row_len, float *out,
                                int n_threads);

/* FP8 e4m3 (the "fn" variant: bias 7, max 448, no infinities, 0x7F/0xFF NaN).
 * rm_fp8_e4m3_from_f32 rounds to nearest even and saturates to +-448 (NaN
 * stays NaN), as CUDA's __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)
 * does; the CUDA quantiser must give the same bytes (tests/test_kernels). */
RM_INTERNAL uint8_t rm_fp8_e4m3_from_f32(float x);
RM_INTERNAL float rm_fp8_e4m3_to_f32(uint8_t q);

/* Row-wise FP8 quantisation, the one definition both devices follow: for each
 * of n_rows rows of `cols` floats, amax = max |x| (NaN ignored),
 * scale = amax / 448 (1 when amax is 0 or not finite), and
 * q[j] = rm_fp8_e4m3_from_f32(x[j] / scale), an IEEE fp32 division. x * scale
 * then approximates the value. Used for weights (one scale per output
 * channel) and activations (one per token). */
RM_INTERNAL void rm_cpu_quantize_fp8_rows(const float *x, size_t n_rows, size_t cols, uint8_t *q,
                                          float *scales, int n_threads);

/* ---------------------------------------------------------------- the CPU engine's extras */

struct rm_engine;
struct rm_gemm_kernel;

/* How an fp32 engine gets weights the GEMM cannot read as they are. */
typedef enum rm_cpu_weights {
    RM_CPU_WEIGHTS_AUTO = 0,    /* fp32 and bf16 read in place; fp16 converted to fp32 (below) */
    RM_CPU_WEIGHTS_CONVERT = 1, /* bf16 converted like fp16 (the bench's resident and stream modes) */
} rm_cpu_weights;

typedef struct rm_engine_cpu_opts {
    int n_threads;                      /* 0 = all online cores */
    rm_dtype dtype;                     /* RM_DTYPE_FP32 or RM_DTYPE_BF16 (others refused) */
    rm_cpu_weights weights;             /* fp32 only; bf16 reads bf16 in place, copies the rest to bf16 */
    size_t f32_budget;                  /* fp32: bytes of resident fp32 copies allowed; when the
                                           matrices to convert need more, all are converted per pass */
    const struct rm_gemm_kernel *kernel; /* NULL: rm_gemm_kernel_pick for the dtype; tests force others */
} rm_engine_cpu_opts;

/* rm_engine_cpu.create with every choice explicit (create passes AUTO and
 * rm_engine_cpu_default_budget()). */
RM_INTERNAL rm_status rm_engine_cpu_create_opts(struct rm_engine **out, const rm_config *cfg,
                                                const rm_model_weights *w, const rm_engine_cpu_opts *o,
                                                rm_err *err);
/* fp32, RM_CPU_WEIGHTS_CONVERT with this budget: resident fp32 copies of the
 * bf16 / fp16 matrices when all of them fit, else per-pass conversion. */
RM_INTERNAL rm_status rm_engine_cpu_create_ex(struct rm_engine **out, const rm_config *cfg,
                                              const rm_model_weights *w, int n_threads, size_t f32_budget,
                                              rm_err *err);
/* The budget rm_engine_cpu.create uses: NIM_REWARD_CPU_F32_CACHE_MB when set,
 * else half of physical memory. */
RM_INTERNAL size_t rm_engine_cpu_default_budget(void);
/* 1 when no matrix is converted per pass (in place or resident copies). */
RM_INTERNAL int rm_engine_cpu_is_resident(const struct rm_engine *e);
/* The projections' kernel ("avx2 fp32 6x16", ...). */
RM_INTERNAL const char *rm_engine_cpu_kernel(const struct rm_engine *e);
/* FLOPs of the projections and the wall seconds spent in them since create
 * or counters_reset (the benchmark's GEMM rate), and the process's CPU
 * seconds meanwhile (the rate per core, which another process's load on the
 * machine changes much less). */
RM_INTERNAL void rm_engine_cpu_gemm_stats(const struct rm_engine *e, double *flops, double *seconds,
                                          double *cpu_seconds);
/* Sequences with at least this many queries of their own use BLAS attention
 * (default 64); tests set 0 (always) or SIZE_MAX (never) to compare paths.
 * Not thread-safe against a running forward. */
RM_INTERNAL void rm_engine_cpu_set_attn_blas_min(struct rm_engine *e, size_t min_queries);

/* ---------------------------------------------------------------- twins of the CUDA kernels
 * kernels/kernels.h's rm_cu_X is held to rm_cpu_X here (tests/test_kernels):
 * the same inputs (bf16 as uint16_t bit patterns), the same rounding points,
 * so that the comparison can be tight. Where a name was taken by the fp32
 * engine's op, the twin has a _bf16 suffix. Rows are split over up to
 * n_threads OpenMP threads, each row computed the same way whatever the count. */

/* fp32 -> bf16, round to nearest even; NaN becomes 0x7fff. */
RM_INTERNAL uint16_t rm_bf16_from_f32(float x);

/* x[r] = fp32(embed[tokens[r]]), n_rows rows of `hidden`; 0 <= tokens[r] < vocab. */
RM_INTERNAL void rm_cpu_embedding(float *x, const uint16_t *embed, const int32_t *tokens, size_t n_rows,
                                  size_t hidden, int n_threads);

/* rm_cu_add_rmsnorm: with delta, x[r] += fp32(delta[r]) (rows at delta_stride);
 * then y = x[r] * rsqrt(mean(x[r]^2) + eps) (sum of squares in double,
 * variance and eps in fp32, the reciprocal square root in double rounded to
 * fp32, as rm_cpu_rmsnorm); out[r] = bf16(fp32(bf16(y)) * fp32(w)) when out,
 * out_f32[r] = y * fp32(w) when out_f32 (each may be NULL). */
RM_INTERNAL void rm_cpu_add_rmsnorm(float *x, const uint16_t *delta, size_t delta_stride, const uint16_t *w,
                                    uint16_t *out, float *out_f32, size_t n_rows, size_t dim, float eps,
                                    int n_threads);

/* rm_cu_head_rmsnorm: the same bf16 arithmetic per head, in place; each row
 * holds n_heads vectors of head_dim at x + r * stride. */
RM_INTERNAL void rm_cpu_head_rmsnorm_bf16(uint16_t *x, size_t stride, const uint16_t *w, size_t n_rows,
                                          size_t n_heads, size_t head_dim, float eps, int n_threads);

/* rm_cu_sum_ranks: dst[i] = srcs[0][i] + srcs[1][i] + ... for i in [lo, hi),
 * summed in fp32 in that order; bf16 (1) rounds the sum once, fp32 (0) keeps
 * it. The in-process collective's sum (lib/parallel/comm_threads.c). */
RM_INTERNAL void rm_cpu_sum_ranks(void *dst, void *const *srcs, int n_srcs, size_t lo, size_t hi, int bf16);

/* rm_cu_add_bias: y[r][c] = bf16(fp32(y[r][c]) + fp32(b[c])) for c < cols. */
RM_INTERNAL void rm_cpu_add_bias(uint16_t *y, size_t stride, const uint16_t *b, size_t n_rows, size_t cols,
                                 int n_threads);

/* rm_cu_rope: rm_cpu_rope on bf16 rows in place, row r at position pos[r];
 * angle = (float)pos[r] * inv_freq[i] in fp32, cos / sin as rm_cpu_rope_table,
 * the rotation in fp32, one bf16 rounding. head_dim is even. */
RM_INTERNAL void rm_cpu_rope_bf16(uint16_t *x, size_t stride, size_t n_rows, size_t n_heads, size_t head_dim,
                                  const int32_t *pos, const float *inv_freq, int n_threads);

/* rm_cu_silu_mul: out[r][i] = bf16(silu(fp32(gate)) * fp32(up)), gate and up
 * the halves of gate_up + r * stride; out rows are ffn wide. */
RM_INTERNAL void rm_cpu_silu_mul_bf16(uint16_t *out, const uint16_t *gate_up, size_t stride, size_t n_rows,
                                      size_t ffn, int n_threads);

/* rm_cu_gather_rows: dst[i] = src[rows[i]], n rows of cols floats. */
RM_INTERNAL void rm_cpu_gather_rows(float *dst, const float *src, const int32_t *rows, size_t n, size_t cols,
                                    int n_threads);

/* rm_cu_attention's description with host pointers (the same fields, so a
 * test fills both from one set of arrays): sequence s owns query rows
 * q_begin[s] .. q_begin[s + 1], its first query at position q_pos0[s]; the
 * query at position p sees keys 0 .. min(p, n_keys - 1), key j being row
 * key_rows[key_off[s] + j] of k and v, n_keys = key_off[s + 1] - key_off[s];
 * head h reads kv head h / (n_heads / n_kv_heads). */
typedef struct rm_cpu_attn_bf16 {
    const uint16_t *q, *k, *v;
    uint16_t *out;
    size_t q_stride, kv_stride, out_stride;
    int n_heads, n_kv_heads, head_dim;
    float scale;
    int n_seqs, max_q, max_keys;
    const int32_t *q_begin, *q_pos0, *key_off, *key_rows;
} rm_cpu_attn_bf16;
/* The reference: scores, softmax and the weighted sum of values in double
 * from the bf16 inputs, rounded to bf16 once (the kernel's error against it
 * is its own: fp32 accumulation, P in bf16). A query without keys gets 0.
 * scratch: n_threads * (max_keys + head_dim) doubles. */
RM_INTERNAL void rm_cpu_attention_bf16(const rm_cpu_attn_bf16 *a, double *scratch, int n_threads);

/* rm_cu_random_bf16: out[i] = bf16(rm_random_value(seed, tensor, i) * scale) (lib/random.h). */
RM_INTERNAL void rm_cpu_random_bf16(uint16_t *out, size_t n, uint64_t seed, uint64_t tensor, float scale,
                                    int n_threads);

#endif
