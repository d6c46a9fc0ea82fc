/*
 * test_gemm.c - every GEMM kernel this CPU can run (lib/cpu/gemm.h) against
 * a plain double-precision product and against the portable kernels:
 *   - within the fp32 rounding bound of the exact sum, on shapes that cut
 *     every tile, block and packing edge; W fp32 and bf16, [n, k] and
 *     [k, n]; bias or none; row strides wider than the rows;
 *   - the fp32 kernels bitwise equal to the portable fmaf kernel, on 1, 2
 *     and 3 threads, on the stream and panel paths, and row by row (a row
 *     alone gives the same bits as in a batch);
 *   - the bf16 kernels against the portable reference of their arithmetic;
 *   - Y poisoned with NaN before each call, and a guard band around it
 *     (between rows and after the last) that must stay untouched.
 * Kernels of levels this CPU lacks are reported as skipped, with the
 * features it has; CI machines with AVX-512, AVX512_BF16 or AMX run them.
 * Everywhere (with AVX2 for the W packers they share), the AVX-512,
 * AVX512_BF16 and AMX kernels' own code also runs on portable C versions
 * of their intrinsics (isa_emulation.h): the same source compiled a second
 * time, so their layouts, masks, tile configuration and edges are checked
 * on any machine; the emulated AVX512_BF16 kernel must then give the
 * portable bf16 reference's bits, and the AVX-512 fp32 one the fp32 bits.
 */
#include <math.h>
#include <stdint.h>

#include "cpu/cpuid.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernel.h"
#include "test.h"

/* The AVX-512 and AMX kernels again, on emulated intrinsics, under other names. */
#if defined(__x86_64__)
#define RM_ISA_EMULATION 1
#define rm_gemm_avx512_fp32 emu_gemm_avx512_fp32
#define rm_gemm_avx512_bf16 emu_gemm_avx512_bf16
#define rm_gemm_amx_bf16 emu_gemm_amx_bf16
#include "../lib/cpu/gemm_avx512.c"
#undef MR
#undef NR
#include "../lib/cpu/gemm_amx.c"
#undef MR
#undef NR
#undef rm_gemm_avx512_fp32
#undef rm_gemm_avx512_bf16
#undef rm_gemm_amx_bf16
#endif

static unsigned long long rng;
static uint32_t rnd(void) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng >> 33);
}
/* Uniform in [-1, 1), sometimes scaled, so sums have cancellation and range. */
static float rndf(void) { return (float)((double)rnd() / 2147483648.0 - 1.0); }

static float bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#define GUARD 1234.5f

typedef struct problem {
    size_t m, n, k, ldx, ldw, ldy;
    rm_gemm_wtype wtype;
    int w_kn, bias;
    float *x, *wf, *b;
    uint16_t *wh;
    double *ref, *bound;    /* exact sum of the inputs as the kernel sees them, and sum |x w| */
} problem;

static double w_at(const problem *p, size_t j, size_t kk) {
    size_t i = p->w_kn ? kk * p->ldw + j : j * p->ldw + kk;
    return p->wtype == RM_GEMM_W_BF16 ? bf16_value(p->wh[i]) : p->wf[i];
}

/* The exact product (in double) of X as the arithmetic sees it. */
static void reference(problem *p, rm_gemm_arith arith) {
    for (size_t r = 0; r < p->m; r++)
        for (size_t j = 0; j < p->n; j++) {
            double s = 0, a = 0;
            for (size_t kk = 0; kk < p->k; kk++) {
                float xv = p->x[r * p->ldx + kk];
                if (arith == RM_GEMM_BF16) xv = bf16_value(rm_f32_to_bf16(xv));
                double t = (double)xv * w_at(p, j, kk);
                s += t;
                a += fabs(t);
            }
            double bias = p->bias ? p->b[j] : 0;
            p->ref[r * p->n + j] = s + bias;
            p->bound[r * p->n + j] = a + fabs(bias);
        }
}

static void make_problem(problem *p, size_t m, size_t n, size_t k, rm_gemm_wtype wt, int w_kn, int bias, int pad) {
    memset(p, 0, sizeof *p);
    p->m = m, p->n = n, p->k = k, p->wtype = wt, p->w_kn = w_kn, p->bias = bias;
    p->ldx = k + (pad ? 3 : 0);
    p->ldy = n + (pad ? 5 : 0);
    p->ldw = (w_kn ? n : k) + (pad ? 7 : 0);
    size_t w_elems = (w_kn ? k : n) * p->ldw + 1;
    p->x = malloc((m * p->ldx + 1) * sizeof(float));
    p->b = malloc((n + 1) * sizeof(float));
    if (wt == RM_GEMM_W_BF16) p->wh = malloc(w_elems * sizeof(uint16_t));
    else p->wf = malloc(w_elems * sizeof(float));
    p->ref = malloc((m * n + 1) * sizeof(double));
    p->bound = malloc((m * n + 1) * sizeof(double));
    float scale = (rnd() % 4 == 0) ? 1e3f : 1.0f;
    for (size_t i = 0; i < m * p->ldx; i++) p->x[i] = rndf() * scale;
    for (size_t i = 0; i < w_elems; i++) {
        if (p->wh) p->wh[i] = rm_f32_to_bf16(rndf());
        else p->wf[i] = rndf();
    }
    for (size_t j = 0; j < n; j++) p->b[j] = rndf();
}

static void free_problem(problem *p) {
    free(p->x), free(p->b), free(p->wh), free(p->wf), free(p->ref), free(p->bound);
}

/* Runs the kernel into a fresh Y (poisoned, guarded); returns Y (m x ldy) or
 * NULL after reporting. */
static float *run(const rm_gemm_kernel *K, const problem *p, size_t rows, size_t row0, int threads,
                  size_t stream_rows, const char *what) {
    size_t ldy = p->ldy, total = rows * ldy + 64;
    float *y = malloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++) y[i] = GUARD;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < p->n; j++) y[r * ldy + j] = NAN;
    rm_gemm_args g = {
        .m = rows, .n = p->n, .k = p->k, .x = p->x + row0 * p->ldx, .ldx = p->ldx,
        .w = p->wh ? (const void *)p->wh : (const void *)p->wf, .ldw = p->ldw, .wtype = p->wtype, .w_kn = p->w_kn,
        .bias = p->bias ? p->b : NULL, .y = y, .ldy = ldy, .stream_rows = stream_rows,
    };
    rm_status st = rm_gemm(K, &g, NULL, threads);
    CHECK(st == RM_OK, "%s: %s: rm_gemm returned %d", rm_gemm_kernel_name(K), what, (int)st);
    int guard_ok = 1;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = p->n; j < ldy; j++) guard_ok &= y[r * ldy + j] == GUARD;
    for (size_t i = rows * ldy; i < total; i++) guard_ok &= y[i] == GUARD;
    CHECK(guard_ok, "%s: %s: wrote outside Y", rm_gemm_kernel_name(K), what);
    if (st != RM_OK) {
        free(y);
        return NULL;
    }
    return y;
}

/* Every element within the rounding bound of an fp32 sum of k + 1 terms
 * (gamma_{k+1} = (k + 1) u / (1 - (k + 1) u), u = 2^-24, of sum |x w|). */
static int within_bound(const rm_gemm_kernel *K, const problem *p, const float *y, const char *what) {
    double u = ldexp(1.0, -24), gamma = (double)(p->k + 2) * u / (1 - (double)(p->k + 2) * u);
    double worst = 0;
    size_t bad = 0;
    for (size_t r = 0; r < p->m; r++)
        for (size_t j = 0; j < p->n; j++) {
            double got = y[r * p->ldy + j], want = p->ref[r * p->n + j], tol = gamma * p->bound[r * p->n + j] + 1e-30;
            double e = fabs(got - want) / tol;
            if (!(e <= 1)) bad++;
            if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
        }
    CHECK(bad == 0, "%s: %s (m %zu n %zu k %zu, W %s%s): %zu elements beyond the rounding bound (worst %.3g of it)",
          rm_gemm_kernel_name(K), what, p->m, p->n, p->k, p->wtype ? "bf16" : "fp32", p->w_kn ? " [k,n]" : "", bad,
          worst);
    return bad == 0;
}

static int same_bits(const float *a, const float *b, const problem *p, size_t rows) {
    for (size_t r = 0; r < rows; r++)
        if (memcmp(a + r * p->ldy, b + r * p->ldy, p->n * sizeof(float))) return 0;
    return 1;
}

typedef struct shape {
    size_t m, n, k;
} shape;

/* Edges of 4/6/12/32-row tiles, 16/32-column tiles, 256/512-k blocks, the
 * 144-192 row blocks, odd k (a lone bf16 pair member), GEMV-like rows. */
static const shape shapes[] = {
    {1, 1, 1},    {1, 17, 3},    {2, 16, 256},  {3, 33, 257},  {5, 40, 31},   {6, 16, 512},
    {7, 64, 513}, {12, 32, 100}, {13, 47, 129}, {31, 65, 64},  {32, 32, 33},  {33, 96, 700},
    {1, 300, 1030}, {4, 129, 255}, {50, 70, 90}, {150, 100, 300}, {200, 37, 520}, {97, 200, 64},
};

/* One kernel on every shape; fp32 kernels also against the portable one, bit
 * for bit, and bf16 ones when bitwise_bf16. */
static void check_kernel(const rm_gemm_kernel *K, int bitwise_bf16, const char *label) {
    rm_gemm_arith arith = rm_gemm_kernel_arith(K);
    const rm_gemm_kernel *ref_kernel = arith == RM_GEMM_FP32 ? &rm_gemm_generic_fp32 : &rm_gemm_generic_bf16;
    size_t n_shapes = sizeof shapes / sizeof *shapes;
    int cases = 0;
    for (size_t s = 0; s < n_shapes; s++)
        for (int wt = 0; wt < 2; wt++)
            for (int kn = 0; kn < 2; kn++) {
                if (!rm_gemm_kernel_takes(K, (rm_gemm_wtype)wt, kn)) continue;
                const shape *sh = &shapes[s];
                problem p;
                make_problem(&p, sh->m, sh->n, sh->k, (rm_gemm_wtype)wt, kn, (int)(rnd() % 2), (int)(rnd() % 2));
                reference(&p, arith);
                char what[160];
                int threads = 1 + (int)(s % 3);
                snprintf(what, sizeof what, "%d threads, default paths", threads);
                float *y = run(K, &p, p.m, 0, threads, 0, what);
                if (y) within_bound(K, &p, y, what);
                /* The other path (stream <-> panel) and another thread count: the same bits. */
                size_t other = p.m <= rm_gemm_stream_rows(K, p.k) ? 1 : p.m;
                float *y2 = run(K, &p, p.m, 0, 2, other, "the other path, 2 threads");
                CHECK(y && y2 && same_bits(y, y2, &p, p.m), "%s: m %zu n %zu k %zu: stream and panel paths differ",
                      rm_gemm_kernel_name(K), p.m, p.n, p.k);
                /* A row alone: the same bits as in the batch. */
                size_t row = rnd() % p.m;
                float *y1 = run(K, &p, 1, row, 1, 0, "one row");
                CHECK(y && y1 && memcmp(y1, y + row * p.ldy, p.n * sizeof(float)) == 0,
                      "%s: m %zu n %zu k %zu: row %zu alone differs from the batch", rm_gemm_kernel_name(K), p.m, p.n,
                      p.k, row);
                /* Against the portable kernel of the same arithmetic: fp32 bit for
                 * bit; the emulated AVX512_BF16 one too (the same operations). */
                if (K != ref_kernel && rm_gemm_kernel_takes(ref_kernel, (rm_gemm_wtype)wt, kn)) {
                    float *yr = run(ref_kernel, &p, p.m, 0, 1, 0, "portable reference");
                    if (arith == RM_GEMM_FP32 || bitwise_bf16)
                        CHECK(y && yr && same_bits(y, yr, &p, p.m), "%s: m %zu n %zu k %zu: differs from %s",
                              rm_gemm_kernel_name(K), p.m, p.n, p.k, rm_gemm_kernel_name(ref_kernel));
                    free(yr);
                }
                free(y), free(y2), free(y1);
                free_problem(&p);
                cases++;
            }
    fprintf(stderr, "%s%s: %d cases\n", rm_gemm_kernel_name(K), label, cases);
}

/* Special values pass through: a NaN in X poisons its row only; infinities stay. */
static void special_values(const rm_gemm_kernel *K) {
    problem p;
    make_problem(&p, 8, 40, 300, rm_gemm_kernel_takes(K, RM_GEMM_W_F32, 0) ? RM_GEMM_W_F32 : RM_GEMM_W_BF16, 0, 0, 0);
    p.x[2 * p.ldx + 5] = NAN;
    float *y = run(K, &p, p.m, 0, 2, 0, "NaN in X");
    int ok = y != NULL;
    for (size_t r = 0; y && r < p.m; r++)
        for (size_t j = 0; j < p.n; j++) ok &= (r == 2) == (isnan(y[r * p.ldy + j]) != 0);
    CHECK(ok, "%s: a NaN in row 2 of X should make exactly row 2 NaN", rm_gemm_kernel_name(K));
    free(y);
    free_problem(&p);
}

/* Caller's scratch sized for a larger k (as the engine sizes it, for its
 * widest product) holds any product with k up to it: the most rows the
 * stream path takes at a k just past a whole block is the largest packed X.
 * A canary after the scratch catches an overrun (ASan too, in make san). */
static void scratch_bound(const rm_gemm_kernel *K) {
    const size_t ks[] = {257, 300, 896, 1000, 1537};
    int ok = 1;
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        size_t k = ks[i], m = rm_gemm_stream_rows(K, k), n = 4, bytes = rm_gemm_scratch_bytes(K, 4096, 0);
        unsigned char *scratch = malloc(bytes + 64);
        memset(scratch + bytes, 0xa5, 64);
        float *x = calloc(m * k, sizeof(float)), *y = malloc(m * n * sizeof(float));
        uint16_t *w = calloc(n * k, sizeof(uint16_t));
        rm_gemm_args g = {.m = m, .n = n, .k = k, .x = x, .ldx = k, .w = w, .ldw = k, .wtype = RM_GEMM_W_BF16,
                          .y = y, .ldy = n};
        ok &= rm_gemm(K, &g, scratch, 1) == RM_OK;
        for (int b = 0; b < 64; b++) ok &= scratch[bytes + b] == 0xa5;
        free(scratch), free(x), free(y), free(w);
    }
    CHECK(ok, "%s: a product overran scratch sized by rm_gemm_scratch_bytes for a larger k", rm_gemm_kernel_name(K));
}

/* k = 0 gives the bias (or zeros); m or n = 0 writes nothing; a W the kernel does not take is refused. */
static void degenerate(const rm_gemm_kernel *K) {
    float bias[3] = {1, 2, 3}, y[6] = {9, 9, 9, 9, 9, 9}, x[1] = {0};
    float wf[1] = {0};
    uint16_t wh[1] = {0};
    int f32 = rm_gemm_kernel_takes(K, RM_GEMM_W_F32, 0);
    rm_gemm_args g = {.m = 2, .n = 3, .k = 0, .x = x, .ldx = 1, .w = f32 ? (void *)wf : (void *)wh, .ldw = 1,
                      .wtype = f32 ? RM_GEMM_W_F32 : RM_GEMM_W_BF16, .bias = bias, .y = y, .ldy = 3};
    CHECK(rm_gemm(K, &g, NULL, 1) == RM_OK && y[0] == 1 && y[5] == 3, "%s: k = 0", rm_gemm_kernel_name(K));
    g.m = 0;
    y[0] = 9;
    CHECK(rm_gemm(K, &g, NULL, 1) == RM_OK && y[0] == 9, "%s: m = 0 wrote", rm_gemm_kernel_name(K));
    if (!f32) {
        g.wtype = RM_GEMM_W_F32;
        CHECK(rm_gemm(K, &g, NULL, 1) == RM_ERR_INVALID_ARG, "%s: fp32 W accepted", rm_gemm_kernel_name(K));
    }
}

int main(void) {
    rng = test_seed();
    const rm_cpu_features *f = rm_cpu_features_get();
    fprintf(stderr, "cpu features: %s; level %s\n", f->flags[0] ? f->flags : "(none)", rm_isa_name(f->isa));
    int skipped = 0;
    char missing[256] = "";
    for (int isa = RM_ISA_GENERIC; isa < RM_ISA_COUNT; isa++)
        for (int arith = 0; arith < 2; arith++) {
            const rm_gemm_kernel *K = rm_gemm_kernel_at((rm_isa)isa, (rm_gemm_arith)arith);
            int exists = isa == RM_ISA_GENERIC || (arith == RM_GEMM_FP32) == (isa <= RM_ISA_AVX512);
#if !defined(__x86_64__)
            exists = isa == RM_ISA_GENERIC;
#endif
            if (!exists) continue;
            if (!K) {
                skipped++;
                size_t len = strlen(missing);
                snprintf(missing + len, sizeof missing - len, "%s%s", len ? ", " : "", rm_isa_name((rm_isa)isa));
                continue;
            }
            check_kernel(K, 0, "");
            special_values(K);
            degenerate(K);
            scratch_bound(K);
        }
#if defined(__x86_64__)
    if (f->isa >= RM_ISA_AVX2) {
        const rm_gemm_kernel *emulated[3] = {&emu_gemm_avx512_fp32, &emu_gemm_avx512_bf16, &emu_gemm_amx_bf16};
        for (int i = 0; i < 3; i++) {
            check_kernel(emulated[i], i == 1, " (emulated intrinsics)");
            special_values(emulated[i]);
            degenerate(emulated[i]);
            scratch_bound(emulated[i]);
        }
    } else {
        skipped++;
    }
#endif
    /* The engine's choices exist and match their arithmetic. */
    const rm_gemm_kernel *k32 = rm_gemm_kernel_pick(RM_GEMM_FP32, RM_ISA_COUNT),
                         *k16 = rm_gemm_kernel_pick(RM_GEMM_BF16, RM_ISA_COUNT);
    CHECK(rm_gemm_kernel_arith(k32) == RM_GEMM_FP32 && rm_gemm_kernel_isa(k32) <= f->isa, "fp32 pick %s",
          rm_gemm_kernel_name(k32));
    CHECK(rm_gemm_kernel_isa(k16) <= f->isa &&
              (f->isa >= RM_ISA_AVX512_BF16) == (rm_gemm_kernel_arith(k16) == RM_GEMM_BF16),
          "bf16 pick %s on level %s", rm_gemm_kernel_name(k16), rm_isa_name(f->isa));
    CHECK(rm_gemm_kernel_pick(RM_GEMM_FP32, RM_ISA_GENERIC) == &rm_gemm_generic_fp32, "a limit to generic");
    fprintf(stderr, "engine kernels here: fp32 %s, bf16 %s\n", rm_gemm_kernel_name(k32), rm_gemm_kernel_name(k16));
    if (skipped) {
        printf("test_gemm: %d passed, %d failed, %d skipped (kernels this CPU cannot run: %s)\n", test_passed,
               test_failed, skipped, missing);
        return test_failed != 0;
    }
    return test_summary("test_gemm");
}
