/*
 * test_kernels.c - every CUDA kernel (kernels/kernels.h) against its CPU twin
 * (lib/cpu_ops.c), in the manner of llama.cpp's test-backend-ops: random
 * inputs (seed printed, RM_SEED replays), odd shapes (rows 1, 3, 17, 257;
 * widths that are not multiples of 32), every output poisoned with 0xFF bytes
 * beforehand (NaN in bf16 and fp32, so an element the kernel never wrote
 * shows) and followed by a guard region that must still hold the poison (a
 * write past the end shows); row gaps between the columns an op owns and the
 * stride must be left as they were. Each comparison checks NaN / Inf first,
 * then the largest error in units in the last place (or absolute, for
 * attention), then the normalised mean squared error
 * sum((got - ref)^2) / sum(ref^2).
 *
 * Tolerances, per op, and why:
 *  - embedding, add_bias, sum_ranks, gather_rows, random_bf16, quantize_fp8_rows:
 *    bit for bit (the same IEEE operations, nothing order-dependent).
 *  - add_rmsnorm (residual: bit for bit; bf16 out: 1 ulp; fp32 out: 2 ulp),
 *    head_rmsnorm and rope (1 ulp): the same operations, but the sum of
 *    squares is reduced in another order and CUDA's double cos / sin may
 *    differ from glibc's in the last double bit; both can move an fp32
 *    result by an ulp only when it sits within ~1e-16 of a rounding
 *    boundary, so in practice these are bit-equal too (the log says).
 *  - silu_mul: 1 ulp: CUDA's expf is within 2 fp32 ulp, glibc's within 1.
 *  - attention: NMSE <= 2e-5 and |error| <= 8e-3 * max|v|: the kernel sums
 *    in fp32 in another order and (fast path) rounds the softmax weights to
 *    bf16 before P.V, as FlashAttention does: a relative error of up to 2^-9
 *    per weight, ~1.3e-6 NMSE, plus the output's own bf16 rounding (~1.3e-6);
 *    the twin is exact (double).
 *
 * Without a usable CUDA device the program prints the skip line and exits 0.
 * RM_KERNEL_OPS="rope,attention#3" runs only those ops / cases;
 * RM_KERNEL_BENCH=1 then times attention at the benchmark's shapes (fast and
 * generic paths, causal TFLOPS) and the memory-bound kernels (GB/s).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "config.h"
#include "cpu_ops.h"
#include "kernels.h"
#include "test.h"

#define LEN(a) (sizeof(a) / sizeof *(a))
#define GUARD_BYTES 4096
#define POISON 0xFF

/* ---------------------------------------------------------------- random inputs */

static uint64_t base_seed, rng_state;

static uint64_t rng_u64(void) {   /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Each case draws from its own stream: RM_SEED replays any one of them. */
static void rng_case(uint64_t case_id) { rng_state = base_seed ^ (case_id * 0xd1b54a32d192ed03ULL); }
static float rng_uniform(void) { return (float)((int64_t)(rng_u64() >> 40) - (1 << 23)) / 8388608.0f; }  /* [-1, 1) */
static size_t rng_below(size_t n) { return (size_t)(rng_u64() % n); }
static uint16_t rng_bf16(float scale) { return rm_bf16_from_f32(rng_uniform() * scale); }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

static uint16_t *random_bf16(size_t n, float scale) {
    uint16_t *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rng_bf16(scale);
    return p;
}

static float *random_f32(size_t n, float scale) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform() * scale;
    return p;
}

/* ---------------------------------------------------------------- device buffers */

static cudaStream_t stream;

/* Reports a failed CUDA call; returns 1 when it succeeded. */
static int cuda_ok(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 1;
    fprintf(stderr, "  %s: %s (%s)\n", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return 0;
}

/* bytes + a guard region, all poisoned; NULL (reported) on failure. */
static void *dev_poisoned(size_t bytes) {
    void *d = NULL;
    if (!cuda_ok(cudaMalloc(&d, bytes + GUARD_BYTES), "cudaMalloc")) return NULL;
    if (!cuda_ok(cudaMemset(d, POISON, bytes + GUARD_BYTES), "cudaMemset")) {
        cudaFree(d);
        return NULL;
    }
    return d;
}

/* A device copy of host data (with a poisoned guard after it). */
static void *dev_copy(const void *h, size_t bytes) {
    void *d = dev_poisoned(bytes);
    if (d && !cuda_ok(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device")) {
        cudaFree(d);
        return NULL;
    }
    return d;
}

static int dev_read(void *h, const void *d, size_t bytes) {
    return cuda_ok(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}

/* The guard after a buffer still holds the poison. */
static int guard_ok(const void *d, size_t bytes, const char *what) {
    static uint8_t g[GUARD_BYTES];
    if (!dev_read(g, (const char *)d + bytes, GUARD_BYTES)) return 0;
    for (size_t i = 0; i < GUARD_BYTES; i++)
        if (g[i] != POISON) {
            fprintf(stderr, "  %s: written past its end (guard byte %zu)\n", what, i);
            return 0;
        }
    return 1;
}

/* The launch returned cudaSuccess and the stream ran to completion cleanly. */
static int launch_ok(cudaError_t e, const char *what) {
    if (!cuda_ok(e, what)) return 0;
    return cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

static void dev_free(int n, ...) {
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) cudaFree(va_arg(ap, void *));
    va_end(ap);
}

/* ---------------------------------------------------------------- comparisons */

/* Positions on one integer line, so that the distance counts the
 * representable values between two numbers (+0 and -0 coincide). */
static int64_t bf16_line(uint16_t b) { return b & 0x8000 ? -(int64_t)(b & 0x7fff) : (int64_t)b; }
static int64_t f32_line(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u & 0x80000000u ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

typedef struct {
    int max_ulps;       /* -1: not checked */
    double max_abs;     /* < 0: not checked */
    double max_nmse;
} tol;
static const tol EXACT = {0, -1, 0};

/* got vs ref, n values, as fp32 (value i from get(p, i)) with their line positions. */
typedef struct {
    size_t n, equal, nonfinite, worst_i;
    int64_t worst_ulps;
    double worst_abs, nmse;
} diff;

static int judge(const char *what, const diff *d, tol t) {
    int ok = d->nonfinite == 0 && (t.max_ulps < 0 || d->worst_ulps <= t.max_ulps) &&
             (t.max_abs < 0 || d->worst_abs <= t.max_abs) && d->nmse <= t.max_nmse;
    fprintf(stderr, "  %-40s %9zu values, %9zu bit-equal, max %lld ulp, max abs %.3g, nmse %.3g%s\n", what, d->n,
            d->equal, (long long)d->worst_ulps, d->worst_abs, d->nmse, ok ? "" : "   <-- FAIL");
    if (d->nonfinite) fprintf(stderr, "    %zu non-finite where the reference is finite (unwritten?)\n", d->nonfinite);
    if (!ok) fprintf(stderr, "    worst at element %zu\n", d->worst_i);
    return ok;
}

static void diff_add(diff *d, size_t i, float g, float r, int64_t lg, int64_t lr, int bit_equal, double *num,
                     double *den) {
    d->n++;
    if (bit_equal) d->equal++;
    if (!isfinite(r) || !isfinite(g)) {
        if (!(isnan(r) && isnan(g)) && !(g == r)) d->nonfinite++;
        return;
    }
    int64_t u = lg > lr ? lg - lr : lr - lg;
    double a = fabs((double)g - (double)r);
    if (u > d->worst_ulps || a > d->worst_abs) d->worst_i = i;
    if (u > d->worst_ulps) d->worst_ulps = u;
    if (a > d->worst_abs) d->worst_abs = a;
    *num += ((double)g - r) * ((double)g - r);
    *den += (double)r * r;
}

static int compare_bf16(const char *what, const uint16_t *got, const uint16_t *ref, size_t n, tol t) {
    diff d = {0};
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        diff_add(&d, i, rm_bf16_to_f32(got[i]), rm_bf16_to_f32(ref[i]), bf16_line(got[i]), bf16_line(ref[i]),
                 got[i] == ref[i], &num, &den);
    d.nmse = den > 0 ? num / den : num;
    return judge(what, &d, t);
}

static int compare_f32(const char *what, const float *got, const float *ref, size_t n, tol t) {
    diff d = {0};
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        diff_add(&d, i, got[i], ref[i], f32_line(got[i]), f32_line(ref[i]), memcmp(&got[i], &ref[i], 4) == 0, &num,
                 &den);
    d.nmse = den > 0 ? num / den : num;
    return judge(what, &d, t);
}

static int compare_bytes(const char *what, const void *got, const void *ref, size_t n) {
    const uint8_t *g = got, *r = ref;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (g[i] != r[i] && bad++ == 0) first = i;
    fprintf(stderr, "  %-40s %9zu bytes, %9zu differ%s\n", what, n, bad, bad ? "   <-- FAIL" : "");
    if (bad) fprintf(stderr, "    first at byte %zu: %02x, expected %02x\n", first, g[first], r[first]);
    return bad == 0;
}

/* In rows of `stride` elements of `elem` bytes, the columns from `width` on
 * are as they were. */
static int gaps_kept(const char *what, const void *got, const void *orig, size_t rows, size_t stride, size_t width,
                     size_t elem) {
    for (size_t r = 0; r < rows; r++) {
        size_t off = (r * stride + width) * elem, len = (stride - width) * elem;
        if (len && memcmp((const char *)got + off, (const char *)orig + off, len) != 0) {
            fprintf(stderr, "  %s: row %zu written between column %zu and the stride %zu   <-- FAIL\n", what, r,
                    width, stride);
            return 0;
        }
    }
    return 1;
}

/* A bf16 buffer of rows x stride poisoned where the columns >= width lie. */
static uint16_t *poisoned_rows_bf16(size_t rows, size_t stride) {
    uint16_t *p = xmalloc(rows * stride * sizeof *p);
    memset(p, POISON, rows * stride * sizeof *p);
    return p;
}

/* ---------------------------------------------------------------- embedding */

static const struct { size_t rows, hidden, vocab; } embedding_cases[] = {
    {1, 1, 5}, {3, 31, 50}, {17, 100, 300}, {257, 4100, 40},
};

static int test_embedding(size_t c) {
    size_t rows = embedding_cases[c].rows, hidden = embedding_cases[c].hidden, vocab = embedding_cases[c].vocab;
    uint16_t *embed = random_bf16(vocab * hidden, 1.0f);
    int32_t *tokens = xmalloc(rows * sizeof *tokens);
    for (size_t r = 0; r < rows; r++) tokens[r] = (int32_t)rng_below(vocab);
    float *ref = xmalloc(rows * hidden * sizeof *ref), *got = xmalloc(rows * hidden * sizeof *got);
    rm_cpu_embedding(ref, embed, tokens, rows, hidden, 1);

    int ok = 0;
    void *d_embed = dev_copy(embed, vocab * hidden * 2), *d_tok = dev_copy(tokens, rows * 4);
    float *d_x = dev_poisoned(rows * hidden * 4);
    if (d_embed && d_tok && d_x &&
        launch_ok(rm_cu_embedding(d_x, d_embed, d_tok, rows, hidden, stream), "rm_cu_embedding") &&
        dev_read(got, d_x, rows * hidden * 4)) {
        char what[96];
        snprintf(what, sizeof what, "embedding %zu x %zu", rows, hidden);
        ok = compare_f32(what, got, ref, rows * hidden, EXACT);
        ok &= guard_ok(d_x, rows * hidden * 4, what);
    }
    dev_free(3, d_embed, d_tok, d_x);
    free(embed), free(tokens), free(ref), free(got);
    return ok;
}

/* ---------------------------------------------------------------- add_rmsnorm */

enum { OUT_BF16 = 1, OUT_F32 = 2 };
static const struct { size_t rows, dim; int delta; size_t delta_pad; int outs; float eps; } rmsnorm_cases[] = {
    {1, 31, 0, 0, OUT_BF16, 1e-5f},          {3, 100, 1, 7, OUT_BF16, 1e-6f},
    {17, 4100, 1, 0, OUT_F32, 1e-5f},         {257, 96, 1, 33, OUT_BF16 | OUT_F32, 1e-6f},
    {17, 8192, 1, 0, OUT_BF16, 1e-5f},        {3, 1, 1, 0, OUT_BF16 | OUT_F32, 1e-6f},
    {5, 300, 0, 0, 0, 1e-5f},  /* neither output: the add alone */
};

static int test_add_rmsnorm(size_t c) {
    size_t rows = rmsnorm_cases[c].rows, dim = rmsnorm_cases[c].dim, ds = dim + rmsnorm_cases[c].delta_pad;
    int outs = rmsnorm_cases[c].outs, has_delta = rmsnorm_cases[c].delta;
    float eps = rmsnorm_cases[c].eps;
    size_t n = rows * dim;
    /* A residual of a few units with a per-row spread, deltas, weights near 1. */
    float *x = random_f32(n, 4.0f);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < dim; i++) x[r * dim + i] *= (float)(1 + r % 5);
    uint16_t *delta = random_bf16(rows * ds, 2.0f), *w = xmalloc(dim * 2);
    for (size_t i = 0; i < dim; i++) w[i] = rm_bf16_from_f32(1.0f + 0.5f * rng_uniform());
    float *x_ref = xmalloc(n * 4), *x_got = xmalloc(n * 4), *f_ref = xmalloc(n * 4), *f_got = xmalloc(n * 4);
    uint16_t *b_ref = xmalloc(n * 2), *b_got = xmalloc(n * 2);
    memcpy(x_ref, x, n * 4);
    rm_cpu_add_rmsnorm(x_ref, has_delta ? delta : NULL, ds, w, outs & OUT_BF16 ? b_ref : NULL,
                       outs & OUT_F32 ? f_ref : NULL, rows, dim, eps, 1);

    int ok = 0;
    float *d_x = dev_copy(x, n * 4), *d_f = dev_poisoned(n * 4);
    uint16_t *d_delta = dev_copy(delta, rows * ds * 2), *d_w = dev_copy(w, dim * 2), *d_b = dev_poisoned(n * 2);
    if (d_x && d_f && d_delta && d_w && d_b &&
        launch_ok(rm_cu_add_rmsnorm(d_x, has_delta ? d_delta : NULL, ds, d_w, outs & OUT_BF16 ? d_b : NULL,
                                    outs & OUT_F32 ? d_f : NULL, rows, dim, eps, stream),
                  "rm_cu_add_rmsnorm") &&
        dev_read(x_got, d_x, n * 4) && dev_read(f_got, d_f, n * 4) && dev_read(b_got, d_b, n * 2)) {
        char what[96];
        snprintf(what, sizeof what, "add_rmsnorm %zu x %zu%s residual", rows, dim, has_delta ? " +delta" : "");
        ok = compare_f32(what, x_got, x_ref, n, EXACT) && guard_ok(d_x, n * 4, what);
        if (outs & OUT_BF16) {
            snprintf(what, sizeof what, "add_rmsnorm %zu x %zu bf16 out", rows, dim);
            ok &= compare_bf16(what, b_got, b_ref, n, (tol){1, -1, 1e-6});
        }
        if (outs & OUT_F32) {
            snprintf(what, sizeof what, "add_rmsnorm %zu x %zu fp32 out", rows, dim);
            ok &= compare_f32(what, f_got, f_ref, n, (tol){2, -1, 1e-10});
        }
        /* an output not asked for stays untouched, poison and guard alike */
        uint8_t *poison = xmalloc(n * 4);
        memset(poison, POISON, n * 4);
        if (!(outs & OUT_BF16)) ok &= compare_bytes("  bf16 out not asked for: untouched", b_got, poison, n * 2);
        if (!(outs & OUT_F32)) ok &= compare_bytes("  fp32 out not asked for: untouched", f_got, poison, n * 4);
        free(poison);
        ok &= guard_ok(d_b, n * 2, "add_rmsnorm bf16 out") & guard_ok(d_f, n * 4, "add_rmsnorm fp32 out");
    }
    dev_free(5, d_x, d_f, d_delta, d_w, d_b);
    free(x), free(delta), free(w), free(x_ref), free(x_got), free(f_ref), free(f_got), free(b_ref), free(b_got);
    return ok;
}

/* ---------------------------------------------------------------- head_rmsnorm */

static const struct { size_t rows, heads, head_dim, stride; } qknorm_cases[] = {
    {1, 1, 64, 64}, {3, 8, 128, 12 * 128}, {17, 5, 96, 5 * 96 + 3}, {257, 2, 16, 40}, {4, 3, 256, 800},
};

static int test_head_rmsnorm(size_t c) {
    size_t rows = qknorm_cases[c].rows, heads = qknorm_cases[c].heads, hd = qknorm_cases[c].head_dim,
           stride = qknorm_cases[c].stride, n = rows * stride;
    float eps = 1e-6f;
    uint16_t *x = random_bf16(n, 3.0f), *w = xmalloc(hd * 2), *ref = xmalloc(n * 2), *got = xmalloc(n * 2);
    for (size_t i = 0; i < hd; i++) w[i] = rm_bf16_from_f32(1.0f + 0.5f * rng_uniform());
    memcpy(ref, x, n * 2);
    rm_cpu_head_rmsnorm_bf16(ref, stride, w, rows, heads, hd, eps, 1);

    int ok = 0;
    uint16_t *d_x = dev_copy(x, n * 2), *d_w = dev_copy(w, hd * 2);
    if (d_x && d_w &&
        launch_ok(rm_cu_head_rmsnorm(d_x, stride, d_w, rows, heads, hd, eps, stream), "rm_cu_head_rmsnorm") &&
        dev_read(got, d_x, n * 2)) {
        char what[96];
        snprintf(what, sizeof what, "head_rmsnorm %zu x %zu x %zu", rows, heads, hd);
        ok = compare_bf16(what, got, ref, n, (tol){1, -1, 1e-6});
        ok &= gaps_kept(what, got, x, rows, stride, heads * hd, 2) & guard_ok(d_x, n * 2, what);
    }
    dev_free(2, d_x, d_w);
    free(x), free(w), free(ref), free(got);
    return ok;
}

/* ---------------------------------------------------------------- add_bias */

static const struct { size_t rows, cols, stride; } bias_cases[] = {
    {1, 7, 7}, {3, 100, 130}, {17, 1000, 1024}, {257, 33, 40},
};

static int test_add_bias(size_t c) {
    size_t rows = bias_cases[c].rows, cols = bias_cases[c].cols, stride = bias_cases[c].stride, n = rows * stride;
    uint16_t *y = random_bf16(n, 8.0f), *b = random_bf16(cols, 2.0f), *ref = xmalloc(n * 2), *got = xmalloc(n * 2);
    memcpy(ref, y, n * 2);
    rm_cpu_add_bias(ref, stride, b, rows, cols, 1);

    int ok = 0;
    uint16_t *d_y = dev_copy(y, n * 2), *d_b = dev_copy(b, cols * 2);
    if (d_y && d_b && launch_ok(rm_cu_add_bias(d_y, stride, d_b, rows, cols, stream), "rm_cu_add_bias") &&
        dev_read(got, d_y, n * 2)) {
        char what[96];
        snprintf(what, sizeof what, "add_bias %zu x %zu", rows, cols);
        ok = compare_bf16(what, got, ref, n, EXACT);
        ok &= gaps_kept(what, got, y, rows, stride, cols, 2) & guard_ok(d_y, n * 2, what);
    }
    dev_free(2, d_y, d_b);
    free(y), free(b), free(ref), free(got);
    return ok;
}

/* ---------------------------------------------------------------- sum_ranks */

/* Ranks, elements, offset of the slice summed, bf16 or fp32. The first sums
 * in place into rank 0's buffer; 16 is RM_CU_SUM_MAX_SRCS. */
static const struct { int ranks; size_t n, offset, count; int bf16; } sum_cases[] = {
    {2, 7, 0, 7, 1}, {3, 1000, 333, 334, 1}, {16, 4099, 1, 4097, 1}, {4, 70000, 0, 70000, 0}, {1, 33, 0, 33, 1},
};

static int test_sum_ranks(size_t c) {
    int n_src = sum_cases[c].ranks, bf16 = sum_cases[c].bf16, in_place = c == 0;
    size_t n = sum_cases[c].n, off = sum_cases[c].offset, count = sum_cases[c].count, es = bf16 ? 2 : 4, bytes = n * es;
    void *h[RM_CU_SUM_MAX_SRCS], *d[RM_CU_SUM_MAX_SRCS] = {0};
    void *ref = xmalloc(bytes), *got = xmalloc(bytes), *before = xmalloc(bytes);
    int ok = 1;
    for (int r = 0; r < n_src; r++) {
        h[r] = bf16 ? (void *)random_bf16(n, 16.0f) : (void *)random_f32(n, 16.0f);
        ok &= (d[r] = dev_copy(h[r], bytes)) != NULL;
    }
    void *d_dst = in_place ? d[0] : dev_poisoned(bytes);
    if (in_place) memcpy(before, h[0], bytes);
    else memset(before, POISON, bytes);
    memcpy(ref, before, bytes);
    rm_cpu_sum_ranks(ref, h, n_src, off, off + count, bf16);
    if (ok && d_dst &&
        launch_ok(rm_cu_sum_ranks(d_dst, (const void *const *)d, n_src, off, count, bf16, stream), "rm_cu_sum_ranks") &&
        dev_read(got, d_dst, bytes)) {
        char what[96];
        snprintf(what, sizeof what, "sum_ranks %d x %zu [%zu, +%zu) %s", n_src, n, off, count, bf16 ? "bf16" : "fp32");
        ok = bf16 ? compare_bf16(what, (uint16_t *)got + off, (uint16_t *)ref + off, count, EXACT)
                  : compare_f32(what, (float *)got + off, (float *)ref + off, count, EXACT);
        /* Outside the slice: untouched. */
        ok &= memcmp(got, before, off * es) == 0 && memcmp((char *)got + (off + count) * es, (char *)before + (off + count) * es,
                                                         (n - off - count) * es) == 0;
        ok &= guard_ok(d_dst, bytes, what);
    } else {
        ok = 0;
    }
    for (int r = 0; r < n_src; r++) cudaFree(d[r]), free(h[r]);
    if (!in_place) cudaFree(d_dst);
    free(ref), free(got), free(before);
    return ok;
}

/* ---------------------------------------------------------------- rope */

static const struct { size_t rows, heads, head_dim, stride; int llama3; double theta; } rope_cases[] = {
    {1, 1, 64, 64, 0, 10000},          {3, 8, 128, 12 * 128, 1, 500000},  {17, 5, 96, 5 * 96 + 6, 0, 1000000},
    {257, 2, 16, 40, 1, 500000},       {33, 4, 256, 1024, 0, 10000},
};

static int test_rope(size_t c) {
    size_t rows = rope_cases[c].rows, heads = rope_cases[c].heads, hd = rope_cases[c].head_dim,
           stride = rope_cases[c].stride, n = rows * stride;
    rm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.head_dim = (int64_t)hd;
    cfg.rope_theta = rope_cases[c].theta;
    if (rope_cases[c].llama3) {
        cfg.rope_type = RM_ROPE_LLAMA3;
        cfg.rope_factor = 8, cfg.rope_low_freq_factor = 1, cfg.rope_high_freq_factor = 4;
        cfg.rope_orig_max_pos = 8192;
    }
    float *inv_freq = xmalloc(hd / 2 * sizeof *inv_freq);
    rm_cpu_rope_inv_freq(&cfg, inv_freq);
    /* positions: 0, runs of consecutive ones, and far ones (long contexts) */
    int32_t *pos = xmalloc(rows * sizeof *pos);
    for (size_t r = 0; r < rows; r++)
        pos[r] = r == 0 ? 0 : r % 3 == 1 ? pos[r - 1] + 1 : (int32_t)rng_below(131072);
    uint16_t *x = random_bf16(n, 2.0f), *ref = xmalloc(n * 2), *got = xmalloc(n * 2);
    memcpy(ref, x, n * 2);
    rm_cpu_rope_bf16(ref, stride, rows, heads, hd, pos, inv_freq, 1);

    int ok = 0;
    uint16_t *d_x = dev_copy(x, n * 2);
    int32_t *d_pos = dev_copy(pos, rows * 4);
    float *d_inv = dev_copy(inv_freq, hd / 2 * 4);
    if (d_x && d_pos && d_inv &&
        launch_ok(rm_cu_rope(d_x, stride, rows, heads, hd, d_pos, d_inv, stream), "rm_cu_rope") &&
        dev_read(got, d_x, n * 2)) {
        char what[96];
        snprintf(what, sizeof what, "rope %zu x %zu x %zu%s", rows, heads, hd, rope_cases[c].llama3 ? " llama3" : "");
        ok = compare_bf16(what, got, ref, n, (tol){1, -1, 1e-6});
        ok &= gaps_kept(what, got, x, rows, stride, heads * hd, 2) & guard_ok(d_x, n * 2, what);
    }
    dev_free(3, d_x, d_pos, d_inv);
    free(inv_freq), free(pos), free(x), free(ref), free(got);
    return ok;
}

/* ---------------------------------------------------------------- silu_mul */

static const struct { size_t rows, ffn, pad; } swiglu_cases[] = {
    {1, 7, 0}, {3, 100, 5}, {17, 1000, 0}, {257, 33, 3}, {5, 28672, 0},
};

static int test_silu_mul(size_t c) {
    size_t rows = swiglu_cases[c].rows, ffn = swiglu_cases[c].ffn, stride = 2 * ffn + swiglu_cases[c].pad;
    size_t n = rows * ffn;
    /* gate over [-12, 12): silu's tails (exp overflowing at the far left) included */
    uint16_t *gu = xmalloc(rows * stride * 2);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < stride; i++) gu[r * stride + i] = rng_bf16(i < ffn ? 12.0f : 3.0f);
    if (rows >= 3) gu[2 * stride] = rm_bf16_from_f32(-100.0f);   /* exp(100) overflows fp32 */
    uint16_t *ref = xmalloc(n * 2), *got = xmalloc(n * 2);
    rm_cpu_silu_mul_bf16(ref, gu, stride, rows, ffn, 1);

    int ok = 0;
    uint16_t *d_gu = dev_copy(gu, rows * stride * 2), *d_out = dev_poisoned(n * 2);
    if (d_gu && d_out && launch_ok(rm_cu_silu_mul(d_out, d_gu, stride, rows, ffn, stream), "rm_cu_silu_mul") &&
        dev_read(got, d_out, n * 2)) {
        char what[96];
        snprintf(what, sizeof what, "silu_mul %zu x %zu", rows, ffn);
        ok = compare_bf16(what, got, ref, n, (tol){1, -1, 1e-6}) & guard_ok(d_out, n * 2, what);
    }
    dev_free(2, d_gu, d_out);
    free(gu), free(ref), free(got);
    return ok;
}

/* ---------------------------------------------------------------- quantize_fp8_rows */

/* kind 1: special rows - all zeros, a NaN, an infinity, every bf16 value of
 * magnitude <= 448 with 448 itself (scale 1: the conversion of each), tiny
 * (subnormal) values. */
static const struct { size_t rows, cols, pad; int special; } fp8_cases[] = {
    {1, 16, 0, 0}, {3, 100, 4, 0}, {17, 4099, 0, 0}, {257, 33, 7, 0}, {5, 2 * 0x43e1, 0, 1},
};

static void fp8_special_rows(uint16_t *x, size_t cols, size_t stride) {
    memset(x, 0, cols * 2);                                         /* row 0: zeros */
    for (size_t j = 0; j < cols; j++) x[stride + j] = rng_bf16(5.0f);
    x[stride + cols / 2] = 0x7fc1;                                  /* row 1: NaNs of both signs */
    x[stride + cols / 3] = 0xffc1;
    for (size_t j = 0; j < cols; j++) x[2 * stride + j] = rng_bf16(5.0f);
    x[2 * stride + 3] = 0xff80;                                     /* row 2: -inf: scale 1, saturation */
    for (size_t j = 0; j < cols; j++)                               /* row 3: +-every bf16 up to 448 */
        x[3 * stride + j] = (uint16_t)((j / 2) | (j % 2 ? 0x8000 : 0));
    for (size_t j = 0; j < cols; j++) x[4 * stride + j] = (uint16_t)(rng_u64() & 0x80ff);   /* row 4: subnormals */
}

static int test_quantize_fp8(size_t c) {
    size_t rows = fp8_cases[c].rows, cols = fp8_cases[c].cols, stride = cols + fp8_cases[c].pad;
    uint16_t *x = random_bf16(rows * stride, 3.0f);
    for (size_t r = 0; r < rows; r++)   /* rows of different magnitudes */
        for (size_t j = 0; j < cols; j++)
            x[r * stride + j] = rm_bf16_from_f32(rm_bf16_to_f32(x[r * stride + j]) * ldexpf(1, (int)(r % 7) * 3 - 9));
    if (fp8_cases[c].special) fp8_special_rows(x, cols, stride);
    float *xf = xmalloc(rows * cols * 4), *s_ref = xmalloc(rows * 4), *s_got = xmalloc(rows * 4);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) xf[r * cols + j] = rm_bf16_to_f32(x[r * stride + j]);
    uint8_t *q_ref = xmalloc(rows * cols), *q_got = xmalloc(rows * cols);
    rm_cpu_quantize_fp8_rows(xf, rows, cols, q_ref, s_ref, 1);

    int ok = 0;
    uint16_t *d_x = dev_copy(x, rows * stride * 2);
    uint8_t *d_q = dev_poisoned(rows * cols);
    float *d_s = dev_poisoned(rows * 4);
    if (d_x && d_q && d_s &&
        launch_ok(rm_cu_quantize_fp8_rows(d_x, stride, rows, cols, d_q, d_s, stream), "rm_cu_quantize_fp8_rows") &&
        dev_read(q_got, d_q, rows * cols) && dev_read(s_got, d_s, rows * 4)) {
        char what[96];
        snprintf(what, sizeof what, "quantize_fp8_rows %zu x %zu%s codes", rows, cols,
                 fp8_cases[c].special ? " special" : "");
        ok = compare_bytes(what, q_got, q_ref, rows * cols) & guard_ok(d_q, rows * cols, what);
        snprintf(what, sizeof what, "quantize_fp8_rows %zu x %zu scales", rows, cols);
        ok &= compare_bytes(what, s_got, s_ref, rows * 4) & guard_ok(d_s, rows * 4, what);
    }
    dev_free(3, d_x, d_q, d_s);
    free(x), free(xf), free(s_ref), free(s_got), free(q_ref), free(q_got);
    return ok;
}

/* ---------------------------------------------------------------- gather_rows */

static const struct { size_t n, cols, src_rows; } gather_cases[] = {
    {1, 7, 3}, {3, 100, 10}, {17, 4100, 40}, {257, 33, 300},
};

static int test_gather_rows(size_t c) {
    size_t n = gather_cases[c].n, cols = gather_cases[c].cols, src_rows = gather_cases[c].src_rows;
    float *src = random_f32(src_rows * cols, 10.0f), *ref = xmalloc(n * cols * 4), *got = xmalloc(n * cols * 4);
    int32_t *rows = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) rows[i] = (int32_t)rng_below(src_rows);   /* repeats included */
    rows[n - 1] = (int32_t)(src_rows - 1);
    rm_cpu_gather_rows(ref, src, rows, n, cols, 1);

    int ok = 0;
    float *d_src = dev_copy(src, src_rows * cols * 4), *d_dst = dev_poisoned(n * cols * 4);
    int32_t *d_rows = dev_copy(rows, n * 4);
    if (d_src && d_dst && d_rows &&
        launch_ok(rm_cu_gather_rows(d_dst, d_src, d_rows, n, cols, stream), "rm_cu_gather_rows") &&
        dev_read(got, d_dst, n * cols * 4)) {
        char what[96];
        snprintf(what, sizeof what, "gather_rows %zu x %zu", n, cols);
        ok = compare_f32(what, got, ref, n * cols, EXACT) & guard_ok(d_dst, n * cols * 4, what);
    }
    dev_free(3, d_src, d_dst, d_rows);
    free(src), free(ref), free(got), free(rows);
    return ok;
}

/* ---------------------------------------------------------------- random_bf16 */

static const struct { size_t n; float scale; } random_cases[] = {
    {1, 1.0f}, {1000, 0.02f}, {(1 << 20) + 3, 3.7f}, {(1 << 22) + 17, 0.0125f},
};

static int test_random_bf16(size_t c) {
    size_t n = random_cases[c].n;
    float scale = random_cases[c].scale;
    uint64_t seed = rng_u64(), tensor = rng_u64() % 1000;
    uint16_t *ref = xmalloc(n * 2), *got = xmalloc(n * 2);
    rm_cpu_random_bf16(ref, n, seed, tensor, scale, 1);

    int ok = 0;
    uint16_t *d_out = dev_poisoned(n * 2);
    if (d_out && launch_ok(rm_cu_random_bf16(d_out, n, seed, tensor, scale, stream), "rm_cu_random_bf16") &&
        dev_read(got, d_out, n * 2)) {
        char what[96];
        snprintf(what, sizeof what, "random_bf16 %zu x %g", n, scale);
        ok = compare_bf16(what, got, ref, n, EXACT) & guard_ok(d_out, n * 2, what);
    }
    dev_free(1, d_out);
    free(ref), free(got);
    return ok;
}

/* ---------------------------------------------------------------- attention */

/* A sequence: parent >= 0 shares the parent's first pos0 keys (its prefix,
 * the parent's rows); parent -1 with pos0 > 0 sees pos0 earlier keys at
 * random rows (a long context whose K/V another pass computed: the last
 * layer's single queries); then n_q queries of its own at positions
 * pos0 .. pos0 + n_q - 1, whose K/V are their own rows; `extra` keys past
 * the last query are listed too and must be ignored (causality). */
typedef struct { int parent, pos0, n_q, extra; } seq_spec;

enum { LAYOUT_FUSED, LAYOUT_SEPARATE_ODD };   /* one QKV buffer (aligned) / three with odd strides */
enum { PATH_AUTO, PATH_GENERIC };

#define MAX_SEQS 48
typedef struct {
    const char *name;
    int head_dim, n_heads, n_kv_heads, layout, path;
    float q_scale;           /* spread of q: sharper or flatter softmax */
    int n_seqs;
    seq_spec seqs[MAX_SEQS];
} attn_case;

static const attn_case attn_cases[] = {
    {"hd64 GQA 8/2, prefix tree", 64, 8, 2, LAYOUT_FUSED, PATH_AUTO, 1.0f, 7,
     {{-1, 0, 100, 0}, {0, 60, 41, 0}, {1, 80, 3, 0}, {-1, 0, 1, 0}, {-1, 0, 17, 0}, {-1, 139, 1, 0}, {0, 100, 5, 0}}},
    {"hd128 MHA 8/8, long", 128, 8, 8, LAYOUT_FUSED, PATH_AUTO, 2.0f, 4,
     {{-1, 0, 300, 0}, {0, 150, 70, 0}, {-1, 299, 1, 0}, {-1, 0, 64, 10}}},
    {"hd128 GQA 16/2, last-layer queries", 128, 16, 2, LAYOUT_FUSED, PATH_AUTO, 1.0f, 5,
     {{-1, 0, 200, 0}, {0, 128, 50, 0}, {-1, 383, 1, 0}, {-1, 255, 1, 0}, {0, 100, 1, 0}}},
    {"hd128 GQA 4/1, 1000 tokens", 128, 4, 1, LAYOUT_FUSED, PATH_AUTO, 3.0f, 2,
     {{-1, 0, 1000, 0}, {0, 700, 300, 0}}},
    {"hd64 GQA 8/1, 4 prompts x 6 responses", 64, 8, 1, LAYOUT_FUSED, PATH_AUTO, 1.0f, 28,
     {{-1, 0, 40, 0}, {0, 40, 23, 0}, {0, 40, 7, 0}, {0, 40, 64, 0}, {0, 40, 1, 0}, {0, 40, 30, 0}, {0, 40, 65, 0},
      {-1, 0, 77, 0}, {7, 77, 3, 0}, {7, 77, 12, 0}, {7, 77, 50, 0}, {7, 77, 2, 0}, {7, 77, 9, 0}, {7, 77, 33, 0},
      {-1, 0, 5, 0}, {14, 5, 100, 0}, {14, 5, 1, 0}, {14, 5, 60, 0}, {14, 5, 61, 0}, {14, 5, 8, 0}, {14, 5, 19, 0},
      {-1, 0, 128, 0}, {21, 128, 16, 0}, {21, 128, 17, 0}, {21, 128, 15, 0}, {21, 128, 64, 0}, {21, 128, 1, 0},
      {21, 64, 20, 0}}},
    {"hd96 generic 6/3, odd strides", 96, 6, 3, LAYOUT_SEPARATE_ODD, PATH_AUTO, 1.0f, 3,
     {{-1, 0, 70, 0}, {0, 30, 20, 0}, {-1, 90, 1, 0}}},
    {"hd16 generic 4/1", 16, 4, 1, LAYOUT_FUSED, PATH_AUTO, 2.0f, 3, {{-1, 0, 65, 0}, {0, 65, 1, 0}, {-1, 0, 3, 0}}},
    {"hd256 generic 2/1, odd strides", 256, 2, 1, LAYOUT_SEPARATE_ODD, PATH_AUTO, 1.0f, 3,
     {{-1, 0, 40, 0}, {0, 20, 9, 0}, {-1, 70, 1, 0}}},
    {"hd18 generic 3/3", 18, 3, 3, LAYOUT_FUSED, PATH_AUTO, 1.0f, 2, {{-1, 0, 33, 5}, {0, 10, 40, 0}}},
    {"hd64 4/4 odd strides (generic)", 64, 4, 4, LAYOUT_SEPARATE_ODD, PATH_AUTO, 1.0f, 3,
     {{-1, 0, 90, 0}, {0, 45, 12, 0}, {-1, 0, 1, 0}}},
    {"hd128 GQA 8/2 forced generic", 128, 8, 2, LAYOUT_FUSED, PATH_GENERIC, 1.0f, 4,
     {{-1, 0, 100, 0}, {0, 60, 41, 0}, {-1, 139, 1, 0}, {-1, 0, 33, 3}}},
    {"hd64 GQA 8/2 forced generic", 64, 8, 2, LAYOUT_FUSED, PATH_GENERIC, 1.0f, 3,
     {{-1, 0, 70, 0}, {0, 35, 35, 0}, {-1, 64, 1, 0}}},
};

static int test_attention(size_t c) {
    const attn_case *ac = &attn_cases[c];
    int S = ac->n_seqs, hd = ac->head_dim, H = ac->n_heads, KV = ac->n_kv_heads;
    /* Rows: each sequence's own queries, packed in order. */
    int32_t *q_begin = xmalloc((S + 1) * 4), *q_pos0 = xmalloc(S * 4), *key_off = xmalloc((S + 1) * 4);
    int rows = 0, n_key_entries = 0, max_q = 0, max_keys = 0;
    for (int s = 0; s < S; s++) {
        q_begin[s] = rows;
        q_pos0[s] = ac->seqs[s].pos0;
        key_off[s] = n_key_entries;
        rows += ac->seqs[s].n_q;
        int nk = ac->seqs[s].pos0 + ac->seqs[s].n_q + ac->seqs[s].extra;
        n_key_entries += nk;
        if (ac->seqs[s].n_q > max_q) max_q = ac->seqs[s].n_q;
        if (nk > max_keys) max_keys = nk;
    }
    q_begin[S] = rows;
    key_off[S] = n_key_entries;
    int32_t *key_rows = xmalloc((size_t)n_key_entries * 4);
    for (int s = 0; s < S; s++) {
        const seq_spec *sp = &ac->seqs[s];
        int32_t *kr = key_rows + key_off[s];
        for (int j = 0; j < sp->pos0; j++)
            kr[j] = sp->parent >= 0 ? key_rows[key_off[sp->parent] + j] : (int32_t)rng_below((size_t)rows);
        for (int j = 0; j < sp->n_q; j++) kr[sp->pos0 + j] = q_begin[s] + j;
        for (int j = 0; j < sp->extra; j++) kr[sp->pos0 + sp->n_q + j] = (int32_t)rng_below((size_t)rows);
    }

    /* Buffers: fused QKV rows (the projection's output) or three with odd strides. */
    size_t qw = (size_t)H * hd, kvw = (size_t)KV * hd, q_stride, kv_stride, out_stride;
    size_t q_off, k_off, v_off, q_elems, kv_elems;
    if (ac->layout == LAYOUT_FUSED) {
        q_stride = kv_stride = qw + 2 * kvw;
        q_off = 0, k_off = qw, v_off = qw + kvw;
        q_elems = kv_elems = 0;
        out_stride = qw + 8;
    } else {
        q_stride = qw + 3, kv_stride = kvw + 5, out_stride = qw + 1;
        q_off = k_off = v_off = 0;
        q_elems = (size_t)rows * q_stride, kv_elems = (size_t)rows * kv_stride;
    }
    size_t fused_elems = ac->layout == LAYOUT_FUSED ? (size_t)rows * q_stride : 0;
    uint16_t *fused = fused_elems ? random_bf16(fused_elems, 1.0f) : NULL;
    uint16_t *qb = q_elems ? random_bf16(q_elems, 1.0f) : NULL, *kb = kv_elems ? random_bf16(kv_elems, 1.0f) : NULL,
             *vb = kv_elems ? random_bf16(kv_elems, 1.0f) : NULL;
    uint16_t *hq = fused ? fused + q_off : qb, *hk = fused ? fused + k_off : kb, *hv = fused ? fused + v_off : vb;
    /* sharpen or flatten the softmax through q */
    for (int r = 0; r < rows; r++)
        for (size_t i = 0; i < qw; i++)
            hq[r * q_stride + i] = rm_bf16_from_f32(rm_bf16_to_f32(hq[r * q_stride + i]) * ac->q_scale);
    float vmax = 0;
    for (int r = 0; r < rows; r++)
        for (size_t i = 0; i < kvw; i++) vmax = fmaxf(vmax, fabsf(rm_bf16_to_f32(hv[r * kv_stride + i])));

    size_t out_elems = (size_t)rows * out_stride;
    uint16_t *ref = poisoned_rows_bf16((size_t)rows, out_stride), *got = xmalloc(out_elems * 2);
    double *scratch = xmalloc(((size_t)max_keys + (size_t)hd) * sizeof *scratch);
    rm_cpu_attn_bf16 ca = {hq, hk, hv, ref, q_stride, kv_stride, out_stride, H, KV, hd, 1.0f / sqrtf((float)hd),
                           S, max_q, max_keys, q_begin, q_pos0, key_off, key_rows};
    rm_cpu_attention_bf16(&ca, scratch, 1);

    int ok = 0;
    uint16_t *d_fused = fused ? dev_copy(fused, fused_elems * 2) : NULL;
    uint16_t *d_q = qb ? dev_copy(qb, q_elems * 2) : NULL, *d_k = kb ? dev_copy(kb, kv_elems * 2) : NULL,
             *d_v = vb ? dev_copy(vb, kv_elems * 2) : NULL;
    uint16_t *d_out = dev_poisoned(out_elems * 2);
    int32_t *d_qb = dev_copy(q_begin, (S + 1) * 4), *d_qp = dev_copy(q_pos0, S * 4),
            *d_ko = dev_copy(key_off, (S + 1) * 4), *d_kr = dev_copy(key_rows, (size_t)n_key_entries * 4);
    int have = d_out && d_qb && d_qp && d_ko && d_kr && (fused ? d_fused != NULL : d_q && d_k && d_v);
    if (have) {
        rm_cu_attn a = {fused ? d_fused + q_off : d_q, fused ? d_fused + k_off : d_k, fused ? d_fused + v_off : d_v,
                        d_out, q_stride, kv_stride, out_stride, H, KV, hd, 1.0f / sqrtf((float)hd),
                        S, max_q, max_keys, d_qb, d_qp, d_ko, d_kr};
        cudaError_t e = ac->path == PATH_GENERIC ? rm_cu_attention_generic(&a, stream) : rm_cu_attention(&a, stream);
        if (launch_ok(e, "rm_cu_attention") && dev_read(got, d_out, out_elems * 2)) {
            char what[96];
            snprintf(what, sizeof what, "attention %s (%d rows)", ac->name, rows);
            /* the gaps after each row's heads stay poisoned, as in ref */
            ok = compare_bf16(what, got, ref, out_elems, (tol){-1, 8e-3 * vmax, 2e-5});
            ok &= gaps_kept(what, got, ref, (size_t)rows, out_stride, qw, 2) & guard_ok(d_out, out_elems * 2, what);
        }
    }
    dev_free(9, d_fused, d_q, d_k, d_v, d_out, d_qb, d_qp, d_ko, d_kr);
    free(q_begin), free(q_pos0), free(key_off), free(key_rows), free(fused), free(qb), free(kb), free(vb);
    free(ref), free(got), free(scratch);
    return ok;
}

/* ---------------------------------------------------------------- launch contract */

/* Empty problems succeed without touching memory; impossible ones say so. */
static int test_contract(void) {
    int ok = 1;
    ok &= rm_cu_embedding(NULL, NULL, NULL, 0, 8, stream) == cudaSuccess;
    ok &= rm_cu_add_rmsnorm(NULL, NULL, 0, NULL, NULL, NULL, 0, 8, 1e-5f, stream) == cudaSuccess;
    ok &= rm_cu_head_rmsnorm(NULL, 0, NULL, 0, 2, 64, 1e-5f, stream) == cudaSuccess;
    ok &= rm_cu_add_bias(NULL, 0, NULL, 3, 0, stream) == cudaSuccess;
    ok &= rm_cu_rope(NULL, 0, 0, 2, 64, NULL, NULL, stream) == cudaSuccess;
    ok &= rm_cu_silu_mul(NULL, NULL, 0, 0, 8, stream) == cudaSuccess;
    ok &= rm_cu_quantize_fp8_rows(NULL, 0, 0, 8, NULL, NULL, stream) == cudaSuccess;
    ok &= rm_cu_gather_rows(NULL, NULL, NULL, 0, 8, stream) == cudaSuccess;
    ok &= rm_cu_random_bf16(NULL, 0, 1, 2, 1.0f, stream) == cudaSuccess;
    const void *no_srcs[2] = {(void *)8, (void *)8};
    ok &= rm_cu_sum_ranks((void *)8, no_srcs, 2, 0, 0, 1, stream) == cudaSuccess;
    rm_cu_attn a;
    memset(&a, 0, sizeof a);
    a.n_heads = 8, a.n_kv_heads = 2, a.head_dim = 64;
    ok &= rm_cu_attention(&a, stream) == cudaSuccess;                /* no sequences */
    if (!ok) fprintf(stderr, "  an empty problem did not return cudaSuccess\n");
    int bad = 1;
    bad &= rm_cu_rope((uint16_t *)8, 64, 1, 1, 63, (int32_t *)8, (float *)8, stream) == cudaErrorInvalidValue;
    uint16_t dummy_u16[8];
    int32_t dummy_i32[8];
    a.q = a.k = a.v = dummy_u16, a.out = dummy_u16;
    a.q_begin = a.q_pos0 = a.key_off = a.key_rows = dummy_i32;
    a.n_seqs = 1, a.max_q = 1, a.n_kv_heads = 3;                     /* 8 heads over 3 kv heads */
    bad &= rm_cu_attention(&a, stream) == cudaErrorInvalidValue;
    a.n_kv_heads = 2, a.head_dim = 65;                               /* odd */
    bad &= rm_cu_attention(&a, stream) == cudaErrorInvalidValue;
    a.head_dim = 258;                                                /* past 256 */
    bad &= rm_cu_attention_generic(&a, stream) == cudaErrorInvalidValue;
    const void *srcs[RM_CU_SUM_MAX_SRCS + 1] = {0};
    bad &= rm_cu_sum_ranks(dummy_u16, srcs, RM_CU_SUM_MAX_SRCS + 1, 0, 1, 1, stream) == cudaErrorInvalidValue;
    if (!bad) fprintf(stderr, "  an impossible problem was not refused with cudaErrorInvalidValue\n");
    fprintf(stderr, "  %-40s %s\n", "launch contract (empty / invalid)", ok && bad ? "ok" : "   <-- FAIL");
    return ok && bad && cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

/* ---------------------------------------------------------------- timing (RM_KERNEL_BENCH=1) */

/* Milliseconds per launch of `launch` over `reps` launches after one warm-up,
 * by CUDA events on the test's stream; negative when a launch failed. */
typedef cudaError_t (*bench_fn)(const void *arg);
static double time_launch(bench_fn launch, const void *arg, int reps) {
    cudaEvent_t t0, t1;
    float ms = -1;
    if (cudaEventCreate(&t0) != cudaSuccess) return -1;
    if (cudaEventCreate(&t1) != cudaSuccess) {
        cudaEventDestroy(t0);
        return -1;
    }
    int ok = launch(arg) == cudaSuccess && cudaEventRecord(t0, stream) == cudaSuccess;
    for (int i = 0; ok && i < reps; i++) ok = launch(arg) == cudaSuccess;
    ok = ok && cudaEventRecord(t1, stream) == cudaSuccess && cudaEventSynchronize(t1) == cudaSuccess &&
         cudaEventElapsedTime(&ms, t0, t1) == cudaSuccess;
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    return ok ? ms / reps : -1;
}

static cudaError_t bench_attention(const void *a) { return rm_cu_attention((const rm_cu_attn *)a, stream); }
static cudaError_t bench_attention_generic(const void *a) {
    return rm_cu_attention_generic((const rm_cu_attn *)a, stream);
}

/* Attention at the benchmark's shapes (Llama-3.3-70B: 64 / 8 heads of 128):
 * n_seqs sequences of `len` tokens, or with prompt > 0 one prompt of that
 * many tokens shared by n_seqs responses of `len` tokens. FLOPs counted
 * causal: 4 * head_dim per (query, head, key seen). */
static void bench_attention_shape(int n_seqs, int len, int prompt) {
    const int H = 64, KV = 8, hd = 128, S = n_seqs + (prompt > 0);
    size_t width = (size_t)(H + 2 * KV) * hd;
    int32_t *q_begin = xmalloc((S + 1) * 4), *q_pos0 = xmalloc(S * 4), *key_off = xmalloc((S + 1) * 4);
    int rows = 0, keys = 0;
    double flops = 0;
    for (int s = 0; s < S; s++) {
        int own = prompt > 0 && s == 0 ? prompt : len, pos0 = prompt > 0 && s > 0 ? prompt : 0;
        q_begin[s] = rows, q_pos0[s] = pos0, key_off[s] = keys;
        rows += own, keys += pos0 + own;
        for (int t = 0; t < own; t++) flops += 4.0 * hd * H * (pos0 + t + 1);
    }
    q_begin[S] = rows, key_off[S] = keys;
    int32_t *key_rows = xmalloc((size_t)keys * 4);
    for (int s = 0; s < S; s++)
        for (int j = 0; j < key_off[s + 1] - key_off[s]; j++)
            key_rows[key_off[s] + j] = j < q_pos0[s] ? j : q_begin[s] + j - q_pos0[s];   /* the prompt is sequence 0 */
    uint16_t *qkv = dev_poisoned((size_t)rows * width * 2), *out = dev_poisoned((size_t)rows * H * hd * 2);
    int32_t *d_qb = dev_copy(q_begin, (S + 1) * 4), *d_qp = dev_copy(q_pos0, S * 4),
            *d_ko = dev_copy(key_off, (S + 1) * 4), *d_kr = dev_copy(key_rows, (size_t)keys * 4);
    if (qkv && out && d_qb && d_qp && d_ko && d_kr &&
        rm_cu_random_bf16(qkv, (size_t)rows * width, 7, 1, 1.0f, stream) == cudaSuccess) {
        int max_q = prompt > len ? prompt : len;
        rm_cu_attn a = {qkv, qkv + (size_t)H * hd, qkv + (size_t)(H + KV) * hd, out, width, width, (size_t)H * hd,
                        H, KV, hd, 1.0f / sqrtf((float)hd), S, max_q, prompt + len, d_qb, d_qp, d_ko, d_kr};
        double ms = time_launch(bench_attention, &a, 10), msg = time_launch(bench_attention_generic, &a, 2);
        char shape[64];
        snprintf(shape, sizeof shape, prompt ? "%dx(%d shared + %d)" : "%dx%d%.0d", n_seqs, prompt ? prompt : len,
                 prompt ? len : 0);
        fprintf(stderr, "  attention %-24s %7d rows  fast %8.3f ms %7.1f TFLOPS   generic %8.3f ms %6.1f TFLOPS\n",
                shape, rows, ms, flops / ms / 1e9, msg, flops / msg / 1e9);
    } else {
        fprintf(stderr, "  attention %dx%d: could not set up\n", n_seqs, len);
    }
    dev_free(6, qkv, out, d_qb, d_qp, d_ko, d_kr);
    free(q_begin), free(q_pos0), free(key_off), free(key_rows);
}

typedef struct { int which; void *a, *b, *c, *d; size_t rows, cols; } ew_args;
static cudaError_t bench_elementwise(const void *p) {
    const ew_args *e = p;
    switch (e->which) {
    case 0: return rm_cu_add_rmsnorm(e->a, e->b, e->cols, e->c, e->d, NULL, e->rows, e->cols, 1e-5f, stream);
    case 1: return rm_cu_silu_mul(e->d, e->b, 2 * e->cols, e->rows, e->cols, stream);
    case 2: return rm_cu_quantize_fp8_rows(e->b, e->cols, e->rows, e->cols, e->d, e->a, stream);
    default: return rm_cu_rope(e->b, e->cols, e->rows, e->cols / 128, 128, e->c, e->a, stream);
    }
}

/* The memory-bound kernels at 4096 tokens of the 70B shape, in GB/s moved. */
static void bench_elementwise_all(void) {
    const size_t rows = 4096, H = 8192, F = 28672;
    float *f = dev_poisoned(rows * F * 4);
    uint16_t *in = dev_poisoned(rows * 2 * F * 2), *out = dev_poisoned(rows * F * 2), *w = dev_poisoned(H * 2);
    int32_t *pos = dev_poisoned(rows * 4);
    if (!f || !in || !out || !w || !pos || rm_cu_random_bf16(in, rows * 2 * F, 3, 1, 1.0f, stream) != cudaSuccess ||
        rm_cu_random_bf16(w, H, 3, 2, 1.0f, stream) != cudaSuccess ||
        cudaMemset(f, 0, rows * F * 4) != cudaSuccess || cudaMemset(pos, 0, rows * 4) != cudaSuccess) {
        fprintf(stderr, "  element-wise kernels: could not set up\n");
    } else {
        struct { const char *name; ew_args a; double bytes; } k[] = {
            {"add_rmsnorm 4096x8192", {0, f, in, w, out, rows, H}, rows * H * (4.0 + 4 + 2 + 2)},
            {"silu_mul 4096x28672", {1, NULL, in, NULL, out, rows, F}, rows * F * (4.0 + 2)},
            {"quantize_fp8 4096x28672", {2, f, in, NULL, out, rows, F}, rows * F * (2.0 + 1)},
            {"rope 4096x(64x128)", {3, f, in, pos, NULL, rows, H}, rows * H * (2.0 + 2)},
        };
        for (size_t i = 0; i < LEN(k); i++) {
            double ms = time_launch(bench_elementwise, &k[i].a, 10);
            fprintf(stderr, "  %-28s %8.3f ms %7.0f GB/s\n", k[i].name, ms, k[i].bytes / ms / 1e6);
        }
    }
    dev_free(5, f, in, out, w, pos);
}

static void bench(void) {
    fprintf(stderr, "timing (RM_KERNEL_BENCH): Llama-3.3-70B shapes, 64/8 heads x 128\n");
    bench_attention_shape(1, 4096, 0);
    bench_attention_shape(4, 2048, 0);
    bench_attention_shape(16, 512, 0);
    bench_attention_shape(64, 256, 128);
    bench_elementwise_all();
}

/* ---------------------------------------------------------------- main */

typedef struct {
    const char *op;
    int (*run)(size_t c);
    size_t n;
} op_tests;

static const op_tests ops[] = {
    {"embedding", test_embedding, LEN(embedding_cases)},
    {"add_rmsnorm", test_add_rmsnorm, LEN(rmsnorm_cases)},
    {"head_rmsnorm", test_head_rmsnorm, LEN(qknorm_cases)},
    {"add_bias", test_add_bias, LEN(bias_cases)},
    {"sum_ranks", test_sum_ranks, LEN(sum_cases)},
    {"rope", test_rope, LEN(rope_cases)},
    {"silu_mul", test_silu_mul, LEN(swiglu_cases)},
    {"quantize_fp8_rows", test_quantize_fp8, LEN(fp8_cases)},
    {"gather_rows", test_gather_rows, LEN(gather_cases)},
    {"random_bf16", test_random_bf16, LEN(random_cases)},
    {"attention", test_attention, LEN(attn_cases)},
};

/* RM_KERNEL_OPS="rope,attention#0,attention#6" runs only those ops (every
 * case) and cases (by index); unset or empty, everything. */
static int selected(const char *only, const char *op, int c) {
    if (!only || !*only) return 1;
    size_t n = strlen(op);
    for (const char *p = only; *p;) {
        size_t len = strcspn(p, ",");
        if (len >= n && strncmp(p, op, n) == 0 && (len == n || (p[n] == '#' && atoi(p + n + 1) == c))) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int main(void) {
    int n_checks = 1;   /* the launch contract */
    for (size_t o = 0; o < LEN(ops); o++) n_checks += (int)ops[o].n;

    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0) {
        char why[256];
        snprintf(why, sizeof why, "no CUDA device: %s",
                 cudaGetErrorString(e != cudaSuccess ? e : cudaErrorNoDevice));
        return test_skip("test_kernels", n_checks, why);
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major < 8) {
        char why[256];
        snprintf(why, sizeof why, "no CUDA device: device 0 is below compute capability 8.0 (the kernels' targets)");
        return test_skip("test_kernels", n_checks, why);
    }
    fprintf(stderr, "device 0: %s, compute capability %d.%d, %d SMs\n", prop.name, prop.major, prop.minor,
            prop.multiProcessorCount);
    base_seed = test_seed();
    if (!cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate")) {
        CHECK(0, "no stream");
        return test_summary("test_kernels");
    }

    const char *only = getenv("RM_KERNEL_OPS");
    if (only && *only) fprintf(stderr, "only %s (RM_KERNEL_OPS)\n", only);
    uint64_t case_id = 0;
    for (size_t o = 0; o < LEN(ops); o++)
        for (size_t c = 0; c < ops[o].n; c++) {
            rng_case(++case_id);   /* numbered even when left out: a case's inputs do not depend on the filter */
            if (selected(only, ops[o].op, (int)c))
                CHECK(ops[o].run(c), "%s case %zu (seed %llu)", ops[o].op, c, (unsigned long long)base_seed);
        }
    if (selected(only, "contract", 0)) CHECK(test_contract(), "launch contract");
    const char *b = getenv("RM_KERNEL_BENCH");
    if (b && *b && *b != '0') bench();
    cudaStreamDestroy(stream);
    return test_summary("test_kernels");
}
