/*
 * test_engine.c - the CPU engine against transformers (every row of the
 * reference files), against a plain double-precision forward pass written
 * here (checkpoints of every dtype and architecture option made with
 * st_writer.h), and against itself: packed vs one at a time, 1 vs 2
 * threads, prefix sharing vs none, resident vs per-pass weight conversion,
 * concurrent callers, allocation failures, bad arguments.
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "config.h"
#include "cpu/gemm.h"
#include "cpu_ops.h"
#include "engine.h"
#include "st_writer.h"
#include "reference_rows.h"
#include "test.h"
#include "weights.h"

#define TOL_ABS 1e-4    /* fixtures/README.md: CPU engine in fp32 vs transformers fp32 */
#define TOL_REL 1e-4
#define BF16_TOL 3e-2   /* fixtures/README.md: bf16 engines vs transformers fp32 */
#define SELF_TOL 1e-5   /* the engine against itself: rounding only */

/* The tolerance reference rows are held to (fp32, or bf16 for the bf16 checks). */
static double tol_abs = TOL_ABS, tol_rel = TOL_REL;

static const rm_engine_ops *E = &rm_engine_cpu;

typedef struct loaded {
    rm_config cfg;
    rm_weights *w;
    rm_model_weights mw;
    rm_engine *e;
    int ok;
} loaded;

/* budget: SIZE_MAX = the engine's default policy (create), else create_ex;
 * opts, when not NULL, replaces both (create_opts). */
static int load_model_opts(loaded *m, const char *dir, int n_threads, size_t budget, const rm_engine_cpu_opts *opts) {
    memset(m, 0, sizeof *m);
    rm_err err = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rm_config_load(&m->cfg, path, &err) != RM_OK) {
        fprintf(stderr, "config %s: %s\n", path, err.msg);
        return 0;
    }
    if (rm_weights_open(&m->w, dir, &err) != RM_OK || rm_model_weights_bind(&m->mw, m->w, &m->cfg, &err) != RM_OK) {
        fprintf(stderr, "weights %s: %s\n", dir, err.msg);
        return 0;
    }
    rm_status st = opts ? rm_engine_cpu_create_opts(&m->e, &m->cfg, &m->mw, opts, &err)
                   : budget == SIZE_MAX ? E->create(&m->e, &m->cfg, &m->mw, &(rm_engine_opts){.n_threads = n_threads, .dtype = RM_DTYPE_FP32}, &err)
                                        : rm_engine_cpu_create_ex(&m->e, &m->cfg, &m->mw, n_threads, budget, &err);
    if (st != RM_OK) {
        fprintf(stderr, "engine %s: %s\n", dir, err.msg);
        return 0;
    }
    return m->ok = 1;
}

static int load_model(loaded *m, const char *dir, int n_threads, size_t budget) {
    return load_model_opts(m, dir, n_threads, budget, NULL);
}

static void unload(loaded *m) {
    if (m->e) E->destroy(m->e);
    rm_model_weights_free(&m->mw);
    if (m->w) rm_weights_close(m->w);
    rm_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}

static int close_to(double got, double want, double tol_abs, double tol_rel) {
    return isfinite(got) && fabs(got - want) <= tol_abs + tol_rel * fabs(want);
}

/* Largest |a - b| over n values; NaN if any value is not finite. */
static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return NAN;
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (d > m) m = d;
    }
    return m;
}

/* ---------------------------------------------------------------- reference rows */

static rm_status forward_one(rm_engine *e, const int32_t *ids, size_t n, float *hidden, rm_err *err) {
    const int32_t *toks[1] = {ids};
    size_t lens[1] = {n};
    rm_batch b = {1, toks, lens, NULL, NULL};
    return E->forward(e, &b, hidden, err);
}

/* Compares head rows `rows` at `hidden` with the doubles of JSON array `want`. */
static int compare_rows(loaded *m, const rm_tensor *t, const int64_t *rows, size_t n, const float *hidden,
                        json_t *want, const char *what, size_t line, double *worst) {
    float got[64];
    rm_err err = {0};
    if (n > 64 || json_array_size(want) != n) {
        fprintf(stderr, "%s line %zu: %zu reference values, expected %zu\n", what, line, json_array_size(want), n);
        return 0;
    }
    if (E->head_rows(m->e, t, rows, n, hidden, got, &err) != RM_OK) {
        fprintf(stderr, "%s line %zu: head_rows: %s\n", what, line, err.msg);
        return 0;
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double w = json_number_value(json_array_get(want, i)), d = fabs(got[i] - w);
        if (d > *worst || !isfinite(got[i])) *worst = isfinite(got[i]) ? d : INFINITY;
        if (!close_to(got[i], w, tol_abs, tol_rel)) {
            fprintf(stderr, "%s line %zu: value %zu (row %lld) got %.7f want %.7f\n", what, line, i, (long long)rows[i],
                    got[i], w);
            ok = 0;
        }
    }
    return ok;
}

/* Every row of one reference file: forward on `ids`, then the head rows;
 * opts NULL: the default fp32 engine. */
static void reference_file_opts(const char *model, const char *ref, int principle, const rm_engine_cpu_opts *opts,
                                const char *label) {
    char dir[4096], rpath[4096];
    snprintf(dir, sizeof dir, "%s", fixture(model));
    snprintf(rpath, sizeof rpath, "%s", fixture(ref));
    loaded m;
    if (!load_model_opts(&m, dir, 2, SIZE_MAX, opts)) {
        CHECK(0, "cannot load %s", dir);
        unload(&m);
        return;
    }
    ref_row *rows;
    size_t n = read_jsonl(rpath, &rows), passed = 0;
    CHECK(n > 0, "%s has no rows", rpath);
    double worst = 0;
    float *hidden = malloc((size_t)m.cfg.hidden * sizeof *hidden);
    for (size_t r = 0; r < n; r++) {
        rm_err err = {0};
        json_t *o = rows[r].obj;
        int ok = forward_one(m.e, rows[r].ids, rows[r].n, hidden, &err) == RM_OK;
        if (!ok) fprintf(stderr, "%s line %zu: forward: %s\n", ref, r + 1, err.msg);
        if (ok && principle) {
            int64_t yn[2] = {9642, 2822};
            json_t *want = json_pack("[OO]", json_object_get(o, "yes"), json_object_get(o, "no"));
            ok = compare_rows(&m, m.mw.lm_head, yn, 2, hidden, want, ref, r + 1, &worst);
            json_decref(want);
        } else if (ok && m.cfg.is_causal_lm) {
            int64_t ids[64];
            json_t *probe = json_object_get(o, "probe_ids");
            for (size_t i = 0; i < 8; i++) ids[i] = (int64_t)i;
            ok = compare_rows(&m, m.mw.lm_head, ids, 8, hidden, json_object_get(o, "scores_fp32"), ref, r + 1, &worst);
            size_t np = json_array_size(probe);
            for (size_t i = 0; i < np && i < 64; i++) ids[i] = json_integer_value(json_array_get(probe, i));
            ok &= np > 0 && compare_rows(&m, m.mw.lm_head, ids, np, hidden,
                                         json_object_get(o, "probe_logits_fp32"), ref, r + 1, &worst);
        } else if (ok) {
            int64_t ids[64];
            size_t nl = (size_t)m.cfg.n_labels;
            for (size_t i = 0; i < nl && i < 64; i++) ids[i] = (int64_t)i;
            ok = compare_rows(&m, m.mw.score, ids, nl, hidden, json_object_get(o, "scores_fp32"), ref, r + 1,
                              &worst);
        }
        CHECK(ok, "%s line %zu (%zu tokens) differs from transformers", ref, r + 1, rows[r].n);
        passed += ok;
    }
    fprintf(stderr, "%s%s%s: %zu/%zu rows within %.0e + %.0e rel of transformers fp32, largest difference %.3g\n", ref,
            label ? ", " : "", label ? label : "", passed, n, tol_abs, tol_rel, worst);
    free(hidden);
    free_rows(rows, n);
    unload(&m);
}

static void reference_file(const char *model, const char *ref, int principle) {
    reference_file_opts(model, ref, principle, NULL, NULL);
}

/* ---------------------------------------------------------------- batches */

static size_t unique_rows(const batch_owner *o) {
    size_t r = 0;
    for (size_t s = 0; s < o->b.n_seqs; s++) r += o->lens[s] - (o->b.shared_len ? o->shared[s] : 0);
    return r;
}

/* Packed vs one at a time, threads 1 vs 2, sharing vs none, weights in
 * place (bf16 read by the GEMM) vs a resident fp32 copy vs converted per
 * pass, on every row of a reference file. */
static void batch_checks(const char *model, const char *ref) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", fixture(model));
    ref_row *rows;
    size_t n = read_jsonl(fixture(ref), &rows);
    loaded m2, m1, ms, mr;
    int ok = load_model(&m2, dir, 2, SIZE_MAX) && load_model(&m1, dir, 1, SIZE_MAX) && load_model(&ms, dir, 2, 0) &&
             load_model(&mr, dir, 2, SIZE_MAX - 1);
    CHECK(ok && n > 1, "cannot load %s / %s", dir, ref);
    if (!ok || n < 2) goto done;
    CHECK(rm_engine_cpu_is_resident(m2.e) && !rm_engine_cpu_is_resident(ms.e) && rm_engine_cpu_is_resident(mr.e),
          "resident flags %d %d %d", rm_engine_cpu_is_resident(m2.e), rm_engine_cpu_is_resident(ms.e),
          rm_engine_cpu_is_resident(mr.e));
    size_t H = (size_t)m2.cfg.hidden, L = (size_t)m2.cfg.n_layers;
    float *single = malloc(n * H * sizeof(float)), *packed = malloc(n * H * sizeof(float)),
          *one_thread = malloc(n * H * sizeof(float)), *shared = malloc(n * H * sizeof(float)),
          *streamed = malloc(n * H * sizeof(float)), *copied = malloc(n * H * sizeof(float));
    uint64_t *lt = calloc(L, sizeof *lt);
    rm_err err = {0};
    int fwd_ok = 1;
    for (size_t s = 0; s < n; s++) fwd_ok &= forward_one(m2.e, rows[s].ids, rows[s].n, single + s * H, &err) == RM_OK;
    CHECK(fwd_ok, "%s: single forward: %s", model, err.msg);

    batch_owner plain, sharing;
    make_batch(&plain, rows, n, 0, 0);
    make_batch(&sharing, rows, n, 1, 0);

    E->counters_reset(m2.e);
    CHECK(E->forward(m2.e, &plain.b, packed, &err) == RM_OK, "%s packed: %s", model, err.msg);
    rm_engine_counters c_plain;
    E->counters(m2.e, &c_plain, lt);
    size_t total = unique_rows(&plain);
    CHECK(c_plain.forward_passes == 1 && c_plain.tokens_last_layer == n, "%s: passes %llu, last layer %llu", model,
          (unsigned long long)c_plain.forward_passes, (unsigned long long)c_plain.tokens_last_layer);
    CHECK(c_plain.tokens_computed == (L - 1) * total + n && lt[L - 1] == n && (L < 2 || lt[0] == total),
          "%s: tokens_computed %llu, layer 0 %llu, last %llu (rows %zu)", model,
          (unsigned long long)c_plain.tokens_computed, (unsigned long long)lt[0], (unsigned long long)lt[L - 1], total);
    double d = max_diff(packed, single, n * H);
    CHECK(d <= SELF_TOL, "%s: packed differs from one at a time by %g", model, d);

    CHECK(E->forward(m1.e, &plain.b, one_thread, &err) == RM_OK, "%s 1 thread: %s", model, err.msg);
    d = max_diff(one_thread, packed, n * H);
    CHECK(d <= SELF_TOL, "%s: 1 thread differs from 2 by %g", model, d);

    /* Both attention paths (BLAS for long runs of queries, the row kernel
     * otherwise), with and without shared prefixes. */
    size_t mins[2] = {0, SIZE_MAX};
    for (int k = 0; k < 2; k++) {
        rm_engine_cpu_set_attn_blas_min(m1.e, mins[k]);
        const batch_owner *bs[2] = {&plain, &sharing};
        for (int j = 0; j < 2; j++) {
            CHECK(E->forward(m1.e, &bs[j]->b, one_thread, &err) == RM_OK, "%s: %s", model, err.msg);
            d = max_diff(one_thread, packed, n * H);
            CHECK(d <= SELF_TOL, "%s: %s attention, %s: differs by %g", model, k ? "row-kernel" : "BLAS",
                  j ? "shared prefixes" : "no sharing", d);
        }
    }

    E->counters_reset(m2.e);
    CHECK(E->forward(m2.e, &sharing.b, shared, &err) == RM_OK, "%s shared: %s", model, err.msg);
    rm_engine_counters c_shared;
    E->counters(m2.e, &c_shared, lt);
    size_t shared_rows = unique_rows(&sharing);
    d = max_diff(shared, packed, n * H);
    CHECK(d <= SELF_TOL, "%s: prefix sharing differs by %g", model, d);
    CHECK(c_shared.tokens_computed == (L - 1) * shared_rows + n && lt[L - 1] == n &&
              (L < 2 || lt[0] == shared_rows) && c_shared.tokens_last_layer == n,
          "%s: shared tokens_computed %llu (rows %zu)", model, (unsigned long long)c_shared.tokens_computed,
          shared_rows);
    fprintf(stderr, "%s: %zu sequences, %zu tokens; rows computed per layer %zu without sharing, %zu with; "
            "tokens_computed %llu -> %llu\n", model, n, total, total, shared_rows,
            (unsigned long long)c_plain.tokens_computed, (unsigned long long)c_shared.tokens_computed);

    /* bf16 widened by the GEMM, from an fp32 copy, or converted per pass: the same bits. */
    E->counters_reset(ms.e);
    CHECK(E->forward(ms.e, &sharing.b, streamed, &err) == RM_OK, "%s streamed: %s", model, err.msg);
    CHECK(memcmp(streamed, shared, n * H * sizeof(float)) == 0, "%s: streamed weights differ from in place", model);
    E->counters_reset(mr.e);
    CHECK(E->forward(mr.e, &sharing.b, copied, &err) == RM_OK, "%s resident: %s", model, err.msg);
    CHECK(memcmp(copied, shared, n * H * sizeof(float)) == 0, "%s: a resident fp32 copy differs from in place", model);
    rm_engine_counters c_stream, c_copy;
    E->counters(ms.e, &c_stream, NULL);
    E->counters(mr.e, &c_copy, NULL);
    CHECK(c_stream.weight_bytes_read == c_shared.weight_bytes_read && c_stream.weight_bytes_read > 0 &&
              c_copy.weight_bytes_read > c_shared.weight_bytes_read,
          "%s: bytes read streamed %llu, in place %llu, fp32 copy %llu", model,
          (unsigned long long)c_stream.weight_bytes_read, (unsigned long long)c_shared.weight_bytes_read,
          (unsigned long long)c_copy.weight_bytes_read);

    /* A sequence equal to an earlier one shares every token, last included. */
    if (rows[0].n > 1) {
        ref_row dup[3] = {rows[0], rows[1], rows[0]};
        batch_owner full;
        make_batch(&full, dup, 3, 1, 1);
        float *out = malloc(3 * H * sizeof(float));
        CHECK(full.shared[2] == rows[0].n, "duplicate not fully shared");
        CHECK(E->forward(m2.e, &full.b, out, &err) == RM_OK, "%s full share: %s", model, err.msg);
        d = max_diff(out + 2 * H, single, H);
        CHECK(d <= SELF_TOL, "%s: fully shared sequence differs by %g", model, d);
        free(out);
        free_batch(&full);
    }
    free_batch(&plain);
    free_batch(&sharing);
    free(single);
    free(packed);
    free(one_thread);
    free(shared);
    free(streamed);
    free(copied);
    free(lt);
done:
    unload(&m2);
    unload(&m1);
    unload(&ms);
    unload(&mr);
    free_rows(rows, n);
}

/* ---------------------------------------------------------------- bf16 and the kernels */

/* dtype bf16 against the fp32 references within 3e-2: with the kernel this
 * CPU gets (AMX, AVX512_BF16, or fp32 products of the bf16 weights), and with
 * the portable reference of the bf16-activation arithmetic, so that
 * arithmetic's accuracy is checked on every machine. */
static void bf16_references(void) {
    const char *models[] = {"tiny-llama3-seqcls", "tiny-llama3-causal", "tiny-qwen2-seqcls", "tiny-qwen3-seqcls"};
    const rm_gemm_kernel *kernels[2] = {NULL, rm_gemm_kernel_at(RM_ISA_GENERIC, RM_GEMM_BF16)};
    char model[256], ref[256], label[128];
    tol_abs = BF16_TOL, tol_rel = 0;
    for (int k = 0; k < 2; k++) {
        rm_engine_cpu_opts o = {.n_threads = 2, .dtype = RM_DTYPE_BF16, .kernel = kernels[k]};
        snprintf(label, sizeof label, "bf16, %s", rm_gemm_kernel_name(kernels[k] ? kernels[k]
                                                     : rm_gemm_kernel_pick(RM_GEMM_BF16, RM_ISA_COUNT)));
        for (size_t i = 0; i < 4; i++) {
            snprintf(model, sizeof model, "models/%s", models[i]);
            snprintf(ref, sizeof ref, "reference/%s.reference.jsonl", models[i]);
            reference_file_opts(model, ref, 0, &o, label);
        }
        reference_file_opts("models/tiny-llama3-causal", "reference/tiny-llama3-causal.principle.reference.jsonl", 1,
                            &o, label);
    }
    tol_abs = TOL_ABS, tol_rel = TOL_REL;
}

/* Every fp32 kernel this CPU has gives the engine the same bits (gemm.h),
 * and a bf16 checkpoint in bf16 reads its weights in place. */
static void kernels_agree(const char *model_name, const char *ref) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", fixture(model_name));
    ref_row *rows;
    size_t n = read_jsonl(fixture(ref), &rows);
    batch_owner b;
    make_batch(&b, rows, n, 1, 0);
    loaded base;
    if (!load_model(&base, dir, 2, SIZE_MAX)) {
        CHECK(0, "cannot load %s", dir);
        free_batch(&b), free_rows(rows, n);
        return;
    }
    size_t H = (size_t)base.cfg.hidden;
    float *want = malloc(n * H * sizeof(float)), *got = malloc(n * H * sizeof(float));
    rm_err err = {0};
    CHECK(E->forward(base.e, &b.b, want, &err) == RM_OK, "%s: %s", model_name, err.msg);
    int levels = 0;
    for (int isa = RM_ISA_GENERIC; isa < RM_ISA_COUNT; isa++) {
        const rm_gemm_kernel *k = rm_gemm_kernel_at((rm_isa)isa, RM_GEMM_FP32);
        if (!k) continue;
        for (int threads = 1; threads <= 3; threads += 2) {
            loaded m;
            rm_engine_cpu_opts o = {.n_threads = threads, .dtype = RM_DTYPE_FP32, .kernel = k};
            int ok = load_model_opts(&m, dir, threads, SIZE_MAX, &o) && E->forward(m.e, &b.b, got, &err) == RM_OK;
            CHECK(ok && memcmp(got, want, n * H * sizeof(float)) == 0, "%s: fp32 kernel %s on %d threads differs",
                  model_name, rm_gemm_kernel_name(k), threads);
            unload(&m);
        }
        levels++;
    }
    fprintf(stderr, "%s: %d fp32 kernel levels agree bit for bit\n", model_name, levels);

    /* bf16: weights read in place (bytes of bf16), and where the kernel is the
     * converting one, the fp32 numbers exactly. */
    loaded m;
    rm_engine_cpu_opts o = {.n_threads = 2, .dtype = RM_DTYPE_BF16};
    if (load_model_opts(&m, dir, 2, SIZE_MAX, &o)) {
        rm_engine_counters c32, c16;
        E->counters_reset(base.e);
        CHECK(E->forward(base.e, &b.b, want, &err) == RM_OK && E->forward(m.e, &b.b, got, &err) == RM_OK,
              "%s bf16: %s", model_name, err.msg);
        E->counters(base.e, &c32, NULL);
        E->counters(m.e, &c16, NULL);
        CHECK(rm_engine_cpu_is_resident(m.e) && c16.weight_bytes_read == c32.weight_bytes_read,
              "%s: bf16 engine read %llu bytes, fp32 engine %llu", model_name,
              (unsigned long long)c16.weight_bytes_read, (unsigned long long)c32.weight_bytes_read);
        if (rm_gemm_kernel_arith(rm_gemm_kernel_pick(RM_GEMM_BF16, RM_ISA_COUNT)) == RM_GEMM_FP32)
            CHECK(memcmp(got, want, n * H * sizeof(float)) == 0, "%s: bf16 on the converting path differs from fp32",
                  model_name);
        double flops, secs, cpu_secs;
        rm_engine_cpu_gemm_stats(m.e, &flops, &secs, &cpu_secs);
        CHECK(flops > 0 && secs > 0 && cpu_secs > 0, "%s: GEMM counters %g FLOPs in %g s (%g s CPU)", model_name,
              flops, secs, cpu_secs);
    } else {
        CHECK(0, "%s: cannot load in bf16", model_name);
    }
    unload(&m);
    free(want), free(got);
    unload(&base);
    free_batch(&b);
    free_rows(rows, n);
}

/* ---------------------------------------------------------------- a plain reference in double */

static double *tensor_d(const rm_tensor *t) {
    if (!t) return NULL;
    int64_t n = rm_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    int64_t rows = t->n_dims == 2 ? t->shape[0] : 1;
    rm_tensor_rows_f32(t, 0, rows, f);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

static void rms_d(double *y, const double *x, const double *w, size_t n, double eps) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / (double)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

/* y[o] = sum_i W[o][i] x[i] + b[o] */
static void lin_d(double *y, const double *W, const double *b, const double *x, size_t out, size_t in) {
    for (size_t o = 0; o < out; o++) {
        double a = b ? b[o] : 0;
        for (size_t i = 0; i < in; i++) a += W[o * in + i] * x[i];
        y[o] = a;
    }
}

/* The whole model, every position, straight from the formulas in double. */
static void naive_forward(const rm_config *c, const rm_model_weights *mw, const int32_t *tok, size_t n,
                          double *out) {
    size_t H = (size_t)c->hidden, NH = (size_t)c->n_heads, NKV = (size_t)c->n_kv_heads, HD = (size_t)c->head_dim,
           F = (size_t)c->ffn, QD = NH * HD, KD = NKV * HD, half = HD / 2;
    double *x = calloc(n * H, sizeof *x), *h = calloc(H, sizeof *h), *q = calloc(n * QD, sizeof *q),
           *k = calloc(n * KD, sizeof *k), *v = calloc(n * KD, sizeof *v), *att = calloc(n * QD, sizeof *att),
           *o = calloc(H, sizeof *o), *g = calloc(F, sizeof *g), *u = calloc(F, sizeof *u),
           *sc = calloc(n, sizeof *sc), *inv = calloc(half, sizeof *inv);
    for (size_t i = 0; i < half; i++) {
        inv[i] = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)HD);
        if (c->rope_type == RM_ROPE_LLAMA3) {
            double wl = 2 * M_PI / inv[i], orig = (double)c->rope_orig_max_pos;
            if (wl > orig / c->rope_low_freq_factor) inv[i] /= c->rope_factor;
            else if (wl >= orig / c->rope_high_freq_factor) {
                double sm = (orig / wl - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv[i] = (1 - sm) * inv[i] / c->rope_factor + sm * inv[i];
            }
        }
    }
    double *emb = tensor_d(mw->embed);
    for (size_t p = 0; p < n; p++) memcpy(x + p * H, emb + (size_t)tok[p] * H, H * sizeof *x);
    free(emb);
    for (int64_t l = 0; l < c->n_layers; l++) {
        const rm_layer_weights *lw = &mw->layers[l];
        double *an = tensor_d(lw->attn_norm), *wq = tensor_d(lw->wq), *wk = tensor_d(lw->wk), *wv = tensor_d(lw->wv),
               *wo = tensor_d(lw->wo), *bq = tensor_d(lw->bq), *bk = tensor_d(lw->bk), *bv = tensor_d(lw->bv),
               *bo = tensor_d(lw->bo), *qn = tensor_d(lw->q_norm), *kn = tensor_d(lw->k_norm),
               *mn = tensor_d(lw->mlp_norm), *wg = tensor_d(lw->w_gate), *wu = tensor_d(lw->w_up),
               *wd = tensor_d(lw->w_down), *bg = tensor_d(lw->b_gate), *bu = tensor_d(lw->b_up),
               *bd = tensor_d(lw->b_down);
        for (size_t p = 0; p < n; p++) {
            rms_d(h, x + p * H, an, H, c->rms_eps);
            lin_d(q + p * QD, wq, bq, h, QD, H);
            lin_d(k + p * KD, wk, bk, h, KD, H);
            lin_d(v + p * KD, wv, bv, h, KD, H);
            for (size_t hh = 0; hh < NH + NKV; hh++) {
                double *vec = hh < NH ? q + p * QD + hh * HD : k + p * KD + (hh - NH) * HD;
                if (c->qk_norm) rms_d(vec, vec, hh < NH ? qn : kn, HD, c->rms_eps);
                for (size_t i = 0; i < half; i++) {
                    double a = vec[i], b = vec[i + half], cs = cos(p * inv[i]), sn = sin(p * inv[i]);
                    vec[i] = a * cs - b * sn;
                    vec[i + half] = b * cs + a * sn;
                }
            }
        }
        for (size_t p = 0; p < n; p++)
            for (size_t hh = 0; hh < NH; hh++) {
                size_t g_kv = hh / (NH / NKV);
                double mx = -INFINITY, sum = 0;
                for (size_t j = 0; j <= p; j++) {
                    double s = 0;
                    for (size_t d = 0; d < HD; d++) s += q[p * QD + hh * HD + d] * k[j * KD + g_kv * HD + d];
                    sc[j] = s / sqrt((double)HD);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (size_t j = 0; j <= p; j++) sum += sc[j] = exp(sc[j] - mx);
                for (size_t d = 0; d < HD; d++) {
                    double a = 0;
                    for (size_t j = 0; j <= p; j++) a += sc[j] / sum * v[j * KD + g_kv * HD + d];
                    att[p * QD + hh * HD + d] = a;
                }
            }
        for (size_t p = 0; p < n; p++) {
            lin_d(o, wo, bo, att + p * QD, H, QD);
            for (size_t i = 0; i < H; i++) x[p * H + i] += o[i];
            rms_d(h, x + p * H, mn, H, c->rms_eps);
            lin_d(g, wg, bg, h, F, H);
            lin_d(u, wu, bu, h, F, H);
            for (size_t i = 0; i < F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            lin_d(o, wd, bd, g, H, F);
            for (size_t i = 0; i < H; i++) x[p * H + i] += o[i];
        }
        double *all[] = {an, wq, wk, wv, wo, bq, bk, bv, bo, qn, kn, mn, wg, wu, wd, bg, bu, bd};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    }
    double *fnorm = tensor_d(mw->final_norm);
    rms_d(out, x + (n - 1) * H, fnorm, H, c->rms_eps);
    free(fnorm);
    double *bufs[] = {x, h, q, k, v, att, o, g, u, sc, inv};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

static unsigned long long rng_state;
static uint32_t rnd(void) {
    rng_state = st_mix64(rng_state);
    return (uint32_t)(rng_state >> 32);
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *ent;
        char path[4096];
        while ((ent = readdir(d)))
            if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* A checkpoint made here, scored by the engine and by naive_forward. */
static void synthetic(const char *label, st_spec spec) {
    char dir[] = "/tmp/rm_test_engine_XXXXXX";
    if (!mkdtemp(dir) || st_write_model(dir, &spec) != 0) {
        CHECK(0, "%s: cannot write a checkpoint", label);
        return;
    }
    loaded m;
    if (!load_model(&m, dir, 2, SIZE_MAX)) {
        CHECK(0, "%s: cannot load the checkpoint", label);
        unload(&m);
        remove_dir(dir);
        return;
    }
    if (spec.tie_embeddings && m.cfg.is_causal_lm)
        CHECK(m.mw.lm_head == m.mw.embed, "%s: tied lm_head is not the embedding", label);
    size_t H = (size_t)m.cfg.hidden, n_seqs = 4;
    const rm_tensor *head = m.cfg.is_causal_lm ? m.mw.lm_head : m.mw.score;
    int64_t rows[8];
    size_t n_head = m.cfg.is_causal_lm ? 8 : (size_t)m.cfg.n_labels;
    for (size_t i = 0; i < n_head; i++) rows[i] = m.cfg.is_causal_lm ? (int64_t)(rnd() % (uint32_t)m.cfg.vocab) : (int64_t)i;
    int32_t *toks[4];
    size_t lens[4];
    for (size_t s = 0; s < n_seqs; s++) {
        lens[s] = 1 + rnd() % 40;
        toks[s] = malloc(lens[s] * sizeof(int32_t));
        for (size_t i = 0; i < lens[s]; i++) toks[s][i] = (int32_t)(rnd() % (uint32_t)m.cfg.vocab);
    }
    /* Sequence 3 starts like sequence 1, so the pass shares a prefix. */
    if (lens[1] > 2 && lens[3] > 1) {
        size_t sh = lens[1] < lens[3] ? lens[1] : lens[3];
        memcpy(toks[3], toks[1], (sh - 1) * sizeof(int32_t));
    }
    size_t shared[4] = {0}, sh3 = 0;
    int32_t parent[4] = {-1, -1, -1, -1};
    while (sh3 < lens[3] - 1 && sh3 < lens[1] && toks[3][sh3] == toks[1][sh3]) sh3++;
    if (sh3) shared[3] = sh3, parent[3] = 1;
    rm_batch b = {n_seqs, (const int32_t *const *)toks, lens, parent, shared};
    float *hidden = malloc(n_seqs * H * sizeof(float));
    double *want = malloc(n_seqs * H * sizeof(double));
    double *hw = tensor_d(head);
    rm_err err = {0};
    double worst = 0;
    for (size_t s = 0; s < n_seqs; s++) naive_forward(&m.cfg, &m.mw, toks[s], lens[s], want + s * H);
    /* The default attention paths, then BLAS for all, then the row kernel for all. */
    size_t mins[3] = {SIZE_MAX - 1, 0, SIZE_MAX};
    for (int k = 0; k < 3; k++) {
        if (k) rm_engine_cpu_set_attn_blas_min(m.e, mins[k]);
        CHECK(E->forward(m.e, &b, hidden, &err) == RM_OK, "%s: forward: %s", label, err.msg);
        for (size_t s = 0; s < n_seqs; s++) {
            int ok = 1;
            const double *ws = want + s * H;
            for (size_t i = 0; i < H; i++) {
                double dd = fabs(hidden[s * H + i] - ws[i]);
                if (dd > worst || !isfinite(hidden[s * H + i])) worst = isfinite(hidden[s * H + i]) ? dd : INFINITY;
                ok &= close_to(hidden[s * H + i], ws[i], TOL_ABS, TOL_REL);
            }
            float got[8];
            CHECK(E->head_rows(m.e, head, rows, n_head, hidden + s * H, got, &err) == RM_OK, "%s: head: %s", label,
                  err.msg);
            for (size_t r = 0; r < n_head; r++) {
                double a = 0;
                for (size_t i = 0; i < H; i++) a += hw[(size_t)rows[r] * H + i] * ws[i];
                ok &= close_to(got[r], a, TOL_ABS, TOL_REL);
            }
            CHECK(ok, "%s: sequence %zu (%zu tokens, attention setting %d) differs from the double-precision "
                  "reference", label, s, lens[s], k);
        }
    }
    free(hw);
    fprintf(stderr, "%s (%s, %lld layers, hidden %lld, heads %lld/%lld x %lld): largest difference %.3g\n", label,
            spec.dtype, (long long)m.cfg.n_layers, (long long)m.cfg.hidden, (long long)m.cfg.n_heads,
            (long long)m.cfg.n_kv_heads, (long long)m.cfg.head_dim, worst);
    for (size_t s = 0; s < n_seqs; s++) free(toks[s]);
    free(hidden);
    free(want);
    unload(&m);
    remove_dir(dir);
}

/* An fp32 and an fp16 checkpoint in bf16: converted once to a resident bf16
 * copy (half the bytes per pass of the fp32 engine's fp32 matrices), within
 * bf16 rounding of the fp32 engine; FP8 is refused on the CPU. */
static void bf16_copies(void) {
    const char *dtypes[2] = {"F32", "F16"};
    for (int d = 0; d < 2; d++) {
        char dir[] = "/tmp/rm_test_engine_XXXXXX";
        st_spec spec = st_spec_default("LlamaForSequenceClassification");
        spec.dtype = dtypes[d], spec.hidden = 64, spec.ffn = 96, spec.n_layers = 2;
        if (!mkdtemp(dir) || st_write_model(dir, &spec) != 0) {
            CHECK(0, "cannot write a checkpoint");
            continue;
        }
        loaded m32, m16;
        rm_engine_cpu_opts o16 = {.n_threads = 2, .dtype = RM_DTYPE_BF16},
                           o32 = {.n_threads = 2, .dtype = RM_DTYPE_FP32, .f32_budget = SIZE_MAX};
        int ok = load_model_opts(&m32, dir, 2, SIZE_MAX, &o32) && load_model_opts(&m16, dir, 2, SIZE_MAX, &o16);
        CHECK(ok, "%s checkpoint: cannot load", dtypes[d]);
        if (ok) {
            int32_t toks[40];
            for (int i = 0; i < 40; i++) toks[i] = (int32_t)(rnd() % (uint32_t)m32.cfg.vocab);
            size_t H = (size_t)m32.cfg.hidden;
            float *a = malloc(H * sizeof(float)), *b = malloc(H * sizeof(float));
            rm_err err = {0};
            E->counters_reset(m32.e);
            CHECK(forward_one(m32.e, toks, 40, a, &err) == RM_OK && forward_one(m16.e, toks, 40, b, &err) == RM_OK,
                  "%s: forward: %s", dtypes[d], err.msg);
            double worst = 0;
            for (size_t i = 0; i < H; i++) {
                double dd = fabs((double)a[i] - b[i]) / (1 + fabs((double)a[i]));
                worst = dd > worst || !isfinite(b[i]) ? (isfinite(b[i]) ? dd : INFINITY) : worst;
            }
            CHECK(worst < BF16_TOL && worst > 0, "%s checkpoint in bf16 vs fp32: relative difference %g", dtypes[d],
                  worst);
            rm_engine_counters c32, c16;
            E->counters(m32.e, &c32, NULL);
            E->counters(m16.e, &c16, NULL);
            uint64_t embed = 40 * H * (d == 0 ? 4 : 2);       /* the embedding rows, read as stored */
            CHECK(rm_engine_cpu_is_resident(m16.e) &&
                      2 * (c16.weight_bytes_read - embed) == c32.weight_bytes_read - embed,
                  "%s: bytes per pass bf16 %llu, fp32 %llu", dtypes[d], (unsigned long long)c16.weight_bytes_read,
                  (unsigned long long)c32.weight_bytes_read);
            fprintf(stderr, "%s checkpoint in bf16 (resident bf16 copy): within %.3g of fp32\n", dtypes[d], worst);
            free(a), free(b);
        }
        if (d == 0) {
            rm_engine *e = NULL;
            rm_err err = {0};
            CHECK(E->create(&e, &m32.cfg, &m32.mw, &(rm_engine_opts){.n_threads = 1, .dtype = RM_DTYPE_FP8}, &err) ==
                      RM_ERR_UNSUPPORTED && !e && strstr(err.msg, "FP8 needs the CUDA engine"),
                  "fp8 on the cpu: %s", err.msg);
        }
        unload(&m32);
        unload(&m16);
        remove_dir(dir);
    }
}

/* ---------------------------------------------------------------- failures and threads */

typedef struct worker {
    rm_engine *e;
    const rm_batch *b;
    float *out;
    rm_status st;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 3 && w->st == RM_OK; i++) w->st = E->forward(w->e, w->b, w->out, NULL);
    return NULL;
}

static void robustness(void) {
    char dir[] = "/tmp/rm_test_engine_XXXXXX";
    st_spec spec = st_spec_default("Qwen2ForSequenceClassification");
    if (!mkdtemp(dir) || st_write_model(dir, &spec) != 0) {
        CHECK(0, "cannot write a checkpoint");
        return;
    }
    loaded m;
    if (!load_model(&m, dir, 2, SIZE_MAX)) {
        CHECK(0, "cannot load the checkpoint");
        unload(&m);
        remove_dir(dir);
        return;
    }
    size_t H = (size_t)m.cfg.hidden;
    int32_t a[6] = {1, 2, 3, 4, 5, 6}, c[4] = {1, 2, 9, 9};
    const int32_t *toks[2] = {a, c};
    size_t lens[2] = {6, 4}, shared[2] = {0, 2};
    int32_t parent[2] = {-1, 0};
    rm_batch good = {2, toks, lens, parent, shared};
    float out[2 * 64], ref[2 * 64];
    rm_err err = {0};
    CHECK(H <= 64 && E->forward(m.e, &good, ref, &err) == RM_OK, "forward: %s", err.msg);

    /* Bad arguments. */
    int32_t bad[3] = {1, (int32_t)m.cfg.vocab, 2};
    const int32_t *bt[1] = {bad};
    size_t bl[1] = {3};
    rm_batch b1 = {1, bt, bl, NULL, NULL};
    memset(&err, 0, sizeof err);
    CHECK(E->forward(m.e, &b1, out, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "token id 96") &&
              strstr(err.msg, "position 1"),
          "out-of-range token: %s", err.msg);
    bad[1] = -5;
    CHECK(E->forward(m.e, &b1, out, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "-5"), "negative token: %s",
          err.msg);
    size_t zero[1] = {0};
    rm_batch b2 = {1, bt, zero, NULL, NULL};
    CHECK(E->forward(m.e, &b2, out, &err) == RM_ERR_INVALID_ARG, "empty sequence accepted");
    size_t sh_bad[2] = {0, 3};
    rm_batch b3 = {2, toks, lens, parent, sh_bad};
    CHECK(E->forward(m.e, &b3, out, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "differ"),
          "mismatched shared prefix: %s", err.msg);
    int32_t par_bad[2] = {-1, 1};
    rm_batch b4 = {2, toks, lens, par_bad, shared};
    CHECK(E->forward(m.e, &b4, out, &err) == RM_ERR_INVALID_ARG, "parent not earlier accepted");
    size_t sh_long[2] = {0, 5};
    rm_batch b5 = {2, toks, lens, parent, sh_long};
    CHECK(E->forward(m.e, &b5, out, &err) == RM_ERR_INVALID_ARG, "shared_len past the end accepted");
    CHECK(E->forward(m.e, NULL, out, &err) == RM_ERR_INVALID_ARG, "NULL batch accepted");
    CHECK(E->forward(m.e, &good, NULL, &err) == RM_ERR_INVALID_ARG, "NULL output accepted");
    int64_t row_bad[1] = {(int64_t)m.cfg.n_labels};
    float hv[1];
    CHECK(E->head_rows(m.e, m.mw.score, row_bad, 1, ref, hv, &err) == RM_ERR_INVALID_ARG, "head row out of range");
    rm_engine *e2 = NULL;
    CHECK(E->create(&e2, &m.cfg, &m.mw, &(rm_engine_opts){.n_threads = -1, .dtype = RM_DTYPE_FP32}, &err) == RM_ERR_INVALID_ARG && !e2, "negative threads accepted");

    /* Allocation failures: every allocation point of forward and create
     * fails cleanly (ASan reports any leak at exit). */
    int nomem_ok = 1, points = 0;
    for (int64_t k = 0; k < 200; k++) {
        rm_alloc_fail_after(k);
        rm_status st = E->forward(m.e, &good, out, &err);
        rm_alloc_fail_after(-1);
        if (st == RM_OK) {
            nomem_ok &= memcmp(out, ref, 2 * H * sizeof(float)) == 0;
            break;
        }
        nomem_ok &= st == RM_ERR_NOMEM;
        points++;
    }
    CHECK(nomem_ok && points > 0, "forward under allocation failures (%d points)", points);
    nomem_ok = 1, points = 0;
    for (int64_t k = 0; k < 500; k++) {
        rm_engine *e = NULL;
        rm_alloc_fail_after(k);
        rm_status st = rm_engine_cpu_create_ex(&e, &m.cfg, &m.mw, 2, SIZE_MAX, &err);
        rm_alloc_fail_after(-1);
        if (st == RM_OK) {
            E->destroy(e);
            break;
        }
        nomem_ok &= st == RM_ERR_NOMEM && e == NULL;
        points++;
    }
    CHECK(nomem_ok && points > 0, "create under allocation failures (%d points)", points);

    /* Concurrent callers on one engine get the same answers. */
    worker w[3];
    pthread_t th[3];
    float outs[3][2 * 64];
    for (int i = 0; i < 3; i++) {
        w[i] = (worker){m.e, &good, outs[i], RM_OK};
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].st == RM_OK && memcmp(outs[i], ref, 2 * H * sizeof(float)) == 0, "concurrent caller %d", i);
    }
    rm_engine_counters cnt;
    E->counters(m.e, &cnt, NULL);
    CHECK(cnt.forward_passes == 2 + 9, "forward_passes %llu after 11 passes", (unsigned long long)cnt.forward_passes);
    unload(&m);
    remove_dir(dir);
}

int main(void) {
    rm_global_init();
    rng_state = test_seed();
    const char *models[] = {"tiny-llama3-seqcls", "tiny-llama3-causal", "tiny-qwen2-seqcls", "tiny-qwen3-seqcls"};
    char model[256], ref[256];
    for (size_t i = 0; i < 4 && !test_have_fixtures(); i++) test_skip_fixtures(1);
    for (size_t i = 0; i < 4 && test_have_fixtures(); i++) {
        snprintf(model, sizeof model, "models/%s", models[i]);
        snprintf(ref, sizeof ref, "reference/%s.reference.jsonl", models[i]);
        reference_file(model, ref, 0);
    }
    if (test_have_fixtures()) {
        reference_file("models/tiny-llama3-causal", "reference/tiny-llama3-causal.principle.reference.jsonl", 1);
        batch_checks("models/tiny-llama3-causal", "reference/tiny-llama3-causal.principle.reference.jsonl");
        batch_checks("models/tiny-qwen3-seqcls", "reference/tiny-qwen3-seqcls.reference.jsonl");
        bf16_references();
        kernels_agree("models/tiny-llama3-causal", "reference/tiny-llama3-causal.principle.reference.jsonl");
        kernels_agree("models/tiny-qwen2-seqcls", "reference/tiny-qwen2-seqcls.reference.jsonl");
        bf16_copies();
    } else {
        test_skip_fixtures(7);
    }

    st_spec s = st_spec_default("LlamaForCausalLM");
    s.attention_bias = 1, s.mlp_bias = 1, s.tie_embeddings = 1, s.rope_llama3 = 1;
    synthetic("llama causal, biases, tied lm_head", s);
    s = st_spec_default("Qwen3ForSequenceClassification");
    s.dtype = "F16", s.head_dim = 16, s.n_layers = 3;
    synthetic("qwen3 seqcls", s);
    s = st_spec_default("Qwen2ForSequenceClassification");
    s.dtype = "F32", s.n_layers = 1, s.n_kv_heads = 1;
    synthetic("qwen2 seqcls, one layer", s);
    s = st_spec_default("LlamaForSequenceClassification");
    s.dtype = "F32", s.hidden = 48, s.n_heads = 3, s.n_kv_heads = 3, s.ffn = 40, s.n_shards = 2, s.new_layout = 1;
    synthetic("llama seqcls, no GQA, sharded", s);
    robustness();
    return test_summary("test_engine");
}
