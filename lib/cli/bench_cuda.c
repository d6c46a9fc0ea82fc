/*
 * bench_cuda.c - nimreward-bench --device cuda: the CUDA engine against what
 * the GPU can do, through the CUDA module (the tool itself links no CUDA).
 *
 *   nimreward-bench --device cuda [--dtype bf16|fp8] [--gpu N] [--layers 80 --hidden 8192 --heads 64
 *                   --kv-heads 8 --head-dim 128 --ffn 28672 --vocab 128256] [--batches 1x4096,4x2048,16x512,rlhf]
 *                   [--repeat 3] [--seed S] [--max-device-gib G] [--fast-accum 0|1|both]
 *                   [--load-gb 10 --load-dir DIR] [--json FILE]
 *
 * The default model is Llama-3.3-70B's shape with all 80 layers and random
 * weights made on the GPU (lib/random_model.h). Per batch (rlhf: 64
 * sequences of a shared 128-token prompt plus 256 response tokens) it prints
 * the median of --repeat passes as tokens/s (every token of every sequence,
 * a shared prompt counted each time), the model TFLOPS (2 x parameters x
 * tokens plus causal attention, half of the n x n pairs, as if every token
 * were computed: the figure other engines are quoted in), the TFLOPS of the
 * work actually done (prefix sharing and the last layer's single rows skip
 * some), the attention kernel's own TFLOPS, and the ceiling: every GEMM of
 * the pass replayed alone through cuBLASLt at the same shapes. FP8 runs with
 * CUBLASLT_MATMUL_DESC_FAST_ACCUM off and on (--fast-accum both, the default).
 * --load-gb writes a random safetensors file that large (70B-shaped layers)
 * under --load-dir, drops it from the page cache, and times a load through
 * the mapped file (cold), then again (warm).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bench_cuda.h"
#include "cli_common.h"
#include "config.h"
#include "cuda_module.h"
#include "engine.h"
#include "random_model.h"
#include "weights.h"

#define MAX_BATCHES 8
#define TMPFS_MAGIC_NUMBER 0x01021994

typedef struct batch_shape {
    char name[32];
    int n_seqs, len, shared;     /* every sequence len tokens, the first `shared` of them common */
} batch_shape;

typedef struct bopts {
    int dtype, gpu, repeat, fast_accum;   /* fast_accum: 0, 1, or 2 = both */
    long layers, hidden, heads, kv_heads, head_dim, ffn, vocab;
    batch_shape batches[MAX_BATCHES];
    int n_batches;
    unsigned long long seed;
    double max_device_gib, load_gb;
    const char *load_dir, *json;
} bopts;

static void usage(FILE *f) {
    fputs("usage: nimreward-bench --device cuda [--dtype bf16|fp8] [--gpu N] [--layers 80 --hidden 8192 --heads 64\n"
          "                       --kv-heads 8 --head-dim 128 --ffn 28672 --vocab 128256]\n"
          "                       [--batches 1x4096,4x2048,16x512,rlhf] [--repeat 3] [--seed S] [--max-device-gib G]\n"
          "                       [--fast-accum 0|1|both] [--load-gb 10 --load-dir DIR] [--json FILE]\n", f);
}

static int parse_batches(const char *s, bopts *o) {
    o->n_batches = 0;
    while (*s && o->n_batches < MAX_BATCHES) {
        batch_shape *b = &o->batches[o->n_batches];
        size_t len = strcspn(s, ",");
        if (len == 4 && !strncmp(s, "rlhf", 4)) {
            *b = (batch_shape){"rlhf 64x(128+256)", 64, 384, 128};
        } else {
            int n, l, used = 0;
            if (sscanf(s, "%dx%d%n", &n, &l, &used) != 2 || (size_t)used != len || n < 1 || l < 1) return 0;
            *b = (batch_shape){"", n, l, 0};
            snprintf(b->name, sizeof b->name, "%dx%d", n, l);
        }
        o->n_batches++;
        s += len + (s[len] == ',');
    }
    return o->n_batches > 0 && !*s;
}

static int parse(int argc, char **argv, bopts *o) {
    *o = (bopts){.dtype = RM_DTYPE_BF16, .repeat = 3, .fast_accum = 2, .layers = 80, .hidden = 8192, .heads = 64,
                 .kv_heads = 8, .head_dim = 128, .ffn = 28672, .vocab = 128256, .seed = 42};
    parse_batches("1x4096,4x2048,16x512,rlhf", o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        struct { const char *name; long *dst; } nums[] = {
            {"--layers", &o->layers}, {"--hidden", &o->hidden}, {"--heads", &o->heads}, {"--kv-heads", &o->kv_heads},
            {"--head-dim", &o->head_dim}, {"--ffn", &o->ffn}, {"--vocab", &o->vocab}};
        int done = 0;
        for (size_t k = 0; k < sizeof nums / sizeof *nums && !done; k++)
            if (!strcmp(a, nums[k].name)) {
                if (!v || (*nums[k].dst = cli_parse_count(v)) < 1)
                    return fprintf(stderr, "error: %s needs a positive integer\n", a), 0;
                done = 1;
            }
        if (done) { i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        if (!v) return fprintf(stderr, "error: %s needs a value\n", a), 0;
        i++;
        if (!strcmp(a, "--device")) {
            if (strcmp(v, "cuda")) return fprintf(stderr, "error: this is the cuda benchmark\n"), 0;
        } else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "bf16")) o->dtype = RM_DTYPE_BF16;
            else if (!strcmp(v, "fp8")) o->dtype = RM_DTYPE_FP8;
            else return fprintf(stderr, "error: --dtype is bf16 or fp8 on CUDA\n"), 0;
        } else if (!strcmp(a, "--gpu")) {
            if ((o->gpu = (int)cli_parse_count(v)) < 0) return fprintf(stderr, "error: bad --gpu\n"), 0;
        } else if (!strcmp(a, "--repeat")) {
            if ((o->repeat = (int)cli_parse_count(v)) < 1) return fprintf(stderr, "error: bad --repeat\n"), 0;
        } else if (!strcmp(a, "--seed")) {
            o->seed = strtoull(v, NULL, 0);
        } else if (!strcmp(a, "--batches")) {
            if (!parse_batches(v, o)) return fprintf(stderr, "error: --batches is a list of NxLEN or rlhf\n"), 0;
        } else if (!strcmp(a, "--max-device-gib")) {
            o->max_device_gib = strtod(v, NULL);
        } else if (!strcmp(a, "--fast-accum")) {
            o->fast_accum = !strcmp(v, "both") ? 2 : !strcmp(v, "1") ? 1 : !strcmp(v, "0") ? 0 : -1;
            if (o->fast_accum < 0) return fprintf(stderr, "error: --fast-accum is 0, 1 or both\n"), 0;
        } else if (!strcmp(a, "--load-gb")) {
            o->load_gb = strtod(v, NULL);
        } else if (!strcmp(a, "--load-dir")) {
            o->load_dir = v;
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else {
            return fprintf(stderr, "error: unknown option %s\n", a), 0;
        }
    }
    if (o->heads % o->kv_heads || o->head_dim % 2)
        return fprintf(stderr, "error: heads must be a multiple of kv-heads and head_dim even\n"), 0;
    return 1;
}

static rm_config shape_of(const bopts *o, long layers) {
    rm_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "LlamaForSequenceClassification");
    c.arch = RM_ARCH_LLAMA_SEQCLS;
    c.hidden = o->hidden, c.n_layers = layers, c.n_heads = o->heads, c.n_kv_heads = o->kv_heads;
    c.head_dim = o->head_dim, c.ffn = o->ffn, c.vocab = o->vocab, c.max_pos = 131072;
    c.rms_eps = 1e-5, c.rope_theta = 500000.0, c.rope_type = RM_ROPE_LLAMA3;   /* Llama 3.3's RoPE */
    c.rope_factor = 8, c.rope_low_freq_factor = 1, c.rope_high_freq_factor = 4, c.rope_orig_max_pos = 8192;
    c.n_labels = 1, c.pad_token_id = -1;
    snprintf(c.dtype, sizeof c.dtype, "bfloat16");
    return c;
}

/* The FLOPs a pass over these sequences takes when every token is computed
 * in every layer: 2 x parameters x tokens, plus causal attention. */
static double model_flops(const rm_config *c, const batch_shape *b) {
    double H = (double)c->hidden, QD = (double)(c->n_heads * c->head_dim), KD = (double)(c->n_kv_heads * c->head_dim),
           F = (double)c->ffn, L = (double)c->n_layers, n = (double)b->len;
    double per_token = 2 * (H * (QD + 2 * KD) + QD * H + 3 * H * F);
    double attn = 4 * QD * n * (n + 1) / 2;
    return b->n_seqs * L * (per_token * n + attn);
}

typedef struct owned_batch {
    rm_batch b;
    int32_t *tokens;
    const int32_t **rows;
    size_t *lens, *shared;
    int32_t *parent;
} owned_batch;

static void make_batch(owned_batch *o, const batch_shape *s, const rm_config *c, uint64_t seed) {
    size_t n = (size_t)s->n_seqs, len = (size_t)s->len;
    o->tokens = malloc(n * len * sizeof *o->tokens);
    o->rows = malloc(n * sizeof *o->rows);
    o->lens = malloc(n * sizeof *o->lens);
    o->shared = calloc(n, sizeof *o->shared);
    o->parent = malloc(n * sizeof *o->parent);
    for (size_t q = 0; q < n; q++) {
        for (size_t i = 0; i < len; i++) {
            size_t src = i < (size_t)s->shared ? i : q * len + i;   /* the shared prompt: the same ids */
            o->tokens[q * len + i] = (int32_t)(rm_random_mix(seed ^ (src * 0x9e3779b97f4a7c15ULL)) % (uint64_t)c->vocab);
        }
        o->rows[q] = o->tokens + q * len;
        o->lens[q] = len;
        o->parent[q] = q && s->shared ? 0 : -1;
        o->shared[q] = q && s->shared ? (size_t)s->shared : 0;
    }
    o->b = (rm_batch){n, o->rows, o->lens, s->shared ? o->parent : NULL, s->shared ? o->shared : NULL};
}

static void free_batch(owned_batch *o) {
    free(o->tokens), free(o->rows), free(o->lens), free(o->shared), free(o->parent);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static FILE *json_out;

static int run_batches(const bopts *o, const rm_cuda_module *mod, rm_engine *e, const rm_config *cfg, int fast) {
    const rm_engine_ops *E = mod->ops;
    rm_err err = {0};
    if (o->dtype == RM_DTYPE_FP8 && mod->set_option(e, RM_CUDA_OPTION_FP8_FAST_ACCUM, fast, &err) != RM_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 0;
    }
    const char *dt = o->dtype == RM_DTYPE_FP8 ? "fp8" : "bf16";
    printf("\n%s%s\n", dt, o->dtype == RM_DTYPE_FP8 ? (fast ? ", CUBLASLT_MATMUL_DESC_FAST_ACCUM on"
                                                            : ", CUBLASLT_MATMUL_DESC_FAST_ACCUM off") : "");
    printf("%-18s %7s %8s %10s %9s %9s %9s %9s %7s %7s %7s %7s %6s\n", "batch", "tokens", "seconds", "tokens/s",
           "model TF", "done TF", "GEMM TF", "ceilingTF", "gemm%", "attn TF", "attn%", "quant%", "passes");
    for (int k = 0; k < o->n_batches; k++) {
        owned_batch ob;
        make_batch(&ob, &o->batches[k], cfg, o->seed + (uint64_t)k);
        float *hidden = malloc((size_t)ob.b.n_seqs * (size_t)cfg->hidden * sizeof *hidden);
        double times[64];
        int reps = o->repeat < 64 ? o->repeat : 64, ok = 1;
        ok = E->forward(e, &ob.b, hidden, &err) == RM_OK;   /* warm-up: plans for these shapes */
        for (int r = 0; r < reps && ok; r++) {
            double t0 = cli_now_seconds();
            ok = E->forward(e, &ob.b, hidden, &err) == RM_OK;
            times[r] = cli_now_seconds() - t0;
        }
        rm_cuda_profile prof = {.replay_gemms = 1};
        if (ok) ok = mod->profile(e, &ob.b, hidden, &prof, &err) == RM_OK;
        if (!ok) {
            fprintf(stderr, "error: %s: %s\n", o->batches[k].name, err.msg);
            free(hidden), free_batch(&ob);
            return 0;
        }
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        double t = times[reps / 2], tokens = (double)o->batches[k].n_seqs * o->batches[k].len;
        double mf = model_flops(cfg, &o->batches[k]), done = prof.gemm_flops + prof.attention_flops;
        double gemm_s = prof.seconds[RM_CUDA_WORK_GEMM], attn_s = prof.seconds[RM_CUDA_WORK_ATTENTION];
        double gemm_tf = gemm_s > 0 ? prof.gemm_flops / gemm_s / 1e12 : 0;
        double ceiling = prof.gemm_replay_seconds > 0 ? prof.gemm_replay_flops / prof.gemm_replay_seconds / 1e12 : 0;
        double attn_tf = attn_s > 0 ? prof.attention_flops / attn_s / 1e12 : 0, sum = 0;
        for (int w = 0; w < RM_CUDA_WORK_KINDS; w++) sum += prof.seconds[w];
        printf("%-18s %7.0f %8.4f %10.0f %9.1f %9.1f %9.1f %9.1f %6.1f%% %7.1f %6.1f%% %6.1f%% %6zu\n",
               o->batches[k].name, tokens, t, tokens / t, mf / t / 1e12, done / t / 1e12, gemm_tf, ceiling,
               sum > 0 ? 100 * gemm_s / sum : 0, attn_tf, sum > 0 ? 100 * attn_s / sum : 0,
               sum > 0 ? 100 * prof.seconds[RM_CUDA_WORK_QUANTIZE] / sum : 0, prof.passes);
        fflush(stdout);
        if (json_out)
            fprintf(json_out, "{\"engine\": \"nimreward\", \"dtype\": \"%s\", \"fast_accum\": %d, \"fp8_scaling\": %d, "
                    "\"batch\": \"%s\", \"n_seqs\": %d, \"len\": %d, \"shared\": %d, \"tokens\": %.0f, \"seconds\": %.6f, "
                    "\"tokens_per_s\": %.1f, \"model_tflops\": %.2f, \"done_tflops\": %.2f, \"gemm_tflops\": %.2f, "
                    "\"gemm_ceiling_tflops\": %.2f, \"attention_tflops\": %.2f, \"attention_seconds\": %.6f, "
                    "\"attention_flops\": %.4g, \"passes\": %zu, \"layers\": %lld}\n", dt, prof.fast_accum,
                    prof.fp8_scaling, o->batches[k].name, o->batches[k].n_seqs, o->batches[k].len,
                    o->batches[k].shared, tokens, t, tokens / t, mf / t / 1e12, done / t / 1e12, gemm_tf, ceiling,
                    attn_tf, attn_s, prof.attention_flops, prof.passes, (long long)cfg->n_layers);
        free(hidden);
        free_batch(&ob);
    }
    return 1;
}

/* ---------------------------------------------------------------- load throughput */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        c += w, n -= (size_t)w;
    }
    return 1;
}

/* A safetensors file of 70B-shaped layers (random finite bf16) and its config. */
static int write_checkpoint(const char *dir, const rm_config *c) {
    int64_t H = c->hidden, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, F = c->ffn;
    struct { char name[96]; int64_t r, cols; } t[16 * 128 + 4];
    size_t n = 0;
#define ADD(nm, rr, cc) (snprintf(t[n].name, sizeof t[n].name, "%s", nm), t[n].r = (rr), t[n].cols = (cc), n++)
    ADD("model.embed_tokens.weight", c->vocab, H);
    for (int64_t l = 0; l < c->n_layers && l < 128; l++) {
        static const char *lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int64_t rows[] = {QD, KD, KD, H, F, F, H}, cols[] = {H, H, H, QD, H, H, F};
        char nm[96];
        for (int i = 0; i < 7; i++) {
            snprintf(nm, sizeof nm, "model.layers.%lld.%s.weight", (long long)l, lin[i]);
            ADD(nm, rows[i], cols[i]);
        }
        snprintf(nm, sizeof nm, "model.layers.%lld.input_layernorm.weight", (long long)l);
        ADD(nm, H, 0);
        snprintf(nm, sizeof nm, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        ADD(nm, H, 0);
    }
    ADD("model.norm.weight", H, 0);
    ADD("score.weight", 1, H);
#undef ADD
    size_t cap = n * 256 + 64, len = 0, off = 0;
    char *hdr = malloc(cap);
    if (!hdr) return 0;
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (size_t i = 0; i < n && len < cap; i++) {
        size_t bytes = (size_t)t[i].r * (size_t)(t[i].cols ? t[i].cols : 1) * 2;
        char shape[64];
        if (t[i].cols) snprintf(shape, sizeof shape, "%lld,%lld", (long long)t[i].r, (long long)t[i].cols);
        else snprintf(shape, sizeof shape, "%lld", (long long)t[i].r);
        len += (size_t)snprintf(hdr + len, cap - len, "%s\"%.95s\":{\"dtype\":\"BF16\",\"shape\":[%s],"
                                "\"data_offsets\":[%zu,%zu]}", i ? "," : "", t[i].name, shape, off, off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), ok = fd >= 0;
    uint64_t hl = len;
    ok = ok && write_all(fd, &hl, 8) && write_all(fd, hdr, len);
    size_t chunk = (size_t)64 << 20;
    uint16_t *buf = malloc(chunk);
    for (size_t done = 0, k = 0; ok && done < off; done += chunk, k++) {
        size_t m = off - done < chunk ? off - done : chunk;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < m / 2; i++) {   /* finite bf16 near +-0.03: sign, exponent 121..122, mantissa */
            uint64_t r = rm_random_mix(k * chunk + i);
            buf[i] = (uint16_t)(((r & 1) << 15) | ((121 + ((r >> 1) & 1)) << 7) | ((r >> 2) & 0x7f));
        }
        ok = write_all(fd, buf, m);
    }
    free(buf);
    free(hdr);
    if (fd >= 0) {
        ok = ok && fsync(fd) == 0;
        close(fd);
    }
    return ok;
}

/* Share of the file's pages in the page cache. */
static double resident_share(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat sb;
    fstat(fd, &sb);
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return -1;
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = ((size_t)sb.st_size + (size_t)page - 1) / (size_t)page, in = 0;
    unsigned char *vec = malloc(pages);
    if (vec && mincore(p, (size_t)sb.st_size, vec) == 0)
        for (size_t i = 0; i < pages; i++) in += vec[i] & 1;
    free(vec);
    munmap(p, (size_t)sb.st_size);
    return (double)in / (double)pages;
}

static void drop_cache(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static int bench_load(const bopts *o, const rm_cuda_module *mod) {
    rm_config full = shape_of(o, 1);
    double H = (double)full.hidden, per_layer = 2 * H * ((double)(o->heads + 2 * o->kv_heads) * o->head_dim +
                                                        (double)o->heads * o->head_dim + 3.0 * o->ffn);
    double embed = 2 * H * (double)o->vocab;
    long layers = (long)ceil((o->load_gb * 1e9 - embed) / per_layer);
    if (layers < 1) layers = 1;
    rm_config c = shape_of(o, layers);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/nimreward-load-bench", o->load_dir ? o->load_dir : ".");
    mkdir(dir, 0755);
    struct statfs fs;
    int tmpfs = statfs(dir, &fs) == 0 && (unsigned long)fs.f_type == TMPFS_MAGIC_NUMBER;
    printf("\nload: writing a %ld-layer checkpoint (%.1f GB) in %s%s\n", layers, (embed + layers * per_layer) / 1e9,
           dir, tmpfs ? " (tmpfs: the file lives in memory, so no load from it is cold)" : "");
    fflush(stdout);
    double t0 = cli_now_seconds();
    if (!write_checkpoint(dir, &c)) {
        fprintf(stderr, "error: writing the load checkpoint in %s: %s\n", dir, strerror(errno));
        return 0;
    }
    printf("load: written in %.1f s\n", cli_now_seconds() - t0);
    char file[4200];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    int ok = 1;
    for (int pass = 0; pass < 2 && ok; pass++) {
        if (pass == 0) drop_cache(file);
        double resident = resident_share(file);
        rm_weights *w = NULL;
        rm_model_weights mw;
        memset(&mw, 0, sizeof mw);
        rm_err err = {0};
        rm_engine *e = NULL;
        rm_engine_opts eo = {.dtype = o->dtype, .gpu = o->gpu};
        t0 = cli_now_seconds();
        ok = rm_weights_open(&w, dir, &err) == RM_OK && rm_model_weights_bind(&mw, w, &c, &err) == RM_OK &&
             mod->ops->create(&e, &c, &mw, &eo, &err) == RM_OK;
        double t = cli_now_seconds() - t0;
        if (ok) {
            double gb = (double)rm_weights_bytes_mapped(w) / 1e9;
            printf("load %s: %.2f GB in %.2f s = %.2f GB/s to the GPU (%s; %.0f%% of the file in the page cache "
                   "before)\n", pass ? "again" : "first", gb, t, gb / t,
                   tmpfs ? "tmpfs" : resident < 0.05 ? "cold page cache" : "warm page cache", 100 * resident);
            if (json_out)
                fprintf(json_out, "{\"engine\": \"nimreward\", \"load\": \"%s\", \"dtype\": \"%s\", \"gb\": %.3f, "
                        "\"seconds\": %.3f, \"gb_per_s\": %.3f, \"resident_before\": %.3f, \"tmpfs\": %d}\n",
                        pass ? "warm" : "cold", o->dtype == RM_DTYPE_FP8 ? "fp8" : "bf16", gb, t, gb / t, resident,
                        tmpfs);
        } else {
            fprintf(stderr, "error: load: %s\n", err.msg);
        }
        if (e) mod->ops->destroy(e);
        rm_model_weights_free(&mw);
        if (w) rm_weights_close(w);
    }
    unlink(file);
    rmdir(dir);
    return ok;
}

int bench_cuda_main(int argc, char **argv) {
    bopts o;
    if (!parse(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    const rm_cuda_module *mod;
    rm_err err = {0};
    if (rm_cuda_module_get(&mod, NULL, &err) != RM_OK) return fprintf(stderr, "error: %s\n", err.msg), 1;
    rm_cuda_device_info info;
    if (mod->probe(o.gpu, &info, &err) != RM_OK) return fprintf(stderr, "error: %s\n", err.msg), 1;
    if (o.json && !(json_out = fopen(o.json, "a"))) return fprintf(stderr, "error: %s: %s\n", o.json, strerror(errno)), 1;
    printf("nimreward-bench %s, device cuda: GPU %d %s, compute capability %d.%d, %d SMs, %.1f GiB (%.1f free); driver "
           "CUDA %d.%d, runtime %d.%d, cuBLASLt %d; module built for %s; seed %llu\n", rm_version_string(), o.gpu,
           info.name, info.cc_major, info.cc_minor, info.n_sms, info.total_bytes / 1073741824.0,
           info.free_bytes / 1073741824.0, info.driver_version / 1000, info.driver_version % 1000 / 10,
           info.runtime_version / 1000, info.runtime_version % 1000 / 10, info.cublaslt_version, mod->arch, o.seed);
    rm_config cfg = shape_of(&o, o.layers);
    printf("shape: hidden %ld, %ld layers, heads %ld/%ld x %ld, ffn %ld, vocab %ld; random weights made on the GPU; "
           "dtype %s%s\n", o.hidden, o.layers, o.heads, o.kv_heads, o.head_dim, o.ffn, o.vocab,
           o.dtype == RM_DTYPE_FP8 ? "fp8" : "bf16", o.max_device_gib > 0 ? "" : "");
    rm_engine_opts eo = {.dtype = o.dtype, .gpu = o.gpu,
                         .max_device_bytes = (size_t)(o.max_device_gib * 1073741824.0)};
    double t0 = cli_now_seconds();
    rm_engine *e = NULL;
    if (mod->create_random(&e, &cfg, o.seed, &eo, &err) != RM_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        if (json_out) fclose(json_out);
        return 1;
    }
    double t_create = cli_now_seconds() - t0;
    rm_engine_memory mem;
    mod->ops->memory(e, &mem);
    rm_cuda_device_info after;
    mod->probe(o.gpu, &after, &err);
    size_t held = mem.weights + mem.activations + mem.workspace;
    printf("engine made in %.2f s: weights %.2f GiB, activations %.2f GiB (%zu tokens per pass), workspace %.0f MiB; "
           "held %.2f GiB of a budget of %.2f GiB%s; the device's free memory fell by %.2f GiB (peak device bytes "
           "%zu)\n", t_create, mem.weights / 1073741824.0, mem.activations / 1073741824.0, mem.tokens_per_pass,
           mem.workspace / 1048576.0, held / 1073741824.0, mem.budget / 1073741824.0,
           o.max_device_gib > 0 ? " (--max-device-gib)" : " (free less the margin)",
           ((double)info.free_bytes - (double)after.free_bytes) / 1073741824.0, mem.peak_load);
    if (o.max_device_gib > 0 && held > eo.max_device_bytes) {
        fprintf(stderr, "error: the engine holds %zu bytes, more than --max-device-gib %.1f\n", held, o.max_device_gib);
        mod->ops->destroy(e);
        return 1;
    }
    if (json_out)
        fprintf(json_out, "{\"engine\": \"nimreward\", \"memory\": \"%s\", \"weights\": %zu, \"activations\": %zu, "
                "\"workspace\": %zu, \"budget\": %zu, \"peak\": %zu, \"free_drop\": %.0f, \"tokens_per_pass\": %zu, "
                "\"create_seconds\": %.3f}\n", o.dtype == RM_DTYPE_FP8 ? "fp8" : "bf16", mem.weights, mem.activations,
                mem.workspace, mem.budget, mem.peak_load, (double)info.free_bytes - (double)after.free_bytes,
                mem.tokens_per_pass, t_create);
    int ok = 1;
    if (o.dtype != RM_DTYPE_FP8 || o.fast_accum != 1) ok = run_batches(&o, mod, e, &cfg, 0);
    if (ok && o.dtype == RM_DTYPE_FP8 && o.fast_accum != 0) ok = run_batches(&o, mod, e, &cfg, 1);
    mod->ops->destroy(e);
    if (ok && o.load_gb > 0) ok = bench_load(&o, mod);
    if (json_out) fclose(json_out);
    return ok ? 0 : 1;
}
