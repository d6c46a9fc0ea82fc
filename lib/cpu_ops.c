/*
 * cpu_ops.c - the row operations of the CPU forward pass, in fp32, mirroring
 * transformers' arithmetic where the order of rounding matters (RoPE
 * frequencies and angles, RMSNorm) and accumulating in double where more
 * accuracy costs nothing measurable (norms, softmax sums).
 */
#include "cpu_ops.h"

#include "cpu/gemm.h"
#include "cpu/vmath.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Hot loops get an AVX-512 and an AVX2+FMA clone, picked at load time, so
 * the library stays portable to any x86-64 while using the vector units
 * present (the build does not pass -march). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(RM_NO_CLONES)
#define RM_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RM_HOT
#endif

/* Below this much work a loop runs on the calling thread: a parallel region
 * costs more than it saves. */
#define PAR_MIN_WORK 32768

static double sum_squares(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

/* transformers: variance = mean(x^2) in fp32; x * rsqrt(variance + eps); * w. */
static void rmsnorm_row(float *y, const float *x, const float *w, size_t dim, double eps) {
    float var = (float)(sum_squares(x, dim) / (double)dim);
    float r = (float)(1.0 / sqrt((double)(var + (float)eps)));
    for (size_t i = 0; i < dim; i++) y[i] = w[i] * (x[i] * r);
}

void rm_cpu_rmsnorm(float *y, const float *x, const float *w, size_t n_rows, size_t dim, double eps,
                    int n_threads) {
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_rows * dim >= PAR_MIN_WORK)
    for (size_t r = 0; r < n_rows; r++) rmsnorm_row(y + r * dim, x + r * dim, w, dim, eps);
}

void rm_cpu_head_rmsnorm(float *x, const float *w, size_t n_rows, size_t n_heads, size_t head_dim,
                         double eps, int n_threads) {
    size_t n = n_rows * n_heads;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n * head_dim >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) rmsnorm_row(x + i * head_dim, x + i * head_dim, w, head_dim, eps);
}

void rm_cpu_add(float *y, const float *x, size_t n, int n_threads) {
#pragma omp parallel for simd num_threads(n_threads) schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* torch.nn.functional.silu in fp32: x / (1 + exp(-x)); the exps a chunk at
 * a time through the vector expf (cpu/vmath.h). */
#define SILU_CHUNK 256
void rm_cpu_silu_mul(float *g, const float *u, size_t n, int n_threads) {
    size_t n_chunks = (n + SILU_CHUNK - 1) / SILU_CHUNK;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t c = 0; c < n_chunks; c++) {
        float e[SILU_CHUNK];
        size_t i0 = c * SILU_CHUNK, len = n - i0 < SILU_CHUNK ? n - i0 : SILU_CHUNK;
        for (size_t k = 0; k < len; k++) e[k] = -g[i0 + k];
        rm_cpu_expf_inplace(e, len);
        for (size_t k = 0; k < len; k++) g[i0 + k] = g[i0 + k] / (1.0f + e[k]) * u[i0 + k];
    }
}

/* ---------------------------------------------------------------- RoPE */

/* transformers' _compute_default_rope_parameters:
 *   1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))   all in fp32
 * and _compute_llama3_parameters, also fp32 tensor arithmetic with Python
 * scalars (which take the tensor's dtype). */
void rm_cpu_rope_inv_freq(const rm_config *cfg, float *inv_freq) {
    size_t dim = (size_t)cfg->head_dim, half = dim / 2;
    for (size_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)dim;
        inv_freq[i] = 1.0f / powf((float)cfg->rope_theta, e);
    }
    if (cfg->rope_type != RM_ROPE_LLAMA3) return;
    float factor = (float)cfg->rope_factor, low = (float)cfg->rope_low_freq_factor,
          high = (float)cfg->rope_high_freq_factor, old_ctx = (float)cfg->rope_orig_max_pos;
    float low_freq_wavelen = (float)((double)cfg->rope_orig_max_pos / cfg->rope_low_freq_factor);
    float high_freq_wavelen = (float)((double)cfg->rope_orig_max_pos / cfg->rope_high_freq_factor);
    for (size_t i = 0; i < half; i++) {
        float inv = inv_freq[i];
        float wavelen = (float)(2 * M_PI) / inv;
        float scaled = wavelen > low_freq_wavelen ? inv / factor : inv;
        if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
            float smooth = (old_ctx / wavelen - low) / (float)((double)high - (double)low);
            scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
        }
        inv_freq[i] = scaled;
    }
}

/* freqs = inv_freq @ position_ids in fp32 (a product of two floats, rounded
 * once), emb = cat(freqs, freqs), then cos / sin. cos and sin are taken in
 * double of the fp32 angle and rounded: the correctly rounded value that
 * torch's fp32 kernels approximate to within an ulp. */
void rm_cpu_rope_table(const float *inv_freq, size_t half, size_t n_pos, float *cos_tab, float *sin_tab,
                       int n_threads) {
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_pos * half >= PAR_MIN_WORK / 8)
    for (size_t p = 0; p < n_pos; p++)
        for (size_t i = 0; i < half; i++) {
            float angle = (float)p * inv_freq[i];
            cos_tab[p * half + i] = (float)cos((double)angle);
            sin_tab[p * half + i] = (float)sin((double)angle);
        }
}

/* q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x2, x1). */
void rm_cpu_rope(float *x, size_t n_rows, size_t n_heads, size_t head_dim, const size_t *pos,
                 const float *cos_tab, const float *sin_tab, int n_threads) {
    size_t half = head_dim / 2, width = n_heads * head_dim;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_rows * width >= PAR_MIN_WORK)
    for (size_t r = 0; r < n_rows; r++) {
        const float *c = cos_tab + pos[r] * half, *s = sin_tab + pos[r] * half;
        for (size_t h = 0; h < n_heads; h++) {
            float *v = x + r * width + h * head_dim;
            for (size_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

/* ---------------------------------------------------------------- attention */

/* Softmax of row s over keys [0, n_valid) (max-subtracted, sum in double),
 * zeros in [n_valid, n). Both attention paths use it, so they agree. */
static void softmax_row(float *s, size_t n_valid, size_t n) {
    float max = s[0];
#pragma omp simd reduction(max : max)
    for (size_t j = 1; j < n_valid; j++) max = s[j] > max ? s[j] : max;
#pragma omp simd
    for (size_t j = 0; j < n_valid; j++) s[j] -= max;
    rm_cpu_expf_inplace(s, n_valid);
    /* In double, in the lanes of this build's vector width: the order is
     * fixed by the binary, and a double sum of at most 2^20 floats in 0..1
     * rounds far below the float it becomes. */
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (size_t j = 0; j < n_valid; j++) sum += s[j];
    float inv = (float)(1.0 / sum);
#pragma omp simd
    for (size_t j = 0; j < n_valid; j++) s[j] *= inv;
    if (n > n_valid) memset(s + n_valid, 0, (n - n_valid) * sizeof *s);
}

/* One query row against its keys for the `group` query heads that share kv
 * head g: scores, softmax in fp32 (max-subtracted, sum in double), then the
 * weighted sum of value rows. s holds group * n_keys floats. */
RM_HOT static void attend_group(const rm_cpu_attn *a, size_t i, size_t g, float *s) {
    size_t hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    size_t q_stride = a->n_heads * hd, kv_stride = a->n_kv_heads * hd;
    size_t nk = a->n_keys[i];
    if (nk == 0) return;        /* a query another path handles */
    const size_t *rows = a->key_rows + a->key_off[i];
    const float *q = a->q + i * q_stride + g * group * hd;
    float *out = a->out + i * q_stride + g * group * hd;

    for (size_t j = 0; j < nk; j++) {
        const float *k = a->k + rows[j] * kv_stride + g * hd;
        for (size_t h = 0; h < group; h++) {
            const float *qh = q + h * hd;
            float acc = 0;
#pragma omp simd reduction(+ : acc)
            for (size_t d = 0; d < hd; d++) acc += qh[d] * k[d];
            s[h * nk + j] = acc * a->scale;
        }
    }
    for (size_t h = 0; h < group; h++) {
        softmax_row(s + h * nk, nk, nk);
        memset(out + h * hd, 0, hd * sizeof *out);
    }
    for (size_t j = 0; j < nk; j++) {
        const float *v = a->v + rows[j] * kv_stride + g * hd;
        for (size_t h = 0; h < group; h++) {
            float p = s[h * nk + j], *o = out + h * hd;
#pragma omp simd
            for (size_t d = 0; d < hd; d++) o[d] += p * v[d];
        }
    }
}

void rm_cpu_attention(const rm_cpu_attn *a, int n_threads) {
    size_t n_items = a->n_q * a->n_kv_heads;
    size_t per_thread = a->n_heads / a->n_kv_heads * a->max_keys;
    /* Work grows with the query's position: small dynamic chunks balance it. */
#pragma omp parallel num_threads(n_threads) if (n_items > 1)
    {
        float *s = a->scratch + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic, 4)
        for (size_t it = 0; it < n_items; it++) attend_group(a, it / a->n_kv_heads, it % a->n_kv_heads, s);
    }
}

rm_status rm_cpu_attention_blas(const rm_cpu_attn_run *a, int n_threads) {
    size_t hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    size_t n_blocks = (a->n_q + RM_CPU_ATTN_BLOCK - 1) / RM_CPU_ATTN_BLOCK, n_items = a->n_heads * n_blocks;
    size_t per_thread = (size_t)RM_CPU_ATTN_BLOCK * (a->first_pos + a->n_q);
    size_t q_stride = a->n_heads * hd, kv_stride = a->n_kv_heads * hd;
    const rm_gemm_kernel *kern = rm_gemm_kernel_pick(RM_GEMM_FP32, RM_ISA_COUNT);
    int failed = 0;
    /* Later blocks see more keys: dynamic scheduling balances them. */
#pragma omp parallel num_threads(n_threads) if (n_items > 1) reduction(| : failed)
    {
        int t = omp_get_thread_num();
        float *scores = a->scores + (size_t)t * per_thread;
        void *ws = a->gemm_scratch ? (char *)a->gemm_scratch + (size_t)t * a->gemm_scratch_bytes : NULL;
#pragma omp for schedule(dynamic, 1)
        for (size_t it = 0; it < n_items; it++) {
            size_t h = it / n_blocks, q0 = (n_blocks - 1 - it % n_blocks) * RM_CPU_ATTN_BLOCK;  /* big first */
            const float *k = a->k + (h / group) * hd, *v = a->v + (h / group) * hd;
            size_t nb = a->n_q - q0 < RM_CPU_ATTN_BLOCK ? a->n_q - q0 : RM_CPU_ATTN_BLOCK;
            size_t n_keys = a->first_pos + q0 + nb;   /* the block's last query sees them all */
            rm_gemm_args qk = {.m = nb, .n = n_keys, .k = hd, .x = a->q + q0 * q_stride + h * hd, .ldx = q_stride,
                               .w = k, .ldw = kv_stride, .wtype = RM_GEMM_W_F32, .y = scores, .ldy = n_keys};
            if (rm_gemm(kern, &qk, ws, 1) != RM_OK) {
                failed = 1;
                continue;
            }
            for (size_t i = 0; i < nb; i++) {
                float *s = scores + i * n_keys;
                size_t valid = a->first_pos + q0 + i + 1;
                for (size_t j = 0; j < valid; j++) s[j] *= a->scale;   /* as the row kernel: dot, then scale */
                softmax_row(s, valid, n_keys);
            }
            rm_gemm_args pv = {.m = nb, .n = hd, .k = n_keys, .x = scores, .ldx = n_keys, .w = v, .ldw = kv_stride,
                               .wtype = RM_GEMM_W_F32, .w_kn = 1, .y = a->out + q0 * q_stride + h * hd,
                               .ldy = q_stride};
            if (rm_gemm(kern, &pv, ws, 1) != RM_OK) failed = 1;
        }
    }
    return failed ? RM_ERR_NOMEM : RM_OK;
}

/* ---------------------------------------------------------------- projections */

rm_status rm_cpu_linear(float *Y, const float *X, size_t n, const float *W, size_t out, size_t in, const float *bias,
                        int n_threads) {
    rm_gemm_args g = {.m = n, .n = out, .k = in, .x = X, .ldx = in, .w = W, .ldw = in, .wtype = RM_GEMM_W_F32,
                      .bias = bias, .y = Y, .ldy = out};
    return rm_gemm(rm_gemm_kernel_pick(RM_GEMM_FP32, RM_ISA_COUNT), &g, NULL, n_threads);
}

/* ---------------------------------------------------------------- weights */

#define CONVERT_BLOCK_ROWS 64

void rm_cpu_convert(const rm_tensor *t, int64_t n_rows, int64_t row_len, float *out, int n_threads) {
    int64_t n_blocks = (n_rows + CONVERT_BLOCK_ROWS - 1) / CONVERT_BLOCK_ROWS;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_rows * row_len >= PAR_MIN_WORK)
    for (int64_t b = 0; b < n_blocks; b++) {
        int64_t r0 = b * CONVERT_BLOCK_ROWS;
        int64_t nr = n_rows - r0 < CONVERT_BLOCK_ROWS ? n_rows - r0 : CONVERT_BLOCK_ROWS;
        rm_tensor_rows_f32(t, r0, nr, out + r0 * row_len);
    }
}

/* ---------------------------------------------------------------- FP8 e4m3 */

uint8_t rm_fp8_e4m3_from_f32(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint8_t sign = (uint8_t)((bits >> 24) & 0x80);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7f;              /* NaN */
    if (abs >= 0x43e00000u) return sign | 0x7e;             /* >= 448 (and inf): saturate */
    int exp = (int)(abs >> 23) - 127;                       /* unbiased fp32 exponent */
    uint32_t mant = abs & 0x7fffffu;
    if (exp >= -6) {                                        /* normal in e4m3 */
        /* keep 3 mantissa bits, round to nearest even on the 20 dropped */
        uint32_t keep = mant >> 20, rest = mant & 0xfffffu, half = 0x80000u;
        uint32_t v = ((uint32_t)(exp + 7) << 3) | keep;
        if (rest > half || (rest == half && (keep & 1))) v++;   /* may carry into the exponent */
        if (v > 0x7e) v = 0x7e;                             /* rounding up past 448 saturates */
        return sign | (uint8_t)v;
    }
    /* subnormal in e4m3: value = m * 2^-9, m in 0..7; x = (1.mant) * 2^exp */
    if (exp < -10) return sign;                             /* below half of 2^-9: rounds to 0 */
    uint32_t full = mant | 0x800000u;                       /* 24-bit significand, x = full * 2^(exp-23) */
    int shift = 23 - 9 - exp;                               /* m = full >> shift, 15 .. 24 */
    uint32_t m = full >> shift, rest = full & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (m & 1))) m++;      /* m == 8 becomes the smallest normal */
    return sign | (uint8_t)m;
}

float rm_fp8_e4m3_to_f32(uint8_t q) {
    int sign = q & 0x80, e = (q >> 3) & 0xf, m = q & 7;
    float v;
    if (e == 0xf && m == 7) v = NAN;
    else if (e == 0) v = ldexpf((float)m, -9);
    else v = ldexpf((float)(8 + m), e - 10);
    return sign ? -v : v;
}

void rm_cpu_quantize_fp8_rows(const float *x, size_t n_rows, size_t cols, uint8_t *q, float *scales,
                              int n_threads) {
#pragma omp parallel for num_threads(n_threads > 0 ? n_threads : 1) schedule(static) if (n_rows > 1)
    for (size_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * cols;
        float amax = 0;
        for (size_t j = 0; j < cols; j++) {
            float a = fabsf(xr[j]);
            if (a > amax) amax = a;                         /* NaN compares false: ignored */
        }
        float scale = amax > 0 && isfinite(amax) ? amax / 448.0f : 1.0f;
        scales[r] = scale;
        for (size_t j = 0; j < cols; j++) q[r * cols + j] = rm_fp8_e4m3_from_f32(xr[j] / scale);
    }
}

/* ---------------------------------------------------------------- twins of the CUDA kernels
 * The arithmetic of the kernels in kernels/, step for step. These are compiled without
 * -march, so x86-64 has no FMA to contract a * b + c into: each fp32
 * operation rounds as the kernels' __fmul_rn / __fadd_rn do. */

#include "random.h"   /* here, not at the top: this section is appended to a file others edit */

/* n_threads as given, at least 1 */
#define TWIN_THREADS(n) ((n) > 0 ? (n) : 1)

uint16_t rm_bf16_from_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;    /* NaN */
    u += 0x7fffu + ((u >> 16) & 1);                         /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static inline float bf16_round(float x) { return rm_bf16_to_f32(rm_bf16_from_f32(x)); }

void rm_cpu_embedding(float *x, const uint16_t *embed, const int32_t *tokens, size_t n_rows, size_t hidden,
                      int n_threads) {
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) if (n_rows * hidden >= PAR_MIN_WORK)
    for (size_t r = 0; r < n_rows; r++) {
        const uint16_t *e = embed + (size_t)(uint32_t)tokens[r] * hidden;
        for (size_t i = 0; i < hidden; i++) x[r * hidden + i] = rm_bf16_to_f32(e[i]);
    }
}

/* 1 / sqrt(mean + eps) as rmsnorm_row takes it: the mean of the squares
 * (summed in double) rounded to fp32, eps added in fp32, the reciprocal
 * square root in double rounded once. */
static float rms_scale(double sum_sq, size_t n, float eps) {
    float var = (float)(sum_sq / (double)n);
    return (float)(1.0 / sqrt((double)(var + eps)));
}

void rm_cpu_add_rmsnorm(float *x, const uint16_t *delta, size_t delta_stride, const uint16_t *w, uint16_t *out,
                        float *out_f32, size_t n_rows, size_t dim, float eps, int n_threads) {
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) if (n_rows * dim >= PAR_MIN_WORK)
    for (size_t r = 0; r < n_rows; r++) {
        float *xr = x + r * dim;
        if (delta)
            for (size_t i = 0; i < dim; i++) xr[i] = xr[i] + rm_bf16_to_f32(delta[r * delta_stride + i]);
        float rs = rms_scale(sum_squares(xr, dim), dim, eps);
        for (size_t i = 0; i < dim; i++) {
            float y = xr[i] * rs, wi = rm_bf16_to_f32(w[i]);
            if (out) out[r * dim + i] = rm_bf16_from_f32(bf16_round(y) * wi);
            if (out_f32) out_f32[r * dim + i] = y * wi;
        }
    }
}

void rm_cpu_head_rmsnorm_bf16(uint16_t *x, size_t stride, const uint16_t *w, size_t n_rows, size_t n_heads,
                              size_t head_dim, float eps, int n_threads) {
    size_t n = n_rows * n_heads;
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) if (n * head_dim >= PAR_MIN_WORK)
    for (size_t v = 0; v < n; v++) {
        uint16_t *xv = x + (v / n_heads) * stride + (v % n_heads) * head_dim;
        double ss = 0;
        for (size_t i = 0; i < head_dim; i++) {
            float f = rm_bf16_to_f32(xv[i]);
            ss += (double)f * f;
        }
        float rs = rms_scale(ss, head_dim, eps);
        for (size_t i = 0; i < head_dim; i++)
            xv[i] = rm_bf16_from_f32(bf16_round(rm_bf16_to_f32(xv[i]) * rs) * rm_bf16_to_f32(w[i]));
    }
}

void rm_cpu_sum_ranks(void *dst, void *const *srcs, int n_srcs, size_t lo, size_t hi, int bf16) {
    if (!bf16) {
        float *d = dst;
        for (size_t i = lo; i < hi; i++) {
            float s = ((const float *)srcs[0])[i];
            for (int r = 1; r < n_srcs; r++) s += ((const float *)srcs[r])[i];
            d[i] = s;
        }
        return;
    }
    uint16_t *d = dst;
    for (size_t i = lo; i < hi; i++) {
        float s = rm_bf16_to_f32(((const uint16_t *)srcs[0])[i]);
        for (int r = 1; r < n_srcs; r++) s += rm_bf16_to_f32(((const uint16_t *)srcs[r])[i]);
        d[i] = rm_bf16_from_f32(s);
    }
}

void rm_cpu_add_bias(uint16_t *y, size_t stride, const uint16_t *b, size_t n_rows, size_t cols, int n_threads) {
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) if (n_rows * cols >= PAR_MIN_WORK)
    for (size_t r = 0; r < n_rows; r++)
        for (size_t c = 0; c < cols; c++)
            y[r * stride + c] = rm_bf16_from_f32(rm_bf16_to_f32(y[r * stride + c]) + rm_bf16_to_f32(b[c]));
}

void rm_cpu_rope_bf16(uint16_t *x, size_t stride, size_t n_rows, size_t n_heads, size_t head_dim, const int32_t *pos,
                      const float *inv_freq, int n_threads) {
    size_t half = head_dim / 2;
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) \
    if (n_rows * n_heads * head_dim >= PAR_MIN_WORK)
    for (size_t r = 0; r < n_rows; r++) {
        float p = (float)pos[r];
        for (size_t i = 0; i < half; i++) {
            float angle = p * inv_freq[i];
            float c = (float)cos((double)angle), s = (float)sin((double)angle);
            for (size_t h = 0; h < n_heads; h++) {
                uint16_t *v = x + r * stride + h * head_dim;
                float a = rm_bf16_to_f32(v[i]), b = rm_bf16_to_f32(v[i + half]);
                v[i] = rm_bf16_from_f32(a * c - b * s);
                v[i + half] = rm_bf16_from_f32(b * c + a * s);
            }
        }
    }
}

void rm_cpu_silu_mul_bf16(uint16_t *out, const uint16_t *gate_up, size_t stride, size_t n_rows, size_t ffn,
                          int n_threads) {
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) if (n_rows * ffn >= PAR_MIN_WORK)
    for (size_t r = 0; r < n_rows; r++) {
        const uint16_t *row = gate_up + r * stride;
        for (size_t i = 0; i < ffn; i++) {
            float g = rm_bf16_to_f32(row[i]), u = rm_bf16_to_f32(row[ffn + i]);
            out[r * ffn + i] = rm_bf16_from_f32(g / (1.0f + expf(-g)) * u);
        }
    }
}

void rm_cpu_gather_rows(float *dst, const float *src, const int32_t *rows, size_t n, size_t cols, int n_threads) {
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) if (n * cols >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        memcpy(dst + i * cols, src + (size_t)(uint32_t)rows[i] * cols, cols * sizeof *dst);
}

/* One query row of one head: keys 0 .. n_keys - 1 of its sequence.
 * sc: max_keys scores, then head_dim sums. */
static void attend_bf16(const rm_cpu_attn_bf16 *a, int s, int t, int h, double *sc) {
    size_t hd = (size_t)a->head_dim;
    int G = a->n_heads / a->n_kv_heads, koff = a->key_off[s];
    long n_keys = (long)a->key_off[s + 1] - koff, nk = (long)a->q_pos0[s] + t + 1;
    if (nk > n_keys) nk = n_keys;
    if (nk > a->max_keys) nk = a->max_keys;                 /* scratch bound (a description error) */
    size_t row = (size_t)(a->q_begin[s] + t);
    const uint16_t *q = a->q + row * a->q_stride + (size_t)h * hd;
    uint16_t *out = a->out + row * a->out_stride + (size_t)h * hd;
    size_t kv_col = (size_t)(h / G) * hd;
    if (nk <= 0) {
        for (size_t d = 0; d < hd; d++) out[d] = 0;
        return;
    }
    double max = -INFINITY, sum = 0, *acc = sc + a->max_keys;
    for (long j = 0; j < nk; j++) {
        const uint16_t *k = a->k + (size_t)(uint32_t)a->key_rows[koff + j] * a->kv_stride + kv_col;
        double dot = 0;
        for (size_t d = 0; d < hd; d++) dot += (double)rm_bf16_to_f32(q[d]) * rm_bf16_to_f32(k[d]);
        sc[j] = dot * a->scale;
        if (sc[j] > max) max = sc[j];
    }
    for (size_t d = 0; d < hd; d++) acc[d] = 0;
    for (long j = 0; j < nk; j++) {
        double p = exp(sc[j] - max);
        const uint16_t *v = a->v + (size_t)(uint32_t)a->key_rows[koff + j] * a->kv_stride + kv_col;
        sum += p;
        for (size_t d = 0; d < hd; d++) acc[d] += p * rm_bf16_to_f32(v[d]);
    }
    for (size_t d = 0; d < hd; d++) out[d] = rm_bf16_from_f32((float)(acc[d] / sum));
}

void rm_cpu_attention_bf16(const rm_cpu_attn_bf16 *a, double *scratch, int n_threads) {
#pragma omp parallel num_threads(TWIN_THREADS(n_threads))
    {
        double *sc = scratch + (size_t)omp_get_thread_num() * ((size_t)a->max_keys + (size_t)a->head_dim);
        for (int s = 0; s < a->n_seqs; s++) {
            int n_items = (a->q_begin[s + 1] - a->q_begin[s]) * a->n_heads;
#pragma omp for schedule(dynamic, 4)
            for (int it = 0; it < n_items; it++) attend_bf16(a, s, it / a->n_heads, it % a->n_heads, sc);
        }
    }
}

void rm_cpu_random_bf16(uint16_t *out, size_t n, uint64_t seed, uint64_t tensor, float scale, int n_threads) {
#pragma omp parallel for num_threads(TWIN_THREADS(n_threads)) schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = rm_bf16_from_f32(rm_random_value(seed, tensor, i) * scale);
}
