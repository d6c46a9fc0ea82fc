/*
 * nimreward-bench - how fast the forward pass runs, against what the machine can do.
 *
 *   nimreward-bench --device cpu [--hidden 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192
 *                   --vocab 128256 --head-dim D] [--tokens 512,2048] [--threads N] [--seed S]
 *                   [--weights resident|stream|both] [--repeat R] [--tokenizer tokenizer.json]
 *                   [--attn-blas-min N]
 *
 * The default shape is Llama-3.2-1B with random bf16 weights built in memory
 * (no file). Reports, per sequence length: tokens/s of one forward pass with
 * the classification head, the GEMM FLOPs and the rate they ran at against
 * the peak a large cblas_sgemm reaches in the same run; with --tokenizer,
 * the tokenizer's MB/s on generated text. Weights are timed both converted
 * once to a resident fp32 copy and converted per pass (--weights).
 */
#include <cblas.h>
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
#include "cpu_ops.h"
#include "engine.h"
#include "nimreward.h"

typedef struct opts {
    const char *device, *tokenizer, *weights;
    long hidden, layers, heads, kv_heads, ffn, vocab, head_dim;
    long tokens[16], attn_blas_min;
    int n_tokens, threads, repeat;
    unsigned long long seed;
} opts;

static void usage(FILE *f) {
    fputs("usage: nimreward-bench --device cpu [--hidden 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192\n"
          "                       --vocab 128256 --head-dim D] [--tokens 512,2048] [--threads N] [--seed S]\n"
          "                       [--weights resident|stream|both] [--repeat R] [--tokenizer tokenizer.json]\n"
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
    *o = (opts){.device = "cpu", .weights = "both", .hidden = 2048, .layers = 16, .heads = 32, .kv_heads = 8,
                .ffn = 8192, .vocab = 128256, .tokens = {512, 2048}, .n_tokens = 2, .repeat = 1, .seed = 42, .attn_blas_min = -1};
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
            o->weights = argv[++i];
            if (strcmp(v, "resident") && strcmp(v, "stream") && strcmp(v, "both")) {
                fprintf(stderr, "error: --weights is resident, stream or both\n");
                return 0;
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

/* Best of three square sgemms: the rate the BLAS reaches on this machine. */
static double measure_peak(int threads) {
    const int n = 3072;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 0;
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    openblas_set_num_threads(threads);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t = cli_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t = cli_now_seconds() - t;
        double g = 2.0 * n * n * n / t / 1e9;
        if (g > best) best = g;
    }
    free(a), free(b), free(c);
    return best;
}

/* FLOPs of one pass over one sequence of n tokens: GEMMs and attention. */
static void pass_flops(const rm_config *c, double n, double *gemm, double *attn) {
    double H = (double)c->hidden, QD = (double)(c->n_heads * c->head_dim), KD = (double)(c->n_kv_heads * c->head_dim),
           F = (double)c->ffn, L = (double)c->n_layers;
    double kv = 2 * H * 2 * KD, rest = 2 * H * QD + 2 * QD * H + 3 * 2 * H * F;
    *gemm = (L - 1) * n * (kv + rest) + n * kv + 1 * rest;
    double per_pair = 4 * QD;   /* q.k and p*v, every head */
    *attn = (L - 1) * per_pair * n * (n + 1) / 2 + per_pair * n;
}

/* CPU seconds (user + system) this process has used: with the wall time it
 * shows whether the run had the cores to itself. */
static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           (double)u.ru_stime.tv_usec * 1e-6;
}

static double max_rss_gb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / (1024.0 * 1024.0);
}

static int run_engine(const opts *o, model *m, int resident, double peak, int threads) {
    rm_engine *e = NULL;
    rm_err err = {0};
    double t0 = cli_now_seconds();
    if (rm_engine_cpu_create_ex(&e, &m->cfg, &m->mw, o->threads, resident ? SIZE_MAX : 0, &err) != RM_OK) {
        fprintf(stderr, "error: engine: %s\n", err.msg);
        return 0;
    }
    double t_create = cli_now_seconds() - t0;
    if (o->attn_blas_min >= 0) rm_engine_cpu_set_attn_blas_min(e, (size_t)o->attn_blas_min);
    printf("\nweights %s: engine created in %.2f s%s\n", resident ? "resident (fp32 copy made once)" : "streamed (bf16 -> fp32 per pass)",
           t_create, resident ? " (includes the bf16 -> fp32 conversion)" : "");
    size_t H = (size_t)m->cfg.hidden, maxn = 0;
    for (int i = 0; i < o->n_tokens; i++) maxn = (size_t)o->tokens[i] > maxn ? (size_t)o->tokens[i] : maxn;
    int32_t *toks = malloc(maxn * sizeof *toks);
    float *hidden = malloc(H * sizeof *hidden);
    for (size_t i = 0; i < maxn; i++) toks[i] = (int32_t)(mix64(o->seed + 7 * i) % (uint64_t)m->cfg.vocab);
    int ok = toks && hidden;
    /* Warm-up: page in the scratch allocator and the BLAS threads. */
    const int32_t *tp[1] = {toks};
    size_t warm = maxn < 16 ? maxn : 16;
    rm_batch wb = {1, tp, &warm, NULL, NULL};
    if (ok && rm_engine_cpu.forward(e, &wb, hidden, &err) != RM_OK) {
        fprintf(stderr, "error: forward: %s\n", err.msg);
        ok = 0;
    }
    printf("%8s %9s %10s %11s %11s %8s %10s %11s %6s %8s\n", "tokens", "seconds", "tokens/s", "GEMM GFLOP",
           "attn GFLOP", "GFLOPS", "% of peak", "weights GB", "cpu%", "score");
    for (int i = 0; ok && i < o->n_tokens; i++) {
        size_t n = (size_t)o->tokens[i];
        rm_batch b = {1, tp, &n, NULL, NULL};
        double best = 1e30, cpu = 1e30;
        float score = 0;
        rm_engine_counters before, after;
        rm_engine_cpu.counters(e, &before, NULL);
        for (int r = 0; r < o->repeat && ok; r++) {
            t0 = cli_now_seconds();
            double c0 = cpu_seconds();
            int64_t row = 0;
            if (rm_engine_cpu.forward(e, &b, hidden, &err) != RM_OK ||
                rm_engine_cpu.head_rows(e, m->mw.score, &row, 1, hidden, &score, &err) != RM_OK) {
                fprintf(stderr, "error: forward: %s\n", err.msg);
                ok = 0;
            }
            double t = cli_now_seconds() - t0;
            if (t < best) best = t, cpu = cpu_seconds() - c0;
        }
        rm_engine_cpu.counters(e, &after, NULL);
        if (!ok) break;
        double gemm, attn;
        pass_flops(&m->cfg, (double)n, &gemm, &attn);
        double gflops = (gemm + attn) / best / 1e9;
        printf("%8zu %9.3f %10.1f %11.4g %11.4g %8.1f %9.1f%% %11.2f %5.0f%% %8.4f\n", n, best, (double)n / best,
               gemm / 1e9, attn / 1e9, gflops, 100 * gflops / peak,
               (double)(after.weight_bytes_read - before.weight_bytes_read) / o->repeat / 1e9, 100 * cpu / best, score);
        fflush(stdout);
    }
    printf("max resident set so far: %.2f GB\n", max_rss_gb());
    (void)threads;
    free(toks);
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
    double t_start = cli_now_seconds();
    int threads = o.threads ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    char cpu[256];
    cpu_model_name(cpu, sizeof cpu);
    printf("nimreward-bench %s, device cpu, %d threads (%ld online cores), seed %llu\n", rm_version_string(), threads,
           sysconf(_SC_NPROCESSORS_ONLN), o.seed);
    printf("cpu: %s; BLAS: %s\n", cpu, openblas_get_config());
    FILE *la = fopen("/proc/loadavg", "r");
    char load[128] = "?";
    if (la) {
        if (fgets(load, sizeof load, la)) load[strcspn(load, "\n")] = 0;
        fclose(la);
    }
    printf("load average before the run: %s (another busy process skews every number below)\n", load);
    printf("shape: hidden %ld, layers %ld, heads %ld/%ld x %ld, ffn %ld, vocab %ld (random bf16 weights)\n", o.hidden,
           o.layers, o.heads, o.kv_heads, o.head_dim, o.ffn, o.vocab);

    double peak = measure_peak(threads);
    printf("peak: cblas_sgemm 3072^3 reaches %.1f GFLOPS on %d threads\n", peak, threads);

    model m;
    double t0 = cli_now_seconds();
    omp_set_num_threads(threads);
    if (!build_model(&m, &o)) {
        fprintf(stderr, "error: out of memory for %.2f GB of weights\n", (double)m.data_bytes / 1e9);
        free_model(&m);
        return 1;
    }
    printf("weights: %.2f GB bf16 built in %.2f s\n", (double)m.data_bytes / 1e9, cli_now_seconds() - t0);
    int ok = 1;
    if (strcmp(o.weights, "stream") != 0) ok &= run_engine(&o, &m, 1, peak, threads);
    if (ok && strcmp(o.weights, "resident") != 0) ok &= run_engine(&o, &m, 0, peak, threads);
    free_model(&m);
    if (o.tokenizer) bench_tokenizer(&o);
    printf("\ntotal run time %.1f s\n", cli_now_seconds() - t_start);
    return ok ? 0 : 1;
}
