/*
 * nimreward-bench - how fast the forward pass runs, against what the machine can do.
 *
 *   nimreward-bench --device cpu [--hidden 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192
 *                   --vocab 128256 --head-dim D] [--tokens 512,2048|none] [--batch SxP+R|none]
 *                   [--dtype fp32|bf16|both] [--weights inplace|resident|stream|all] [--threads N]
 *                   [--seed S] [--repeat R] [--tokenizer tokenizer.json] [--attn-blas-min N]
 *
 * The default shape is Llama-3.2-1B with random bf16 weights built in memory
 * (no file). First the machine's own peak, measured in this run on the
 * threads the engine uses (lib/cpu/peak.h: an in-register FMA loop at the
 * widest vector ISA, and bf16 dot products where AVX512_BF16 or AMX exist).
 * Then, per dtype and weights mode: the engine's creation time and peak
 * resident memory, and per pass (one sequence of each --tokens length, and
 * with --batch S sequences sharing a P-token prompt, R tokens of their own
 * each: 64x128+256 is an RLHF scoring batch): tokens/s, the GEMM rate (the
 * projections' FLOPs over the time spent in them) and the whole-pass rate
 * (GEMM and attention FLOPs over the pass's wall time), each as a
 * percentage of the peak, and both per core over CPU time. With
 * --tokenizer, the tokenizer's MB/s on generated text.
 *
 * Weights modes (fp32): inplace reads the bf16 weights in place (the
 * engine's default; the GEMM widens them exactly), resident converts them
 * once to an fp32 copy, stream converts each matrix per pass. bf16 always
 * reads them in place.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_cuda.h"
#include "cli_common.h"
#include "cpu/cpuid.h"
#include "cpu/gemm.h"
#include "cpu/peak.h"
#include "cpu_ops.h"
#include "engine.h"
#include "nimreward.h"

enum { W_INPLACE = 1, W_RESIDENT = 2, W_STREAM = 4 };
enum { D_FP32 = 1, D_BF16 = 2 };

typedef struct opts {
    const char *device, *tokenizer;
    long hidden, layers, heads, kv_heads, ffn, vocab, head_dim;
    long tokens[16], attn_blas_min;
    long batch_seqs, batch_prompt, batch_response;     /* 0 sequences: no batch */
    int n_tokens, threads, repeat, weights, dtypes;
    unsigned long long seed;
} opts;

static void usage(FILE *f) {
    fputs("usage: nimreward-bench --device cpu [--hidden 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192\n"
          "                       --vocab 128256 --head-dim D] [--tokens 512,2048|none] [--batch SxP+R|none]\n"
          "                       [--dtype fp32|bf16|both] [--weights inplace|resident|stream|all] [--threads N]\n"
          "                       [--seed S] [--repeat R] [--tokenizer tokenizer.json]\n"
          "                       [--attn-blas-min N]   (tuning: queries per sequence from which attention uses BLAS)\n",
          f);
}

static int parse_long(const char *s, long *out, long min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min) return 0;
    *out = v;
    return 1;
}

static int parse_args(int argc, char **argv, opts *o) {
    *o = (opts){.device = "cpu", .weights = W_INPLACE, .dtypes = D_FP32 | D_BF16, .hidden = 2048, .layers = 16,
                .heads = 32, .kv_heads = 8, .ffn = 8192, .vocab = 128256, .tokens = {512, 2048}, .n_tokens = 2,
                .batch_seqs = 0, .batch_prompt = 128, .batch_response = 256, .repeat = 1, .seed = 42,
                .attn_blas_min = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        struct { const char *name; long *dst; long min; } nums[] = {
            {"--hidden", &o->hidden, 2}, {"--layers", &o->layers, 1}, {"--heads", &o->heads, 1},
            {"--kv-heads", &o->kv_heads, 1}, {"--ffn", &o->ffn, 1}, {"--vocab", &o->vocab, 1},
            {"--head-dim", &o->head_dim, 2}, {"--attn-blas-min", &o->attn_blas_min, 0}};
        int matched = 0;
        for (size_t k = 0; k < sizeof nums / sizeof *nums; k++)
            if (strcmp(a, nums[k].name) == 0) {
                if (!v || !parse_long(v, nums[k].dst, nums[k].min)) {
                    fprintf(stderr, "error: %s needs an integer >= %ld\n", a, nums[k].min);
                    return 0;
                }
                matched = 1;
                i++;
            }
        if (matched) continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (!v) {
            fprintf(stderr, "error: unknown option or missing value: %s\n", a);
            return 0;
        } else if (strcmp(a, "--device") == 0) {
            o->device = argv[++i];
        } else if (strcmp(a, "--tokenizer") == 0) {
            o->tokenizer = argv[++i];
        } else if (strcmp(a, "--weights") == 0) {
            i++;
            o->weights = !strcmp(v, "inplace") ? W_INPLACE : !strcmp(v, "resident") ? W_RESIDENT
                         : !strcmp(v, "stream") ? W_STREAM : !strcmp(v, "all") ? W_INPLACE | W_RESIDENT | W_STREAM : 0;
            if (!o->weights) return fprintf(stderr, "error: --weights is inplace, resident, stream or all\n"), 0;
        } else if (strcmp(a, "--dtype") == 0) {
            i++;
            o->dtypes = !strcmp(v, "fp32") || !strcmp(v, "auto") ? D_FP32 : !strcmp(v, "bf16") ? D_BF16
                        : !strcmp(v, "both") ? D_FP32 | D_BF16 : 0;
            if (!o->dtypes) return fprintf(stderr, "error: --dtype is auto, fp32, bf16 or both\n"), 0;
        } else if (strcmp(a, "--batch") == 0) {
            i++;
            if (!strcmp(v, "none")) {
                o->batch_seqs = 0;
            } else if (sscanf(v, "%ldx%ld+%ld", &o->batch_seqs, &o->batch_prompt, &o->batch_response) != 3 ||
                       o->batch_seqs < 1 || o->batch_prompt < 0 || o->batch_response < 1) {
                return fprintf(stderr, "error: --batch is SEQSxPROMPT+RESPONSE (e.g. 64x128+256) or none\n"), 0;
            }
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_long(argv[++i], &n, 0)) return fprintf(stderr, "error: bad --threads\n"), 0;
            o->threads = (int)n;
        } else if (strcmp(a, "--repeat") == 0) {
            if (!parse_long(argv[++i], &n, 1)) return fprintf(stderr, "error: bad --repeat\n"), 0;
            o->repeat = (int)n;
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--tokens") == 0) {
            o->n_tokens = 0;
            char *s = argv[++i], *end;
            if (!strcmp(s, "none")) continue;
            while (*s && o->n_tokens < 16) {
                long t = strtol(s, &end, 10);
                if (end == s || t < 1) return fprintf(stderr, "error: bad --tokens list\n"), 0;
                o->tokens[o->n_tokens++] = t;
                s = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') return fprintf(stderr, "error: bad --tokens list\n"), 0;
            }
        } else {
            fprintf(stderr, "error: unknown option %s\n", a);
            return 0;
        }
    }
    if (!o->head_dim) o->head_dim = o->hidden / o->heads;
    if (o->heads % o->kv_heads || o->head_dim % 2) {
        fprintf(stderr, "error: heads must be a multiple of kv-heads and head_dim even\n");
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- random bf16 weights */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* center + scale * uniform(-1, 1) in bf16; element i depends only on (seed, i). */
static void fill_bf16(uint16_t *dst, size_t n, uint64_t seed, float center, float scale) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += 4) {
        uint64_t r = mix64(seed ^ (i * 0x9e3779b97f4a7c15ULL));
        for (size_t k = 0; k < 4 && i + k < n; k++) {
            float u = (float)((r >> (16 * k)) & 0xffff) / 32768.0f - 1.0f;
            dst[i + k] = to_bf16(center + scale * u);
        }
    }
}

typedef struct model {
    rm_config cfg;
    rm_model_weights mw;
    rm_tensor *tensors;
    size_t n_tensors;
    uint16_t *data;
    size_t data_bytes;
} model;

static rm_tensor *add_tensor(model *m, size_t *off, uint64_t seed, int64_t rows, int64_t cols, float center,
                             float scale) {
    rm_tensor *t = &m->tensors[m->n_tensors++];
    t->name = "random";
    t->dtype = RM_DT_BF16;
    t->n_dims = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    t->data = m->data + *off;
    t->n_bytes = n * 2;
    fill_bf16(m->data + *off, n, seed * 1000003ULL + m->n_tensors, center, scale);
    *off += n;
    return t;
}

static int build_model(model *m, const opts *o) {
    memset(m, 0, sizeof *m);
    rm_config *c = &m->cfg;
    snprintf(c->architecture, sizeof c->architecture, "LlamaForSequenceClassification");
    c->arch = RM_ARCH_LLAMA_SEQCLS;
    c->hidden = o->hidden, c->n_layers = o->layers, c->n_heads = o->heads, c->n_kv_heads = o->kv_heads;
    c->head_dim = o->head_dim, c->ffn = o->ffn, c->vocab = o->vocab, c->max_pos = 131072;
    c->rms_eps = 1e-5, c->rope_theta = 500000.0, c->rope_type = RM_ROPE_LLAMA3;   /* Llama 3.2's RoPE */
    c->rope_factor = 32, c->rope_low_freq_factor = 1, c->rope_high_freq_factor = 4, c->rope_orig_max_pos = 8192;
    c->tie_embeddings = 1, c->n_labels = 1, c->pad_token_id = -1;
    snprintf(c->dtype, sizeof c->dtype, "bfloat16");
    size_t H = (size_t)c->hidden, QD = (size_t)(c->n_heads * c->head_dim), KD = (size_t)(c->n_kv_heads * c->head_dim),
           F = (size_t)c->ffn, L = (size_t)c->n_layers;
    size_t per_layer = 2 * H + QD * H * 2 + KD * H * 2 + 3 * F * H;
    size_t total = (size_t)c->vocab * H + L * per_layer + H + H;
    m->data_bytes = total * 2;
    m->data = malloc(m->data_bytes);
    m->tensors = calloc(3 + 9 * L, sizeof *m->tensors);
    m->mw.layers = calloc(L, sizeof *m->mw.layers);
    if (!m->data || !m->tensors || !m->mw.layers) return 0;
    size_t off = 0;
    uint64_t s = o->seed;
    m->mw.n_layers = c->n_layers;
    m->mw.embed = add_tensor(m, &off, s, c->vocab, c->hidden, 0, 0.5f);
    for (size_t l = 0; l < L; l++) {
        rm_layer_weights *lw = &m->mw.layers[l];
        lw->attn_norm = add_tensor(m, &off, s, c->hidden, 0, 1, 0.1f);
        lw->wq = add_tensor(m, &off, s, (int64_t)QD, c->hidden, 0, 1 / sqrtf((float)H));
        lw->wk = add_tensor(m, &off, s, (int64_t)KD, c->hidden, 0, 1 / sqrtf((float)H));
        lw->wv = add_tensor(m, &off, s, (int64_t)KD, c->hidden, 0, 1 / sqrtf((float)H));
        lw->wo = add_tensor(m, &off, s, c->hidden, (int64_t)QD, 0, 1 / sqrtf((float)QD));
        lw->mlp_norm = add_tensor(m, &off, s, c->hidden, 0, 1, 0.1f);
        lw->w_gate = add_tensor(m, &off, s, c->ffn, c->hidden, 0, 1 / sqrtf((float)H));
        lw->w_up = add_tensor(m, &off, s, c->ffn, c->hidden, 0, 1 / sqrtf((float)H));
        lw->w_down = add_tensor(m, &off, s, c->hidden, c->ffn, 0, 1 / sqrtf((float)F));
    }
    m->mw.final_norm = add_tensor(m, &off, s, c->hidden, 0, 1, 0.1f);
    m->mw.score = add_tensor(m, &off, s, 1, c->hidden, 0, 1 / sqrtf((float)H));
    return 1;
}

static void free_model(model *m) {
    free(m->data);
    free(m->tensors);
    free(m->mw.layers);
}

/* ---------------------------------------------------------------- measurements */

/* CPU seconds (user + system) this process has used: with the wall time it
 * shows whether the run had the cores to itself. */
static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           (double)u.ru_stime.tv_usec * 1e-6;
}

/* Peak resident memory of one mode: Linux's VmHWM, which writing 5 to
 * /proc/self/clear_refs resets to the current size (getrusage's maximum,
 * which never goes down, where that is not available). */
static void rss_peak_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

static double rss_peak_gb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb < 0) {
        struct rusage u;
        getrusage(RUSAGE_SELF, &u);
        kb = (double)u.ru_maxrss;
    }
    return kb * 1024 / 1e9;
}

static double load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

/* A warning when the 1-minute load average says other processes ran: more
 * runnable work than the cores this run left free. */
static void load_warning(const char *when, int threads) {
    double l = load_average();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double others = l - (when[0] == 'b' ? 0 : threads);   /* after a run, its own threads count in the average */
    if (l >= 0 && others > (double)(cores - threads) + 0.5)
        printf("warning: load average %.2f %s on %ld cores, this run using %d threads: other processes were busy, "
               "so the rates are low (the cpu%% column shows the share of the wall time it had)\n", l, when, cores,
               threads);
}

/* Attention FLOPs of a batch: q.k and p.v per head for every query the
 * engine computes (every own row in all layers but the last; the last
 * token of each sequence in the last). */
static double attn_flops(const rm_config *c, const rm_batch *b) {
    double per_pair = 4.0 * (double)(c->n_heads * c->head_dim), L = (double)c->n_layers, f = 0;
    for (size_t s = 0; s < b->n_seqs; s++) {
        double n = (double)b->n_tokens[s], sh = b->shared_len ? (double)b->shared_len[s] : 0;
        f += per_pair * ((n * (n + 1) - sh * (sh + 1)) / 2 * (L - 1) + n);
    }
    return f;
}

/* The peaks: measured at the start and again after every pass, each the
 * highest seen so far. A shared machine's cores can slow down for a while
 * (another tenant on the sibling hyperthread halves a core's FMA rate), so a
 * peak measured once, while slow, would make a later pass look faster than
 * the machine: with the highest seen, the percentages stay honest. */
typedef struct peaks {
    rm_peak fp32, bf16, amx;
    int threads;
} peaks;

static rm_peak *peak_for(peaks *pk, const rm_gemm_kernel *k) {
    if (rm_gemm_kernel_arith(k) == RM_GEMM_FP32) return &pk->fp32;
    return rm_gemm_kernel_isa(k) == RM_ISA_AMX ? &pk->amx : &pk->bf16;
}

static rm_peak_kind peak_kind(const peaks *pk, const rm_peak *p) {
    return p == &pk->fp32 ? RM_PEAK_FP32 : p == &pk->bf16 ? RM_PEAK_BF16_DOT : RM_PEAK_AMX_BF16;
}

/* Measures `p`'s peak again (about 0.6 s), keeps the highest, and says so
 * when the cores are now much slower than they were. */
static void peak_refresh(peaks *pk, rm_peak *p) {
    rm_peak now = rm_cpu_peak(peak_kind(pk, p), pk->threads, 0.3, 2);
    if (now.gflops < 0.85 * p->gflops)
        printf("  (peak re-measured after that pass: %.1f GFLOPS, %.0f%% of the %.1f seen before: the cores were "
               "slower then (other tenants, or the clock); percentages are of the highest)\n", now.gflops, 100 * now.gflops / p->gflops,
               p->gflops);
    if (now.gflops > p->gflops) p->gflops = now.gflops;
    if (now.core_gflops > p->core_gflops) p->core_gflops = now.core_gflops;
}

typedef struct bench_pass {
    char label[64];
    rm_batch b;
    const int32_t **toks;
    size_t *lens, *shared;
    int32_t *parent;
    size_t tokens;              /* all tokens of the batch (what a caller scores) */
} bench_pass;

/* n_seqs sequences: the first `prompt` tokens shared with sequence 0 (for
 * s > 0), then `own` tokens each; tokens drawn from (seed, s, i). */
static int make_pass(bench_pass *p, const opts *o, size_t n_seqs, size_t prompt, size_t own, const char *label) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->toks = calloc(n_seqs, sizeof *p->toks);
    p->lens = calloc(n_seqs, sizeof *p->lens);
    p->shared = calloc(n_seqs, sizeof *p->shared);
    p->parent = calloc(n_seqs, sizeof *p->parent);
    if (!p->toks || !p->lens || !p->shared || !p->parent) return 0;
    for (size_t s = 0; s < n_seqs; s++) {
        size_t n = prompt + own;
        int32_t *t = malloc(n * sizeof *t);
        if (!t) return 0;
        for (size_t i = 0; i < n; i++)
            t[i] = (int32_t)(mix64(o->seed + 7 * i + (i < prompt ? 0 : 1000003 * s)) % (uint64_t)o->vocab);
        p->toks[s] = t;
        p->lens[s] = n;
        p->shared[s] = s ? prompt : 0;
        p->parent[s] = s ? 0 : -1;
        p->tokens += n;
    }
    p->b = (rm_batch){n_seqs, p->toks, p->lens, n_seqs > 1 ? p->parent : NULL, n_seqs > 1 ? p->shared : NULL};
    return 1;
}

static void free_pass(bench_pass *p) {
    for (size_t s = 0; p->toks && s < p->b.n_seqs; s++) free((void *)p->toks[s]);
    free(p->toks), free(p->lens), free(p->shared), free(p->parent);
}

/* One mode: create the engine, then every pass, best of --repeat. */
static int run_mode(const opts *o, model *m, int dtype, int weights, peaks *pk, bench_pass *passes,
                    size_t n_passes, int threads) {
    const rm_gemm_kernel *k = rm_gemm_kernel_pick(dtype == D_BF16 ? RM_GEMM_BF16 : RM_GEMM_FP32, RM_ISA_COUNT);
    rm_engine_cpu_opts eo = {.n_threads = o->threads, .dtype = dtype == D_BF16 ? RM_DTYPE_BF16 : RM_DTYPE_FP32,
                             .weights = weights == W_INPLACE ? RM_CPU_WEIGHTS_AUTO : RM_CPU_WEIGHTS_CONVERT,
                             .f32_budget = weights == W_RESIDENT ? SIZE_MAX : 0, .kernel = k};
    const char *what = dtype == D_BF16 ? "bf16, weights read in place"
                       : weights == W_INPLACE ? "fp32, bf16 weights read in place (widened by the GEMM)"
                       : weights == W_RESIDENT ? "fp32, weights converted once to a resident fp32 copy"
                                               : "fp32, weights converted to fp32 per pass";
    rm_peak *peak = peak_for(pk, k);
    rm_engine *e = NULL;
    rm_err err = {0};
    rss_peak_reset();
    double t0 = cli_now_seconds();
    if (rm_engine_cpu_create_opts(&e, &m->cfg, &m->mw, &eo, &err) != RM_OK) {
        fprintf(stderr, "error: engine: %s\n", err.msg);
        return 0;
    }
    double t_create = cli_now_seconds() - t0;
    if (o->attn_blas_min >= 0) rm_engine_cpu_set_attn_blas_min(e, (size_t)o->attn_blas_min);
    printf("\n%s: kernel %s; engine created in %.2f s\n", what, rm_engine_cpu_kernel(e), t_create);
    size_t H = (size_t)m->cfg.hidden, max_seqs = 1;
    for (size_t i = 0; i < n_passes; i++) max_seqs = passes[i].b.n_seqs > max_seqs ? passes[i].b.n_seqs : max_seqs;
    float *hidden = malloc(max_seqs * H * sizeof *hidden);
    int ok = hidden != NULL;
    /* Warm-up: page in the scratch allocator and start the threads. */
    bench_pass warm;
    if (ok && make_pass(&warm, o, 1, 0, 16, "warm-up")) {
        if (rm_engine_cpu.forward(e, &warm.b, hidden, &err) != RM_OK) {
            fprintf(stderr, "error: forward: %s\n", err.msg);
            ok = 0;
        }
    }
    free_pass(&warm);
    printf("%-16s %8s %8s %10s %7s %6s %6s %7s %6s %6s %8s %5s %8s\n", "pass", "seconds", "tokens/s", "GEMM GFLOP",
           "GEMM/s", "%peak", "%core", "pass/s", "%peak", "%core", "weightGB", "cpu%", "score");
    for (size_t i = 0; ok && i < n_passes; i++) {
        bench_pass *p = &passes[i];
        double best = INFINITY, cpu = 0, gf = 0, gs = 0, gc = 0;
        float score = 0;
        rm_engine_counters before, after;
        for (int r = 0; r < o->repeat && ok; r++) {
            rm_engine_cpu.counters_reset(e);
            rm_engine_cpu.counters(e, &before, NULL);
            double c0 = cpu_seconds();
            t0 = cli_now_seconds();
            int64_t row = 0;
            if (rm_engine_cpu.forward(e, &p->b, hidden, &err) != RM_OK ||
                rm_engine_cpu.head_rows(e, m->mw.score, &row, 1, hidden, &score, &err) != RM_OK) {
                fprintf(stderr, "error: forward: %s\n", err.msg);
                ok = 0;
            }
            double t = cli_now_seconds() - t0;
            if (t < best) {
                best = t, cpu = cpu_seconds() - c0;
                rm_engine_cpu_gemm_stats(e, &gf, &gs, &gc);
                rm_engine_cpu.counters(e, &after, NULL);
            }
        }
        if (!ok) break;
        peak_refresh(pk, peak);
        double flops = gf + attn_flops(&m->cfg, &p->b), pass_rate = flops / best / 1e9,
               gemm_rate = gs > 0 ? gf / gs / 1e9 : 0;
        /* Per core: FLOPs over the process's CPU seconds, against the peak loop's per-core rate. */
        double gemm_core = gc > 0 ? gf / gc / 1e9 : 0, pass_core = cpu > 0 ? flops / cpu / 1e9 : 0;
        printf("%-16s %8.3f %8.1f %10.4g %7.1f %5.1f%% %5.1f%% %7.1f %5.1f%% %5.1f%% %8.2f %4.0f%% %8.4f\n", p->label,
               best, (double)p->tokens / best, gf / 1e9, gemm_rate, 100 * gemm_rate / peak->gflops,
               100 * gemm_core / peak->core_gflops, pass_rate, 100 * pass_rate / peak->gflops,
               100 * pass_core / peak->core_gflops, (double)(after.weight_bytes_read - before.weight_bytes_read) / 1e9,
               100 * cpu / best, score);
        fflush(stdout);
    }
    printf("peak resident memory of this mode: %.2f GB (the bf16 weights themselves: %.2f GB)\n", rss_peak_gb(),
           (double)m->data_bytes / 1e9);
    load_warning("after this mode", threads);
    free(hidden);
    rm_engine_cpu.destroy(e);
    return ok;
}

/* Generated text for the tokenizer: 50,000 pseudo-words made of syllables,
 * drawn with Zipf frequencies (as words in natural text are, so a word cache
 * helps about as much as it would on real text), with capitals,
 * punctuation, numbers, line breaks and some Cyrillic and CJK. */
static char *make_text(size_t target, unsigned long long seed, size_t *len) {
    static const char *syl[] = {"ba", "be", "ri", "ko", "ta", "ne", "mo", "lu", "sa", "di", "ver", "con", "tion",
                                "ing", "er", "al", "pre", "st", "th", "an", "re", "ou", "es", "ly", "ment", "com",
                                "pro", "ex", "de", "in", "un", "ed", "or", "at", "ic", "ab", "ph", "qu", "wh", "gr"};
    static const char *other[] = {"Привет", "мир", "東京", "日本語", "数据", "café", "naïve", "🙂", "→", "über"};
    enum { N_WORDS = 50000 };
    size_t nsyl = sizeof syl / sizeof *syl;
    char (*words)[24] = malloc(sizeof(*words) * N_WORDS);
    double *cum = malloc(sizeof *cum * N_WORDS);
    char *t = malloc(target + 64);
    if (!words || !cum || !t) {
        free(words), free(cum), free(t);
        return NULL;
    }
    uint64_t r = seed;
    double total = 0;
    for (int i = 0; i < N_WORDS; i++) {
        r = mix64(r);
        int k = 1 + (int)(r % 4);
        words[i][0] = 0;
        for (int j = 0; j < k; j++) strcat(words[i], syl[(r >> (8 + 8 * j)) % nsyl]);
        cum[i] = total += 1.0 / (i + 1);
    }
    size_t n = 0, w = 0;
    while (n + 40 < target) {
        r = mix64(r);
        double u = (double)(r >> 11) / 9007199254740992.0 * total;
        size_t lo = 0, hi = N_WORDS - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cum[mid] < u) lo = mid + 1;
            else hi = mid;
        }
        unsigned x = (unsigned)(r & 0x3ff);
        if (n) t[n++] = ++w % 90 == 0 ? '\n' : ' ';
        if (x < 20) n += (size_t)sprintf(t + n, "%u", (unsigned)(r >> 40) % 100000);
        else if (x < 30) n += (size_t)sprintf(t + n, "%s", other[(r >> 20) % (sizeof other / sizeof *other)]);
        else {
            size_t l = strlen(words[lo]);
            memcpy(t + n, words[lo], l);
            if (x < 80) t[n] = (char)(t[n] - 'a' + 'A');
            n += l;
            if (x >= 80 && x < 180) t[n++] = ",.;:?!"[x % 6];
        }
    }
    t[n] = 0;
    *len = n;
    free(words);
    free(cum);
    return t;
}

static void bench_tokenizer(const opts *o) {
    rm_tokenizer *tok = NULL;
    char msg[512];
    double t0 = cli_now_seconds();
    if (rm_tokenizer_load(o->tokenizer, &tok, msg, sizeof msg) != RM_OK) {
        fprintf(stderr, "tokenizer: %s\n", msg);
        return;
    }
    double t_load = cli_now_seconds() - t0;
    size_t len;
    char *text = make_text(4u << 20, o->seed, &len);
    if (!text) return;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    t0 = cli_now_seconds();
    rm_status st = rm_tokenize(tok, text, len, &ids, &n_ids, msg, sizeof msg);
    double t = cli_now_seconds() - t0;
    if (st != RM_OK) fprintf(stderr, "tokenize: %s\n", msg);
    else
        printf("\ntokenizer %s: loaded in %.2f s; %.1f MB of generated text (Zipf pseudo-words) -> %zu tokens in "
               "%.2f s: %.2f MB/s, %.0f tokens/s (one thread)\n", o->tokenizer, t_load, (double)len / 1e6, n_ids, t,
               (double)len / 1e6 / t, (double)n_ids / t);
    rm_ids_free(ids);
    free(text);
    rm_tokenizer_free(tok);
}

static void cpu_model_name(char *out, size_t n) {
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                snprintf(out, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

static int bench_cpu(const opts *o) {
    double t_start = cli_now_seconds();
    int threads = o->threads ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    char cpu[256];
    cpu_model_name(cpu, sizeof cpu);
    const rm_cpu_features *f = rm_cpu_features_get();
    printf("nimreward-bench %s, device cpu, %d threads (%ld online cores), seed %llu\n", rm_version_string(), threads,
           sysconf(_SC_NPROCESSORS_ONLN), o->seed);
    printf("cpu: %s; features: %s; ISA level %s\n", cpu, f->flags[0] ? f->flags : "(baseline x86-64)",
           rm_isa_name(f->isa));
    printf("kernels: fp32 %s; bf16 %s; long prompts' attention: the fp32 kernel\n",
           rm_gemm_kernel_name(rm_gemm_kernel_pick(RM_GEMM_FP32, RM_ISA_COUNT)),
           rm_gemm_kernel_name(rm_gemm_kernel_pick(RM_GEMM_BF16, RM_ISA_COUNT)));
    printf("load average before the run: %.2f\n", load_average());
    load_warning("before the run", threads);
    printf("shape: hidden %ld, layers %ld, heads %ld/%ld x %ld, ffn %ld, vocab %ld (random bf16 weights)\n",
           o->hidden, o->layers, o->heads, o->kv_heads, o->head_dim, o->ffn, o->vocab);

    peaks pk = {rm_cpu_peak(RM_PEAK_FP32, threads, 0.3, 3), rm_cpu_peak(RM_PEAK_BF16_DOT, threads, 0.3, 3),
                rm_cpu_peak(RM_PEAK_AMX_BF16, threads, 0.3, 3), threads};
    printf("peak fp32: %.1f GFLOPS on %d threads (%s; %.1f per core over CPU time)\n", pk.fp32.gflops, threads,
           pk.fp32.what, pk.fp32.core_gflops);
    if (pk.bf16.gflops > 0)
        printf("peak bf16: %.1f GFLOPS (%s; %.1f per core)\n", pk.bf16.gflops, pk.bf16.what, pk.bf16.core_gflops);
    if (pk.amx.gflops > 0)
        printf("peak amx:  %.1f GFLOPS (%s; %.1f per core)\n", pk.amx.gflops, pk.amx.what, pk.amx.core_gflops);

    model m;
    double t0 = cli_now_seconds();
    omp_set_num_threads(threads);
    if (!build_model(&m, o)) {
        fprintf(stderr, "error: out of memory for %.2f GB of weights\n", (double)m.data_bytes / 1e9);
        free_model(&m);
        return 1;
    }
    printf("weights: %.2f GB bf16 built in %.2f s\n", (double)m.data_bytes / 1e9, cli_now_seconds() - t0);

    bench_pass passes[17];
    size_t n_passes = 0;
    int ok = 1;
    for (int i = 0; ok && i < o->n_tokens; i++) {
        char label[64];
        snprintf(label, sizeof label, "%ld tokens", o->tokens[i]);
        ok = make_pass(&passes[n_passes++], o, 1, 0, (size_t)o->tokens[i], label);
    }
    if (ok && o->batch_seqs) {
        char label[64];
        snprintf(label, sizeof label, "%ldx(%ld+%ld)", o->batch_seqs, o->batch_prompt, o->batch_response);
        ok = make_pass(&passes[n_passes++], o, (size_t)o->batch_seqs, (size_t)o->batch_prompt,
                       (size_t)o->batch_response, label);
    }
    if (!ok) fprintf(stderr, "error: out of memory for the token lists\n");
    printf("\nGEMM/s: the projections' FLOPs over the time spent in them; pass/s: GEMM and attention FLOPs over the\n"
           "pass's wall time; %%peak: of the peak of the kernel's instructions on these threads (the highest of its\n"
           "measurements at the start and after each pass); %%core: the same FLOPs over CPU seconds, of the\n"
           "per-core peak (what the cores gave when this run had them: robust to other processes' load, and it\n"
           "counts threads spinning at barriers); tokens/s counts all a batch's tokens\n");
    const int modes[4][2] = {{D_FP32, W_INPLACE}, {D_FP32, W_RESIDENT}, {D_FP32, W_STREAM}, {D_BF16, W_INPLACE}};
    for (int i = 0; ok && i < 4; i++)
        if ((o->dtypes & modes[i][0]) && (modes[i][0] == D_BF16 || (o->weights & modes[i][1])))
            ok &= run_mode(o, &m, modes[i][0], modes[i][1], &pk, passes, n_passes, threads);
    for (size_t i = 0; i < n_passes; i++) free_pass(&passes[i]);
    free_model(&m);
    if (o->tokenizer) bench_tokenizer(o);
    load_warning("after the run", threads);
    printf("\ntotal run time %.1f s\n", cli_now_seconds() - t_start);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)   /* --device cuda: bench_cuda.c */
        if (strcmp(argv[i], "--device") == 0 && strcmp(argv[i + 1], "cuda") == 0) return bench_cuda_main(argc, argv);
    opts o;
    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    if (strcmp(o.device, "cpu") != 0) {
        fprintf(stderr, "error: --device %s: the benchmark runs --device cpu or --device cuda\n", o.device);
        return 2;
    }
    return bench_cpu(&o);
}
