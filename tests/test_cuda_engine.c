/*
 * test_cuda_engine.c - the CUDA engine on a GPU (the skip line without one):
 *  - its own kernels (dtype conversion, per-tensor FP8) against their CPU
 *    references, bit for bit, outputs poisoned first;
 *  - every fixture model against transformers' fp32 references: bf16 within
 *    3e-2, FP8 within 0.15 with the ordering rule (rows whose references
 *    differ by more than 0.25 keep their order), one sequence at a time,
 *    packed with prefix sharing, and split into passes by a small arena; FP8
 *    with fast accumulation and with per-tensor scales too;
 *  - the public API on CUDA (device, dtype, memory report, the refusals, an
 *    out-of-memory load saying needed and allowed);
 *  - fp32 and fp16 checkpoints (st_writer.h), converted to bf16 at load,
 *    against the CPU engine on the same files;
 *  - threads: concurrent calls on one model give bitwise their results alone;
 *  - a 70B-shaped model with 2 layers (lib/random_model.h, built on both
 *    devices) at 512 and 4096 tokens against the CPU engine's fp32: cosine of
 *    each final hidden state >= 0.999 in bf16 and >= 0.99 in FP8, bf16 scores
 *    within 2e-2 of the fp32 scores' RMS (RM_CUDA_REAL_SHAPE=0 skips it).
 * GPU ordinal: RM_GPU (default 0).
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "cpu_ops.h"
#include "cuda_module.h"
#include "engine.h"
#include "random_model.h"
#include "st_writer.h"
#include "reference_rows.h"
#include "test.h"
#include "weights.h"

#define TOL_BF16 3e-2
#define TOL_FP8 0.15
#define ORDER_GAP 0.25
#define MAX_NAMES 32

static const rm_cuda_module *M;
static const rm_engine_ops *E;
static int gpu;
static uint64_t rng;

static uint64_t next_random(void) {
    rng += 0x9e3779b97f4a7c15ULL;
    return rm_random_mix(rng);
}

/* ---------------------------------------------------------------- the engine's kernels */

static uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float random_float(void) {   /* signs, magnitudes from 2^-30 to 2^30, some exact zeros */
    uint64_t r = next_random();
    if ((r & 63) == 0) return 0.0f;
    float m = 1.0f + (float)((r >> 8) & 0xffffff) / 16777216.0f;
    return ldexpf(r & 1 ? -m : m, (int)((r >> 40) % 61) - 30);
}

static void extra_kernels(void) {
    const size_t shapes[][2] = {{1, 1}, {3, 17}, {37, 129}, {128, 4096}, {5, 100003}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        size_t rows = shapes[si][0], cols = shapes[si][1], n = rows * cols;
        float *f32 = malloc(n * 4), *x = malloc(n * 4), scale_gpu = -1, scale_cpu = -2;
        uint16_t *h16 = malloc(n * 2), *got = malloc(n * 2), *bf = malloc(n * 2);
        uint8_t *q_gpu = malloc(n), *q_cpu = malloc(n);
        rm_err err = {0};
        for (size_t i = 0; i < n; i++) {
            f32[i] = random_float();
            uint16_t h;
            do h = (uint16_t)next_random(); while ((h & 0x7c00) == 0x7c00 && (h & 0x3ff));   /* no NaN */
            h16[i] = h;
            bf[i] = bf16_rne(random_float() * (si == 2 && i % 7 == 0 ? 0 : 1));
        }
        size_t bad = 0;
        CHECK(M->run_kernel(gpu, RM_CUDA_KERNEL_F32_TO_BF16, f32, rows, cols, got, NULL, &err) == RM_OK, "%s", err.msg);
        for (size_t i = 0; i < n; i++) bad += got[i] != bf16_rne(f32[i]);
        CHECK(bad == 0, "fp32 -> bf16 %zux%zu: %zu values differ from round-to-nearest-even", rows, cols, bad);
        CHECK(M->run_kernel(gpu, RM_CUDA_KERNEL_F16_TO_BF16, h16, rows, cols, got, NULL, &err) == RM_OK, "%s", err.msg);
        bad = 0;
        for (size_t i = 0; i < n; i++) bad += got[i] != bf16_rne(st_f16_bits_to_f32(h16[i]));
        CHECK(bad == 0, "fp16 -> bf16 %zux%zu: %zu values differ", rows, cols, bad);
        /* Per-tensor FP8: the CPU quantiser over the tensor taken as one row. */
        for (size_t i = 0; i < n; i++) x[i] = rm_bf16_to_f32(bf[i]);
        rm_cpu_quantize_fp8_rows(x, 1, n, q_cpu, &scale_cpu, 1);
        CHECK(M->run_kernel(gpu, RM_CUDA_KERNEL_FP8_TENSOR, bf, rows, cols, q_gpu, &scale_gpu, &err) == RM_OK, "%s",
              err.msg);
        bad = 0;
        for (size_t i = 0; i < n; i++) bad += q_gpu[i] != q_cpu[i];
        CHECK(bad == 0 && memcmp(&scale_gpu, &scale_cpu, 4) == 0,
              "per-tensor FP8 %zux%zu: %zu bytes differ, scale %g vs %g", rows, cols, bad, scale_gpu, scale_cpu);
        free(f32), free(x), free(h16), free(got), free(bf), free(q_gpu), free(q_cpu);
    }
    /* An all-zero tensor: scale 1, zeros. */
    uint16_t z[64] = {0};
    uint8_t q[64];
    float s = 0;
    rm_err err = {0};
    memset(q, 0x55, sizeof q);
    CHECK(M->run_kernel(gpu, RM_CUDA_KERNEL_FP8_TENSOR, z, 4, 16, q, &s, &err) == RM_OK, "%s", err.msg);
    int zeros = 1;
    for (int i = 0; i < 64; i++) zeros &= q[i] == 0;
    CHECK(s == 1.0f && zeros, "an all-zero tensor quantises to zeros with scale 1 (scale %g)", s);
}

/* ---------------------------------------------------------------- fixtures */

typedef struct loaded {
    rm_config cfg;
    rm_weights *w;
    rm_model_weights mw;
} loaded;

static int load_weights(loaded *m, const char *dir) {
    memset(m, 0, sizeof *m);
    rm_err err = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rm_config_load(&m->cfg, path, &err) || rm_weights_open(&m->w, dir, &err) ||
        rm_model_weights_bind(&m->mw, m->w, &m->cfg, &err)) {
        fprintf(stderr, "%s: %s\n", dir, err.msg);
        return 0;
    }
    return 1;
}

static void unload(loaded *m) {
    rm_model_weights_free(&m->mw);
    if (m->w) rm_weights_close(m->w);
    rm_config_free(&m->cfg);
}

static rm_engine *create(const rm_engine_ops *ops, loaded *m, rm_dtype dt, size_t max_bytes) {
    rm_engine *e = NULL;
    rm_err err = {0};
    rm_engine_opts o = {.n_threads = 0, .dtype = dt, .gpu = gpu, .max_device_bytes = max_bytes};
    if (ops->create(&e, &m->cfg, &m->mw, &o, &err) != RM_OK) fprintf(stderr, "create: %s\n", err.msg);
    return e;
}

/* The values a reference row checks (names in order) and its expected values. */
typedef struct row_check {
    int64_t rows[MAX_NAMES];
    double want[MAX_NAMES];
    size_t n;
    int principle;              /* one value: rows[0] - rows[1] */
} row_check;

static void row_checks(const loaded *m, json_t *o, int principle, row_check *c) {
    memset(c, 0, sizeof *c);
    c->principle = principle;
    if (principle) {
        c->rows[0] = 9642, c->rows[1] = 2822, c->n = 1;
        c->want[0] = json_number_value(json_object_get(o, "reward_fp32"));
    } else if (m->cfg.is_causal_lm) {
        json_t *s = json_object_get(o, "scores_fp32"), *pi = json_object_get(o, "probe_ids"),
               *pv = json_object_get(o, "probe_logits_fp32");
        for (size_t i = 0; i < json_array_size(s) && c->n < MAX_NAMES; i++, c->n++)
            c->rows[c->n] = (int64_t)i, c->want[c->n] = json_number_value(json_array_get(s, i));
        for (size_t i = 0; i < json_array_size(pi) && c->n < MAX_NAMES; i++, c->n++)
            c->rows[c->n] = json_integer_value(json_array_get(pi, i)),
            c->want[c->n] = json_number_value(json_array_get(pv, i));
    } else {
        json_t *s = json_object_get(o, "scores_fp32");
        for (size_t i = 0; i < json_array_size(s) && c->n < MAX_NAMES; i++, c->n++)
            c->rows[c->n] = (int64_t)i, c->want[c->n] = json_number_value(json_array_get(s, i));
    }
}

/* The head values of one hidden state. */
static int head_values(rm_engine *e, const loaded *m, const row_check *c, const float *hidden, double *got) {
    float v[MAX_NAMES + 1];
    rm_err err = {0};
    const rm_tensor *t = m->cfg.is_causal_lm ? m->mw.lm_head : m->mw.score;
    size_t n = c->principle ? 2 : c->n;
    if (E->head_rows(e, t, c->rows, n, hidden, v, &err) != RM_OK) {
        fprintf(stderr, "head_rows: %s\n", err.msg);
        return 0;
    }
    if (c->principle) got[0] = (double)v[0] - (double)v[1];
    else
        for (size_t i = 0; i < n; i++) got[i] = v[i];
    return 1;
}

typedef enum mode { ONE_AT_A_TIME, PACKED_SHARED, SPLIT_PASSES } mode;

/* Every row of a reference file on the CUDA engine; returns the rows checked. */
static void fixture_file(const char *model, const char *ref, int principle, rm_dtype dt, mode how, int fast_accum,
                         const char *label) {
    char dir[4096], rpath[4096];
    snprintf(dir, sizeof dir, "%s", fixture(model));
    snprintf(rpath, sizeof rpath, "%s", fixture(ref));
    loaded m;
    if (!load_weights(&m, dir)) {
        CHECK(0, "cannot load %s", dir);
        unload(&m);
        return;
    }
    ref_row *rows;
    size_t n = read_jsonl(rpath, &rows);
    CHECK(n > 0, "%s has no rows", rpath);
    size_t max_bytes = 0;
    rm_engine *e = create(E, &m, dt, 0);
    if (e && how == SPLIT_PASSES) {
        /* An arena of about 300 tokens: the file's rows take several passes. */
        rm_engine_memory mem;
        E->memory(e, &mem);
        E->destroy(e);
        size_t per_token = mem.activations / mem.tokens_per_pass + 1;
        max_bytes = mem.weights + mem.workspace + 300 * per_token;
        e = create(E, &m, dt, max_bytes);
        if (e) {
            E->memory(e, &mem);
            size_t total = 0;
            for (size_t r = 0; r < n; r++) total += rows[r].n;
            CHECK(mem.tokens_per_pass < total, "%s: the small arena holds %zu tokens, the file %zu", label,
                  mem.tokens_per_pass, total);
        }
    }
    CHECK(e != NULL, "%s: CUDA engine for %s", label, model);
    if (!e) {
        free_rows(rows, n);
        unload(&m);
        return;
    }
    rm_err err = {0};
    if (fast_accum) CHECK(M->set_option(e, RM_CUDA_OPTION_FP8_FAST_ACCUM, 1, &err) == RM_OK, "%s", err.msg);
    double tol = dt == RM_DTYPE_FP8 ? TOL_FP8 : TOL_BF16, worst = 0;
    size_t H = (size_t)m.cfg.hidden, passed = 0;
    float *hidden = malloc(n * H * sizeof *hidden);
    int ok_forward = 1;
    if (how == ONE_AT_A_TIME) {
        for (size_t r = 0; r < n && ok_forward; r++) {
            const int32_t *t[1] = {rows[r].ids};
            size_t len = rows[r].n;
            rm_batch b = {1, t, &len, NULL, NULL};
            ok_forward = E->forward(e, &b, hidden + r * H, &err) == RM_OK;
        }
    } else {
        batch_owner bo;
        make_batch(&bo, rows, n, 1, 0);
        ok_forward = E->forward(e, &bo.b, hidden, &err) == RM_OK;
        free_batch(&bo);
    }
    CHECK(ok_forward, "%s: forward: %s", label, err.msg);
    double (*got)[MAX_NAMES] = calloc(n, sizeof *got), (*want)[MAX_NAMES] = calloc(n, sizeof *want);
    size_t n_names = 0;
    for (size_t r = 0; r < n && ok_forward; r++) {
        row_check c;
        row_checks(&m, rows[r].obj, principle, &c);
        n_names = c.n;
        int ok = head_values(e, &m, &c, hidden + r * H, got[r]);
        for (size_t i = 0; i < c.n; i++) {
            want[r][i] = c.want[i];
            double d = fabs(got[r][i] - c.want[i]);
            if (!(d <= worst)) worst = isfinite(d) ? d : INFINITY;
            ok &= d <= tol;
        }
        CHECK(ok, "%s: %s line %zu (%zu tokens) farther than %g from transformers fp32", label, ref, r + 1, rows[r].n,
              tol);
        passed += ok;
    }
    size_t pairs = 0, misordered = 0;
    if (dt == RM_DTYPE_FP8)   /* the ordering rule */
        for (size_t i = 0; i < n_names; i++)
            for (size_t a = 0; a < n; a++)
                for (size_t b = a + 1; b < n; b++)
                    if (fabs(want[a][i] - want[b][i]) > ORDER_GAP) {
                        pairs++;
                        misordered += (want[a][i] > want[b][i]) != (got[a][i] > got[b][i]);
                    }
    CHECK(misordered == 0, "%s: %s: %zu of %zu pairs more than %g apart in fp32 change order", label, ref, misordered,
          pairs, ORDER_GAP);
    fprintf(stderr, "%-28s %-42s %zu/%zu rows within %g, largest difference %.4f%s\n", label, ref, passed, n, tol,
            worst, dt == RM_DTYPE_FP8 ? "" : "");
    if (dt == RM_DTYPE_FP8) fprintf(stderr, "%-28s   ordering: %zu pairs > %g apart, %zu swapped\n", "", pairs, ORDER_GAP,
                                    misordered);
    free(got), free(want), free(hidden);
    E->destroy(e);
    free_rows(rows, n);
    unload(&m);
}

static const struct {
    const char *model, *ref;
    int principle;
} FIXTURES[] = {
    {"models/tiny-llama3-seqcls", "reference/tiny-llama3-seqcls.reference.jsonl", 0},
    {"models/tiny-llama3-causal", "reference/tiny-llama3-causal.reference.jsonl", 0},
    {"models/tiny-llama3-causal", "reference/tiny-llama3-causal.principle.reference.jsonl", 1},
    {"models/tiny-qwen2-seqcls", "reference/tiny-qwen2-seqcls.reference.jsonl", 0},
    {"models/tiny-qwen3-seqcls", "reference/tiny-qwen3-seqcls.reference.jsonl", 0},
};

static void fixtures(void) {
    for (size_t i = 0; i < sizeof FIXTURES / sizeof *FIXTURES; i++) {
        fixture_file(FIXTURES[i].model, FIXTURES[i].ref, FIXTURES[i].principle, RM_DTYPE_BF16, ONE_AT_A_TIME, 0, "bf16");
        fixture_file(FIXTURES[i].model, FIXTURES[i].ref, FIXTURES[i].principle, RM_DTYPE_BF16, PACKED_SHARED, 0,
                     "bf16 packed+shared");
        fixture_file(FIXTURES[i].model, FIXTURES[i].ref, FIXTURES[i].principle, RM_DTYPE_FP8, ONE_AT_A_TIME, 0, "fp8");
    }
    fixture_file(FIXTURES[1].model, FIXTURES[1].ref, 0, RM_DTYPE_BF16, SPLIT_PASSES, 0, "bf16 split into passes");
    fixture_file(FIXTURES[3].model, FIXTURES[3].ref, 0, RM_DTYPE_FP8, PACKED_SHARED, 0, "fp8 packed+shared");
    fixture_file(FIXTURES[0].model, FIXTURES[0].ref, 0, RM_DTYPE_FP8, ONE_AT_A_TIME, 1, "fp8 fast accumulation");
    setenv("NIMREWARD_FP8_SCALING", "tensor", 1);
    fixture_file(FIXTURES[0].model, FIXTURES[0].ref, 0, RM_DTYPE_FP8, ONE_AT_A_TIME, 0, "fp8 per-tensor scales");
    fixture_file(FIXTURES[4].model, FIXTURES[4].ref, 0, RM_DTYPE_FP8, ONE_AT_A_TIME, 0, "fp8 per-tensor scales");
    unsetenv("NIMREWARD_FP8_SCALING");
}

/* ---------------------------------------------------------------- the public API */

static void public_api(void) {
    const char *dir = fixture("models/tiny-llama3-seqcls");
    rm_params p;
    rm_params_init(&p);
    p.device = RM_DEVICE_CUDA;
    p.gpu = gpu;
    rm_model *cuda = NULL, *cpu = NULL;
    char msg[1024];
    rm_status st = rm_load(dir, &p, &cuda, msg, sizeof msg);
    CHECK(st == RM_OK, "rm_load on CUDA: %s", msg);
    rm_params pc;
    rm_params_init(&pc);
    pc.device = RM_DEVICE_CPU;
    CHECK(rm_load(dir, &pc, &cpu, msg, sizeof msg) == RM_OK, "rm_load on the CPU: %s", msg);
    if (cuda && cpu) {
        CHECK(rm_model_device(cuda) == RM_DEVICE_CUDA && rm_model_dtype(cuda) == RM_DTYPE_BF16,
              "device cuda, dtype auto -> bf16 (got %d, %d)", rm_model_device(cuda), rm_model_dtype(cuda));
        rm_scores *a = NULL, *b = NULL;
        CHECK(rm_score(cuda, "What is the capital of France?", "Paris.", &a) == RM_OK, "rm_score: %s",
              rm_errmsg(cuda));
        CHECK(rm_score(cpu, "What is the capital of France?", "Paris.", &b) == RM_OK, "rm_score cpu");
        if (a && b) {
            double worst = 0;
            for (size_t i = 0; i < a->n_scores; i++)
                if (fabs(a->values[i] - b->values[i]) > worst) worst = fabs(a->values[i] - b->values[i]);
            CHECK(a->n_scores == b->n_scores && worst <= TOL_BF16, "rm_score on CUDA vs the CPU: %g", worst);
        }
        rm_scores_free(a), rm_scores_free(b);
        rm_memory mem = {.struct_size = sizeof mem};
        CHECK(rm_model_memory(cuda, &mem) == RM_OK, "rm_model_memory");
        CHECK(mem.weight_bytes > 0 && mem.activation_bytes > 0 && mem.workspace_bytes > 0 &&
                  mem.tokens_per_pass >= 256 && mem.weight_bytes + mem.activation_bytes + mem.workspace_bytes <=
                  mem.budget_bytes, "memory report: weights %llu, activations %llu, workspace %llu, budget %llu, "
              "%llu tokens per pass", (unsigned long long)mem.weight_bytes, (unsigned long long)mem.activation_bytes,
              (unsigned long long)mem.workspace_bytes, (unsigned long long)mem.budget_bytes,
              (unsigned long long)mem.tokens_per_pass);
        fprintf(stderr, "memory of %s on CUDA: weights %.1f MiB, activations %.1f MiB, workspace %.1f MiB, %llu tokens "
                "per pass\n", dir, mem.weight_bytes / 1048576.0, mem.activation_bytes / 1048576.0,
                mem.workspace_bytes / 1048576.0, (unsigned long long)mem.tokens_per_pass);
        rm_memory small = {.struct_size = offsetof(rm_memory, activation_bytes)};
        CHECK(rm_model_memory(cuda, &small) == RM_OK && small.weight_bytes == mem.weight_bytes &&
              small.struct_size == offsetof(rm_memory, activation_bytes), "a smaller rm_memory gets its fields only");
        rm_memory none = {.struct_size = sizeof none};
        CHECK(rm_model_memory(cpu, &none) == RM_OK && none.weight_bytes == 0 && none.budget_bytes == 0,
              "a CPU model holds no device memory");
    }
    rm_free(cuda);
    rm_free(cpu);
    p.dtype = RM_DTYPE_FP32;
    st = rm_load(dir, &p, &cuda, msg, sizeof msg);
    CHECK(st == RM_ERR_UNSUPPORTED && strstr(msg, "fp32"), "fp32 on CUDA is refused (%d: %s)", st, msg);
    if (!st) rm_free(cuda);
    p.dtype = RM_DTYPE_BF16;
    p.max_device_bytes = (size_t)1 << 20;
    st = rm_load(dir, &p, &cuda, msg, sizeof msg);
    CHECK(st == RM_ERR_NOMEM && strstr(msg, "needs") && strstr(msg, "allowed") && strstr(msg, "max_device_bytes"),
          "out of memory at load says needed and allowed (%d: %s)", st, msg);
    if (!st) rm_free(cuda);
    p.max_device_bytes = 0;
    p.device = RM_DEVICE_AUTO;
    st = rm_load(dir, &p, &cuda, msg, sizeof msg);
    CHECK(st == RM_OK && rm_model_device(cuda) == RM_DEVICE_CUDA, "device auto uses the GPU (%d: %s)", st, msg);
    if (!st) rm_free(cuda);
    p.gpu = 999;
    p.device = RM_DEVICE_CUDA;
    st = rm_load(dir, &p, &cuda, msg, sizeof msg);
    CHECK(st == RM_ERR_DEVICE && strstr(msg, "GPU 999"), "a GPU that is not there is named (%d: %s)", st, msg);
    if (!st) rm_free(cuda);
}

/* ---------------------------------------------------------------- fp32 / fp16 checkpoints */

static void converted_checkpoint(const char *arch, const char *dtype) {
    char dir[] = "/tmp/rm_cuda_ckpt_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    st_spec s = st_spec_default(arch);
    s.dtype = dtype;
    s.hidden = 64, s.n_heads = 4, s.n_kv_heads = 2, s.ffn = 96, s.vocab = 512, s.n_layers = 2;
    s.attention_bias = strstr(arch, "Llama") != NULL;   /* o_proj bias too */
    s.mlp_bias = strstr(arch, "Llama") != NULL;
    s.rope_llama3 = strstr(arch, "Llama") != NULL;
    CHECK(st_write_model(dir, &s) == 0, "write %s %s", arch, dtype);
    loaded m;
    if (load_weights(&m, dir)) {
        rm_engine *g = create(E, &m, RM_DTYPE_BF16, 0), *c = create(&rm_engine_cpu, &m, RM_DTYPE_FP32, 0);
        CHECK(g && c, "%s %s: engines", arch, dtype);
        size_t H = (size_t)m.cfg.hidden, L = 37;
        int32_t toks[37];
        for (size_t i = 0; i < L; i++) toks[i] = (int32_t)(next_random() % (uint64_t)s.vocab);
        const int32_t *t[1] = {toks};
        rm_batch b = {1, t, &L, NULL, NULL};
        float *hg = malloc(H * 4), *hc = malloc(H * 4), vg[8], vc[8];
        int64_t rows[2] = {0, 1};
        rm_err err = {0};
        if (g && c && E->forward(g, &b, hg, &err) == RM_OK && rm_engine_cpu.forward(c, &b, hc, &err) == RM_OK &&
            E->head_rows(g, m.mw.score, rows, 2, hg, vg, &err) == RM_OK &&
            rm_engine_cpu.head_rows(c, m.mw.score, rows, 2, hc, vc, &err) == RM_OK) {
            double d = fmax(fabs(vg[0] - vc[0]), fabs(vg[1] - vc[1]));
            CHECK(d <= TOL_BF16, "%s %s checkpoint: CUDA bf16 %g %g vs CPU fp32 %g %g", arch, dtype, vg[0], vg[1], vc[0],
                  vc[1]);
            fprintf(stderr, "%s %s checkpoint converted to bf16 at load: largest difference from the CPU %.4f\n", arch,
                    dtype, d);
        } else {
            CHECK(0, "%s %s: %s", arch, dtype, err.msg);
        }
        free(hg), free(hc);
        if (g) E->destroy(g);
        if (c) rm_engine_cpu.destroy(c);
    }
    unload(&m);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "rm %s", dir);
}

/* ---------------------------------------------------------------- threads */

typedef struct worker {
    rm_engine *e;
    batch_owner *batches;
    float **alone;
    size_t n_batches, H;
    int id, rounds, mismatches, failures;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    for (int r = 0; r < w->rounds; r++) {
        size_t k = (size_t)(w->id + r) % w->n_batches;
        size_t n = w->batches[k].b.n_seqs * w->H;
        float *h = malloc(n * sizeof *h);
        rm_err err = {0};
        if (E->forward(w->e, &w->batches[k].b, h, &err) != RM_OK) w->failures++;
        else if (memcmp(h, w->alone[k], n * sizeof *h)) w->mismatches++;
        free(h);
    }
    return NULL;
}

static void threads(void) {
    loaded m;
    if (!load_weights(&m, fixture("models/tiny-llama3-causal"))) {
        CHECK(0, "load");
        return;
    }
    ref_row *rows;
    size_t n = read_jsonl(fixture("reference/tiny-llama3-causal.principle.reference.jsonl"), &rows);
    rm_engine *e = create(E, &m, RM_DTYPE_BF16, 0);
    CHECK(e && n >= 8, "engine and rows");
    if (e && n >= 8) {
        enum { NB = 4, NT = 6 };
        batch_owner bo[NB];
        float *alone[NB];
        size_t H = (size_t)m.cfg.hidden;
        for (int k = 0; k < NB; k++) {
            size_t first = (size_t)k * (n / NB), count = n / NB;
            make_batch(&bo[k], rows + first, count, k % 2, 0);
            alone[k] = malloc(count * H * sizeof(float));
            rm_err err = {0};
            CHECK(E->forward(e, &bo[k].b, alone[k], &err) == RM_OK, "alone: %s", err.msg);
        }
        worker w[NT];
        pthread_t th[NT];
        for (int t = 0; t < NT; t++) {
            w[t] = (worker){e, bo, alone, NB, H, t, 12, 0, 0};
            pthread_create(&th[t], NULL, run_worker, &w[t]);
        }
        int mism = 0, fails = 0;
        for (int t = 0; t < NT; t++) {
            pthread_join(th[t], NULL);
            mism += w[t].mismatches;
            fails += w[t].failures;
        }
        CHECK(fails == 0 && mism == 0, "%d threads x 12 calls on one CUDA engine: %d failed, %d not bitwise as alone",
              NT, fails, mism);
        for (int k = 0; k < NB; k++) free_batch(&bo[k]), free(alone[k]);
    }
    if (e) E->destroy(e);
    free_rows(rows, n);
    unload(&m);
}

/* ---------------------------------------------------------------- the real shape */

#define REAL_LABELS 8

typedef struct host_model {
    rm_config cfg;
    rm_model_weights mw;
    rm_tensor *tensors;
    size_t n_tensors;
    uint16_t **data;
} host_model;

static rm_tensor *host_tensor(host_model *h, uint64_t seed, uint64_t id, int64_t rows, int64_t cols, int norm) {
    rm_tensor *t = &h->tensors[h->n_tensors];
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    uint16_t *d = malloc(n * 2);
    h->data[h->n_tensors++] = d;
    float scale = norm ? 0 : id == RM_RND_EMBED ? 1.0f : rm_rnd_matrix_scale(cols);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        d[i] = rm_rnd_bf16(norm ? rm_rnd_norm_value(seed, id, i) : scale * rm_random_value(seed, id, i));
    *t = (rm_tensor){.name = "random", .dtype = RM_DT_BF16, .n_dims = cols ? 2 : 1, .shape = {rows, cols},
                     .data = d, .n_bytes = n * 2};
    return t;
}

static void host_build(host_model *h, const rm_config *cfg, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->cfg = *cfg;
    int64_t L = cfg->n_layers, H = cfg->hidden, QD = cfg->n_heads * cfg->head_dim, KD = cfg->n_kv_heads * cfg->head_dim,
            F = cfg->ffn;
    h->tensors = calloc((size_t)(3 + 9 * L), sizeof *h->tensors);
    h->data = calloc((size_t)(3 + 9 * L), sizeof *h->data);
    h->mw.layers = calloc((size_t)L, sizeof *h->mw.layers);
    h->mw.n_layers = L;
    h->mw.embed = host_tensor(h, seed, RM_RND_EMBED, cfg->vocab, H, 0);
    for (int64_t l = 0; l < L; l++) {
        rm_layer_weights *lw = &h->mw.layers[l];
        lw->attn_norm = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_ATTN_NORM), H, 0, 1);
        lw->wq = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_WQ), QD, H, 0);
        lw->wk = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_WK), KD, H, 0);
        lw->wv = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_WV), KD, H, 0);
        lw->wo = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_WO), H, QD, 0);
        lw->mlp_norm = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_MLP_NORM), H, 0, 1);
        lw->w_gate = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_WGATE), F, H, 0);
        lw->w_up = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_WUP), F, H, 0);
        lw->w_down = host_tensor(h, seed, rm_rnd_layer_tensor(l, RM_RND_WDOWN), H, F, 0);
    }
    h->mw.final_norm = host_tensor(h, seed, RM_RND_FINAL_NORM, H, 0, 1);
    h->mw.score = host_tensor(h, seed, RM_RND_SCORE, REAL_LABELS, H, 0);
}

static void host_free(host_model *h) {
    for (size_t i = 0; i < h->n_tensors; i++) free(h->data[i]);
    free(h->data), free(h->tensors), free(h->mw.layers);
}

static rm_config real_shape(int64_t layers) {
    rm_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "LlamaForSequenceClassification");
    c.arch = RM_ARCH_LLAMA_SEQCLS;
    c.hidden = 8192, c.n_layers = layers, c.n_heads = 64, c.n_kv_heads = 8, c.head_dim = 128, c.ffn = 28672;
    c.vocab = 128256, c.max_pos = 131072, c.rms_eps = 1e-5, c.rope_theta = 500000.0, c.rope_type = RM_ROPE_LLAMA3;
    c.rope_factor = 8, c.rope_low_freq_factor = 1, c.rope_high_freq_factor = 4, c.rope_orig_max_pos = 8192;
    c.n_labels = REAL_LABELS, c.pad_token_id = -1;
    snprintf(c.dtype, sizeof c.dtype, "bfloat16");
    return c;
}

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static void real_shape_model(uint64_t seed) {
    rm_config cfg = real_shape(2);
    host_model h;
    host_build(&h, &cfg, seed);
    rm_engine *cpu = NULL;
    rm_err err = {0};
    CHECK(rm_engine_cpu_create_ex(&cpu, &h.cfg, &h.mw, 0, SIZE_MAX, &err) == RM_OK, "CPU engine: %s", err.msg);
    /* Batches: 1 x 512; then 4096 tokens as 2048 + 1024 + 1024, the last sharing 512 with the second. */
    enum { N_TOK = 4096 };
    int32_t *toks = malloc(N_TOK * sizeof *toks);
    for (size_t i = 0; i < N_TOK; i++) toks[i] = (int32_t)(next_random() % (uint64_t)cfg.vocab);
    int32_t *third = malloc(1024 * sizeof *third);
    memcpy(third, toks + 2048, 512 * sizeof *third);
    memcpy(third + 512, toks + 3072, 512 * sizeof *third);
    const int32_t *t1[1] = {toks}, *t2[3] = {toks, toks + 2048, third};
    size_t l1[1] = {512}, l2[3] = {2048, 1024, 1024}, sh2[3] = {0, 0, 512};
    int32_t par2[3] = {-1, -1, 1};
    rm_batch batches[2] = {{1, t1, l1, NULL, NULL}, {3, t2, l2, par2, sh2}};
    const char *names[2] = {"512 tokens", "4096 tokens (2048 + 1024 + 1024 sharing 512)"};
    size_t H = (size_t)cfg.hidden;
    float *ref[2] = {malloc(1 * H * 4), malloc(3 * H * 4)}, *got = malloc(3 * H * 4);
    double ref_scores[2][3][REAL_LABELS];
    int64_t label_rows[REAL_LABELS];
    for (int i = 0; i < REAL_LABELS; i++) label_rows[i] = i;
    for (int k = 0; k < 2 && cpu; k++) {
        double t0 = wall_seconds();
        CHECK(rm_engine_cpu.forward(cpu, &batches[k], ref[k], &err) == RM_OK, "CPU forward: %s", err.msg);
        for (size_t s = 0; s < batches[k].n_seqs; s++) {
            float v[REAL_LABELS];
            rm_engine_cpu.head_rows(cpu, h.mw.score, label_rows, REAL_LABELS, ref[k] + s * H, v, &err);
            for (int i = 0; i < REAL_LABELS; i++) ref_scores[k][s][i] = v[i];
        }
        fprintf(stderr, "real shape: CPU fp32 reference for %s in %.1f s\n", names[k], wall_seconds() - t0);
    }
    if (cpu) rm_engine_cpu.destroy(cpu);
    rm_dtype dts[2] = {RM_DTYPE_BF16, RM_DTYPE_FP8};
    for (int d = 0; d < 2; d++) {
        rm_engine *e = NULL;
        rm_engine_opts o = {.dtype = dts[d], .gpu = gpu};
        CHECK(M->create_random(&e, &cfg, seed, &o, &err) == RM_OK, "create_random %s: %s", d ? "fp8" : "bf16", err.msg);
        if (!e) continue;
        double min_cos = d ? 0.99 : 0.999;
        for (int k = 0; k < 2; k++) {
            if (E->forward(e, &batches[k], got, &err) != RM_OK) {
                CHECK(0, "GPU forward: %s", err.msg);
                continue;
            }
            double sq = 0, worst = 0, worst_cos = 1;
            size_t cnt = 0;
            for (size_t s = 0; s < batches[k].n_seqs; s++) {
                double c = cosine(got + s * H, ref[k] + s * H, H);
                if (!(c >= worst_cos)) worst_cos = c;
                float v[REAL_LABELS];
                E->head_rows(e, h.mw.score, label_rows, REAL_LABELS, got + s * H, v, &err);
                for (int i = 0; i < REAL_LABELS; i++) {
                    sq += ref_scores[k][s][i] * ref_scores[k][s][i], cnt++;
                    double diff = fabs(v[i] - ref_scores[k][s][i]);
                    if (!(diff <= worst)) worst = isfinite(diff) ? diff : INFINITY;
                }
            }
            double rms = sqrt(sq / (double)cnt);
            CHECK(worst_cos >= min_cos, "real shape %s, %s: cosine %.6f < %g", d ? "fp8" : "bf16", names[k], worst_cos,
                  min_cos);
            if (!d) CHECK(worst <= 2e-2 * rms, "real shape bf16, %s: scores differ by %.4g, more than 2e-2 x RMS %.4g",
                          names[k], worst, rms);
            fprintf(stderr, "real shape %-4s %-46s lowest cosine %.6f, largest score difference %.4g (%.2f%% of the "
                    "fp32 scores' RMS %.4g)\n", d ? "fp8" : "bf16", names[k], worst_cos, worst, 100 * worst / rms, rms);
        }
        E->destroy(e);
    }
    free(ref[0]), free(ref[1]), free(got), free(toks), free(third);
    host_free(&h);
}

int main(void) {
    unsigned long long seed = test_seed();
    rng = seed;
    rm_err err = {0};
    const char *g = getenv("RM_GPU");
    gpu = g && *g ? atoi(g) : 0;
    if (rm_cuda_module_get(&M, NULL, &err) != RM_OK) {
        char why[1200];
        snprintf(why, sizeof why, "%.300s", err.msg);
        return test_skip("test_cuda_engine", 1, why);
    }
    rm_cuda_device_info info;
    if (M->probe(gpu, &info, &err) != RM_OK) {
        char why[1200];
        snprintf(why, sizeof why, "no usable GPU: %.300s", err.msg);
        return test_skip("test_cuda_engine", 1, why);
    }
    E = M->ops;
    fprintf(stderr, "GPU %d: %s, compute capability %d.%d, %d SMs, %.1f GiB (%.1f free), driver CUDA %d.%d, runtime "
            "%d.%d, cuBLASLt %d, module built for %s\n", gpu, info.name, info.cc_major, info.cc_minor, info.n_sms,
            info.total_bytes / 1073741824.0, info.free_bytes / 1073741824.0, info.driver_version / 1000,
            info.driver_version % 1000 / 10, info.runtime_version / 1000, info.runtime_version % 1000 / 10,
            info.cublaslt_version, M->arch);
    extra_kernels();
    fixtures();
    public_api();
    converted_checkpoint("LlamaForSequenceClassification", "F32");
    converted_checkpoint("Qwen2ForSequenceClassification", "F16");
    converted_checkpoint("Qwen3ForSequenceClassification", "F32");
    threads();
    const char *real = getenv("RM_CUDA_REAL_SHAPE");
    if (!(real && !strcmp(real, "0"))) real_shape_model(seed);
    return test_summary("test_cuda_engine");
}
