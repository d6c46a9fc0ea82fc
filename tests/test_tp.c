/*
 * test_tp.c - tensor parallelism on the CPU (lib/parallel/):
 *  - the sharding rule, and its refusals naming the count;
 *  - a rank's slices against the checkpoint, element by element (rows in
 *    the mapping, columns copied, kv heads replicated when ranks outnumber
 *    them, nothing else copied);
 *  - --tp 2 and 4 against --tp 0 within 1e-5 abs + 1e-5 rel on every
 *    fixture model whose counts divide (every reference conversation, one
 *    at a time and as one packed batch, principles included), --tp 1
 *    bitwise equal to --tp 0, and the transformers references; synthetic
 *    checkpoints for what the fixtures lack (o_proj/down biases, a tied
 *    lm_head, fp16/fp32 files);
 *  - a failure injected into one rank: every rank returns an error within
 *    the timeout, the model serves again after an error, stays failed after
 *    a timeout;
 *  - threads scoring through the API get a single thread's scores;
 *  - ranks, world and local rank from rm_params and the launchers'
 *    variables; one process per rank refused on the CPU.
 */
#define _XOPEN_SOURCE 700   /* nftw */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "parallel/tp.h"
#include "st_writer.h"
#include "test.h"

#define TP_ABS 1e-5
#define TP_REL 1e-5
#define REF_ABS 1e-4   /* fixtures/README.md: the CPU engine against transformers fp32 */
#define REF_REL 1e-4
#define NOW "2024-07-26T12:00:00"

static const char *models[] = {"tiny-llama3-causal", "tiny-llama3-seqcls", "tiny-qwen2-seqcls", "tiny-qwen3-seqcls"};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int close_to(double got, double want, double a, double r) { return isfinite(got) && fabs(got - want) <= a + r * fabs(want); }

/* ------------------------------------------------ conversations of the reference files */

typedef struct convs {
    json_t *rows;               /* array of reference objects */
    rm_item *items;
    rm_message **msgs;
    const char **principle;     /* one per item, or NULL */
    size_t n;
} convs;

static void convs_load(convs *c, const char *file) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen(file, "r");
    if (!f) return;
    c->rows = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o) json_array_append_new(c->rows, o);
    }
    free(line);
    fclose(f);
    c->n = json_array_size(c->rows);
    c->items = calloc(c->n + 1, sizeof *c->items);
    c->msgs = calloc(c->n + 1, sizeof *c->msgs);
    c->principle = calloc(c->n + 1, sizeof *c->principle);
    for (size_t i = 0; i < c->n; i++) {
        json_t *o = json_array_get(c->rows, i), *ms = json_object_get(o, "messages");
        size_t nm = json_array_size(ms);
        c->msgs[i] = calloc(nm + 1, sizeof **c->msgs);
        for (size_t k = 0; k < nm; k++)
            c->msgs[i][k] = RM_MESSAGE(json_string_value(json_object_get(json_array_get(ms, k), "role")),
                                       json_string_value(json_object_get(json_array_get(ms, k), "content")));
        rm_item_init(&c->items[i]);
        c->items[i].messages = c->msgs[i];
        c->items[i].n_messages = nm;
        c->principle[i] = json_string_value(json_object_get(o, "principle"));
        if (c->principle[i]) {
            c->items[i].principles = &c->principle[i];
            c->items[i].n_principles = 1;
        }
    }
}

static void convs_free(convs *c) {
    for (size_t i = 0; i < c->n; i++) free(c->msgs[i]);
    free(c->msgs);
    free(c->items);
    free(c->principle);
    json_decref(c->rows);
    memset(c, 0, sizeof *c);
}

/* Scores of every item (n_scores each, at most 8), one call per item or one batch. */
static int score_all(rm_model *m, const convs *c, int batch, double *out, size_t *width, char *msg, size_t msg_n) {
    rm_scores **res = calloc(c->n + 1, sizeof *res);
    int ok = 1;
    if (batch) {
        ok = rm_score_batch(m, c->items, c->n, res) == RM_OK;
    } else {
        for (size_t i = 0; i < c->n && ok; i++) ok = rm_score_item(m, &c->items[i], &res[i]) == RM_OK;
    }
    if (!ok) snprintf(msg, msg_n, "%s", rm_errmsg(m));
    for (size_t i = 0; i < c->n; i++) {
        if (!res[i]) continue;
        *width = res[i]->n_scores;
        for (size_t k = 0; k < res[i]->n_scores && k < 8; k++) out[i * 8 + k] = res[i]->values[k];
        rm_scores_free(res[i]);
    }
    free(res);
    return ok;
}

static rm_model *load(const char *dir, int tp, int threads, char *msg, size_t n, rm_status *st_out) {
    rm_params p;
    rm_params_init(&p);
    p.device = RM_DEVICE_CPU;
    p.tp = tp;
    p.n_threads = threads;
    p.now = NOW;
    rm_model *m = NULL;
    rm_status st = rm_load(dir, &p, &m, msg, n);
    if (st_out) *st_out = st;
    return m;
}

/* ------------------------------------------------ the rule */

static void test_rule(void) {
    rm_config c;
    memset(&c, 0, sizeof c);
    c.n_heads = 8, c.n_kv_heads = 2, c.ffn = 96, c.head_dim = 16, c.hidden = 128;
    rm_err err = {0};
    for (int tp = 1; tp <= 8; tp *= 2) CHECK(rm_shard_check(&c, tp, &err) == RM_OK, "8/2/96 over %d: %s", tp, err.msg);
    CHECK(rm_shard_check(&c, 3, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "the 8 attention heads"), "%s", err.msg);
    c.n_kv_heads = 4, c.n_heads = 12;
    CHECK(rm_shard_check(&c, 6, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "the 4 key/value heads"), "%s", err.msg);
    c.n_heads = 8, c.ffn = 100;
    CHECK(rm_shard_check(&c, 8, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "intermediate size 100"), "%s", err.msg);
    CHECK(rm_shard_check(&c, 4, &err) == RM_OK, "ffn 100 over 4");
    rm_config l;
    c.ffn = 96, c.n_kv_heads = 2;
    rm_shard_config(&c, 8, 5, &l);
    CHECK(l.n_heads == 1 && l.n_kv_heads == 1 && l.ffn == 12 && l.head_dim == 16 && l.hidden == 128,
          "local config %lld/%lld/%lld", (long long)l.n_heads, (long long)l.n_kv_heads, (long long)l.ffn);
}

/* ------------------------------------------------ slices */

static char tmp_root[4096];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static const char *new_dir(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(path, 0755);
    return path;
}

static float elem(const rm_tensor *t, int64_t i) {
    float f;
    rm_tensor tt = *t;
    tt.n_dims = 1;
    tt.shape[0] = rm_tensor_numel(t);
    /* one element: as a row of a 1-D view starting at i */
    tt.data = (const char *)t->data + (size_t)i * rm_dtype_size(t->dtype);
    tt.shape[0] = 1;
    rm_tensor_rows_f32(&tt, 0, 1, &f);
    return f;
}

static void test_slices(void) {
    st_spec s = st_spec_default("LlamaForCausalLM");
    s.n_heads = 8, s.n_kv_heads = 2, s.hidden = 64, s.ffn = 96, s.n_layers = 2, s.attention_bias = 1, s.mlp_bias = 1;
    const char *dir = new_dir("slices");
    CHECK(st_write_model(dir, &s) == 0, "write %s", dir);
    rm_config cfg;
    rm_weights *w = NULL;
    rm_model_weights mw;
    rm_err err = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rm_config_load(&cfg, path, &err) || rm_weights_open(&w, dir, &err) || rm_model_weights_bind(&mw, w, &cfg, &err)) {
        CHECK(0, "load %s: %s", dir, err.msg);
        return;
    }
    int64_t hd = cfg.head_dim;
    for (int tp = 1; tp <= 8; tp *= 2) {
        for (int r = 0; r < tp; r++) {
            rm_shard *sh = NULL;
            rm_shard_source src = {&cfg, &mw, NULL};
            if (rm_shard_load(&sh, &src, tp, r, 1, &err) != RM_OK) {
                CHECK(0, "tp %d rank %d: %s", tp, r, err.msg);
                continue;
            }
            int64_t qh = 8 / tp, kvh = tp <= 2 ? 2 / tp : 1, fl = 96 / tp;
            int64_t kv0 = tp <= 2 ? r * kvh : r / (tp / 2);   /* replicated when ranks outnumber kv heads */
            CHECK(sh->cfg.n_heads == qh && sh->cfg.n_kv_heads == kvh && sh->cfg.ffn == fl && sh->kv_head0 == kv0,
                  "tp %d rank %d counts", tp, r);
            int bad = 0;
            size_t owned = 0;
            for (int64_t l = 0; l < cfg.n_layers; l++) {
                const rm_layer_weights *F = &mw.layers[l], *S = &sh->mw.layers[l];
                /* rows: q heads [r*qh, ..), kv heads [kv0, ..), ffn rows [r*fl, ..) */
                for (int64_t i = 0; i < qh * hd; i++)
                    for (int64_t j = 0; j < 64; j += 7) {
                        bad += elem(S->wq, i * 64 + j) != elem(F->wq, (r * qh * hd + i) * 64 + j);
                        bad += i < 64 && elem(S->wo, i * qh * hd + (j % (qh * hd))) != elem(F->wo, i * 8 * hd + r * qh * hd + (j % (qh * hd)));
                    }
                for (int64_t i = 0; i < kvh * hd; i++) {
                    bad += elem(S->wk, i * 64 + 3) != elem(F->wk, (kv0 * hd + i) * 64 + 3);
                    bad += elem(S->wv, i * 64 + 5) != elem(F->wv, (kv0 * hd + i) * 64 + 5);
                    bad += elem(S->bk, i) != elem(F->bk, kv0 * hd + i);
                }
                for (int64_t i = 0; i < fl; i++) {
                    bad += elem(S->w_gate, i * 64 + 1) != elem(F->w_gate, (r * fl + i) * 64 + 1);
                    bad += elem(S->w_up, i * 64 + 2) != elem(F->w_up, (r * fl + i) * 64 + 2);
                    bad += elem(S->b_up, i) != elem(F->b_up, r * fl + i);
                    for (int64_t row = 0; row < 64; row += 9)
                        bad += elem(S->w_down, row * fl + i) != elem(F->w_down, row * 96 + r * fl + i);
                }
                /* Rows point into the mapping; the whole tensors are shared. */
                bad += S->wq->data < F->wq->data || (const char *)S->wq->data >= (const char *)F->wq->data + F->wq->n_bytes;
                bad += S->attn_norm != F->attn_norm || S->bo != F->bo || S->b_down != F->b_down || S->mlp_norm != F->mlp_norm;
                owned += S->wo->n_bytes + S->w_down->n_bytes;
            }
            CHECK(!bad, "tp %d rank %d: %d slice elements differ from the checkpoint", tp, r, bad);
            CHECK(sh->mw.embed == mw.embed && sh->mw.lm_head == mw.lm_head && sh->mw.final_norm == mw.final_norm,
                  "tp %d rank %d: embedding, final norm and head shared", tp, r);
            CHECK(sh->n_owned == 2 * (size_t)cfg.n_layers &&
                  owned == (size_t)cfg.n_layers * 64 * (size_t)(qh * hd + fl) * 2,
                  "tp %d rank %d: only o_proj/down_proj columns copied (%zu bytes)", tp, r, owned);
            rm_shard_free(sh);
        }
    }
    rm_model_weights_free(&mw);
    rm_weights_close(w);
    rm_config_free(&cfg);
}

/* ------------------------------------------------ tp against tp 0, engine level */

typedef struct ckpt {
    rm_config cfg;
    rm_weights *w;
    rm_model_weights mw;
    int ok;
} ckpt;

static void ckpt_open(ckpt *k, const char *dir) {
    memset(k, 0, sizeof *k);
    rm_err err = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rm_config_load(&k->cfg, path, &err) || rm_weights_open(&k->w, dir, &err) ||
        rm_model_weights_bind(&k->mw, k->w, &k->cfg, &err))
        CHECK(0, "%s: %s", dir, err.msg);
    else
        k->ok = 1;
}

static void ckpt_close(ckpt *k) {
    rm_model_weights_free(&k->mw);
    rm_weights_close(k->w);
    rm_config_free(&k->cfg);
}

/* tp 0: the CPU engine itself; else the tp engine over CPU ranks in this process. */
static rm_engine *engine_for(const ckpt *k, int tp, rm_err *err) {
    rm_engine *e = NULL;
    rm_engine_opts o = {.n_threads = 2, .dtype = RM_DTYPE_FP32};
    if (tp == 0) return rm_engine_cpu.create(&e, &k->cfg, &k->mw, &o, err) == RM_OK ? e : NULL;
    rm_tp_plan plan;
    memset(&plan, 0, sizeof plan);
    if (rm_tp_layout_resolve(&plan.layout, tp, 0, 1, 0, err)) return NULL;
    plan.inner = &rm_engine_cpu;
    plan.source = (rm_shard_source){&k->cfg, &k->mw, NULL};
    plan.timeout_s = 60;
    o.tp = &plan;
    return rm_engine_tp.create(&e, &k->cfg, &k->mw, &o, err) == RM_OK ? e : NULL;
}

/* Sequences to run: one batch, each sharing its prefix with the one before. */
typedef struct seqs {
    const int32_t **tok;
    size_t *len, *shared, n;
    int32_t *parent;
    int32_t **own;
} seqs;

static void seqs_from(seqs *q, json_t *rows, size_t n) {
    memset(q, 0, sizeof *q);
    q->n = n;
    q->tok = calloc(n + 1, sizeof *q->tok);
    q->own = calloc(n + 1, sizeof *q->own);
    q->len = calloc(n + 1, sizeof *q->len);
    q->shared = calloc(n + 1, sizeof *q->shared);
    q->parent = calloc(n + 1, sizeof *q->parent);
    for (size_t i = 0; i < n; i++) {
        json_t *ids = json_object_get(json_array_get(rows, i), "ids");
        q->len[i] = json_array_size(ids);
        q->own[i] = calloc(q->len[i] + 1, sizeof(int32_t));
        for (size_t t = 0; t < q->len[i]; t++) q->own[i][t] = (int32_t)json_integer_value(json_array_get(ids, t));
        q->tok[i] = q->own[i];
        q->parent[i] = -1;
        if (i) {
            size_t l = 0;
            while (l < q->len[i] && l < q->len[i - 1] && q->tok[i][l] == q->tok[i - 1][l]) l++;
            if (l >= q->len[i]) l = q->len[i] - 1;
            if (l) q->shared[i] = l, q->parent[i] = (int32_t)(i - 1);
        }
    }
}

static void seqs_free(seqs *q) {
    for (size_t i = 0; i < q->n; i++) free(q->own[i]);
    free(q->own), free(q->tok), free(q->len), free(q->shared), free(q->parent);
}

/* Head outputs for every sequence: the score rows, or lm_head rows 0..7 and
 * the principle rows (Yes 9642, No 2822) of a causal model. */
static size_t heads(const rm_engine_ops *E, rm_engine *e, const ckpt *k, const float *hidden, size_t n, double *out) {
    int64_t rows[16];
    size_t nr = 0;
    const rm_tensor *t = k->mw.score ? k->mw.score : k->mw.lm_head;
    if (k->mw.score) {
        for (int64_t r = 0; r < k->cfg.n_labels && nr < 8; r++) rows[nr++] = r;
    } else {
        for (int64_t r = 0; r < 8 && r < k->cfg.vocab; r++) rows[nr++] = r;
        if (k->cfg.vocab > 9642) rows[nr++] = 9642, rows[nr++] = 2822;
    }
    float v[16];
    rm_err err = {0};
    for (size_t i = 0; i < n; i++) {
        if (E->head_rows(e, t, rows, nr, hidden + i * (size_t)k->cfg.hidden, v, &err) != RM_OK) {
            CHECK(0, "head rows: %s", err.msg);
            return 0;
        }
        for (size_t j = 0; j < nr; j++) out[i * 16 + j] = v[j];
    }
    return nr;
}

/* Runs the sequences one at a time and as one packed batch with tp in
 * {0, 1, 2, 4}: tp 1 bitwise equal to tp 0, 2 and 4 within TP_ABS + TP_REL
 * (hidden states and head outputs), or refused naming the count. ref (may
 * be NULL): transformers' scores, ref_width per sequence, for tp 0. */
static void compare_tps(const char *label, const ckpt *k, const seqs *q, const double *ref, size_t ref_width) {
    size_t H = (size_t)k->cfg.hidden, n = q->n;
    float *base = calloc(2 * n * H + 1, sizeof *base), *got = calloc(2 * n * H + 1, sizeof *got);
    double *hb = calloc(2 * n * 16 + 1, sizeof *hb), *hg = calloc(2 * n * 16 + 1, sizeof *hg);
    size_t nr = 0;
    rm_err err = {0};
    for (int tp = 0; tp <= 4; tp = tp ? 2 * tp : 1) {
        rm_engine *e = engine_for(k, tp, &err);
        const rm_engine_ops *E = tp ? &rm_engine_tp : &rm_engine_cpu;
        const rm_config *c = &k->cfg;
        int divides = tp == 0 || (c->n_heads % tp == 0 && (c->n_kv_heads % tp == 0 || tp % c->n_kv_heads == 0) &&
                                  c->ffn % tp == 0);
        if (!divides) {
            char want[64];
            snprintf(want, sizeof want, "the %lld attention heads", (long long)c->n_heads);
            CHECK(!e && err.status == RM_ERR_INVALID_ARG && strstr(err.msg, "do not divide over"), "%s tp %d: %s", label, tp, err.msg);
            if (c->n_heads % tp) CHECK(strstr(err.msg, want) != NULL, "%s tp %d names the heads: %s", label, tp, err.msg);
            if (e) E->destroy(e);
            continue;
        }
        if (!e) {
            CHECK(0, "%s tp %d: %s", label, tp, err.msg);
            continue;
        }
        float *h = tp ? got : base;
        double *o = tp ? hg : hb;
        int ok = 1;
        for (size_t i = 0; i < n && ok; i++) {   /* one at a time */
            rm_batch b = {1, &q->tok[i], &q->len[i], NULL, NULL};
            ok = E->forward(e, &b, h + i * H, &err) == RM_OK;
        }
        rm_batch all = {n, q->tok, q->len, q->parent, q->shared};   /* packed, prefixes shared */
        ok = ok && E->forward(e, &all, h + n * H, &err) == RM_OK;
        CHECK(ok, "%s tp %d: forward: %s", label, tp, err.msg);
        nr = heads(E, e, k, h, 2 * n, o);
        E->destroy(e);
        if (tp == 0) {
            if (ref) {
                int bad = 0;
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < ref_width; j++) bad += !close_to(hb[i * 16 + j], ref[i * 16 + j], REF_ABS, REF_REL);
                CHECK(!bad, "%s: %d head outputs off the transformers references", label, bad);
            }
            continue;
        }
        int bad = 0;
        double worst = 0;
        for (size_t i = 0; i < 2 * n * H; i++) {
            int same = tp == 1 ? memcmp(&got[i], &base[i], sizeof *got) == 0 : close_to(got[i], base[i], TP_ABS, TP_REL);
            bad += !same;
        }
        CHECK(!bad, "%s tp %d: %d hidden values off tp 0", label, tp, bad);
        bad = 0;
        for (size_t i = 0; i < 2 * n; i++)
            for (size_t j = 0; j < nr; j++) {
                double a = hg[i * 16 + j], b = hb[i * 16 + j];
                bad += tp == 1 ? memcmp(&a, &b, sizeof a) != 0 : !close_to(a, b, TP_ABS, TP_REL);
                if (fabs(a - b) > worst) worst = fabs(a - b);
            }
        CHECK(!bad, "%s tp %d: %d scores off tp 0 (worst %.3g)", label, tp, bad, worst);
        fprintf(stderr, "%s tp %d: largest score difference from tp 0 %.3g\n", label, tp, worst);
    }
    free(base), free(got), free(hb), free(hg);
}

static json_t *read_rows(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) return NULL;
    json_t *rows = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o) json_array_append_new(rows, o);
    }
    free(line);
    fclose(f);
    return rows;
}

static void test_fixture_models(void) {
    for (size_t mi = 0; mi < sizeof models / sizeof *models; mi++) {
        char dir[4096], ref[4096];
        snprintf(dir, sizeof dir, "%s", fixture("models/"));
        strncat(dir, models[mi], sizeof dir - strlen(dir) - 1);
        snprintf(ref, sizeof ref, "%s", fixture("reference/"));
        strncat(ref, models[mi], sizeof ref - strlen(ref) - 1);
        strncat(ref, ".reference.jsonl", sizeof ref - strlen(ref) - 1);
        json_t *rows = read_rows(ref);
        ckpt k;
        ckpt_open(&k, dir);
        if (!rows || !k.ok) {
            CHECK(0, "%s: no reference rows or no checkpoint", models[mi]);
            json_decref(rows);
            ckpt_close(&k);
            continue;
        }
        seqs q;
        seqs_from(&q, rows, json_array_size(rows));
        size_t rw = 0;
        double *want = calloc(q.n * 16 + 1, sizeof *want);
        for (size_t i = 0; i < q.n; i++) {
            json_t *s = json_object_get(json_array_get(rows, i), "scores_fp32");
            rw = json_array_size(s) < 8 ? json_array_size(s) : 8;
            for (size_t j = 0; j < rw; j++) want[i * 16 + j] = json_number_value(json_array_get(s, j));
        }
        compare_tps(models[mi], &k, &q, want, rw);
        free(want);
        seqs_free(&q);
        json_decref(rows);
        /* Principles: the conversation, then the question; the batch shares the prefixes. */
        if (strstr(models[mi], "causal")) {
            rows = read_rows(fixture("reference/tiny-llama3-causal.principle.reference.jsonl"));
            seqs_from(&q, rows, json_array_size(rows));
            compare_tps("tiny-llama3-causal principles", &k, &q, NULL, 0);
            seqs_free(&q);
            json_decref(rows);
        }
        ckpt_close(&k);
    }
}

/* Architecture options the fixtures lack, on random token sequences. */
static void test_synthetic(unsigned long long seed) {
    struct {
        const char *label, *arch, *dtype;
        int bias, tied;
    } cases[] = {
        {"llama o_proj/down biases, f32", "LlamaForSequenceClassification", "F32", 1, 0},
        {"llama causal tied lm_head, f16", "LlamaForCausalLM", "F16", 0, 1},
        {"qwen2 biases, bf16", "Qwen2ForSequenceClassification", "BF16", 0, 0},
        {"qwen3, bf16", "Qwen3ForSequenceClassification", "BF16", 0, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        st_spec s = st_spec_default(cases[ci].arch);
        s.n_heads = 8, s.n_kv_heads = 2, s.ffn = 64, s.hidden = 64;
        s.attention_bias = s.mlp_bias = cases[ci].bias;
        s.tie_embeddings = cases[ci].tied;
        s.dtype = cases[ci].dtype;
        s.seed = seed + ci;
        const char *dir = new_dir("synthetic");
        CHECK(st_write_model(dir, &s) == 0, "write %s", dir);
        ckpt k;
        ckpt_open(&k, dir);
        if (!k.ok) continue;
        /* 12 sequences of 1..150 tokens, every third continuing the one before. */
        json_t *rows = json_array();
        unsigned long long x = seed ^ (ci * 0x9e3779b97f4a7c15ULL);
        json_t *prev = NULL;
        for (int i = 0; i < 12; i++) {
            json_t *ids = json_array();
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t len = 1 + (size_t)(x >> 33) % 150;
            for (size_t t = 0; t < len; t++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                int32_t tok = (int32_t)((x >> 33) % (unsigned)s.vocab);
                if (i % 3 == 2 && prev && t < json_array_size(prev)) tok = (int32_t)json_integer_value(json_array_get(prev, t));
                json_array_append_new(ids, json_integer(tok));
            }
            prev = ids;
            json_array_append_new(rows, json_pack("{s:o}", "ids", ids));
        }
        seqs q;
        seqs_from(&q, rows, json_array_size(rows));
        compare_tps(cases[ci].label, &k, &q, NULL, 0);
        seqs_free(&q);
        json_decref(rows);
        ckpt_close(&k);
    }
}

/* Through the API: scores of tp 2 against tp 0 for the principle items, in one batch. */
static void test_api_scores(void) {
    json_t *rows = read_rows(fixture("reference/tiny-llama3-causal.principle.reference.jsonl"));
    size_t n = json_array_size(rows);
    if (!n) {
        CHECK(0, "no principle rows");
        json_decref(rows);
        return;
    }
    rm_item *items = calloc(n, sizeof *items);
    rm_message *msgs = calloc(n * 8, sizeof *msgs);
    const char **pr = calloc(n, sizeof *pr);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(rows, i), *ms = json_object_get(o, "messages");
        size_t nm = json_array_size(ms) < 8 ? json_array_size(ms) : 8;
        for (size_t k = 0; k < nm; k++)
            msgs[i * 8 + k] = RM_MESSAGE(json_string_value(json_object_get(json_array_get(ms, k), "role")),
                                         json_string_value(json_object_get(json_array_get(ms, k), "content")));
        pr[i] = json_string_value(json_object_get(o, "principle"));
        rm_item_init(&items[i]);
        items[i].messages = &msgs[i * 8];
        items[i].n_messages = nm;
        items[i].principles = &pr[i];
        items[i].n_principles = 1;
    }
    double v[2][64];
    char dir[4096], msg[1024];
    snprintf(dir, sizeof dir, "%s", fixture("models/tiny-llama3-causal"));
    for (int w = 0; w < 2; w++) {
        rm_model *m = load(dir, w ? 2 : 0, 2, msg, sizeof msg, NULL);
        rm_scores **res = calloc(n, sizeof *res);
        CHECK(m && rm_score_batch(m, items, n, res) == RM_OK, "tp %d: %s", w ? 2 : 0, m ? rm_errmsg(m) : msg);
        for (size_t i = 0; i < n && i < 64; i++) {
            v[w][i] = res[i] ? res[i]->values[0] : NAN;
            if (!w) CHECK(close_to(v[0][i], json_number_value(json_object_get(json_array_get(rows, i), "reward_fp32")),
                               REF_ABS, REF_REL), "item %zu: %g", i, v[0][i]);
            rm_scores_free(res[i]);
        }
        free(res);
        rm_free(m);
    }
    int bad = 0;
    for (size_t i = 0; i < n && i < 64; i++) bad += !close_to(v[1][i], v[0][i], TP_ABS, TP_REL);
    CHECK(!bad, "rm_score_batch, tp 2 against tp 0: %d of %zu principle scores differ", bad, n);
    free(items), free(msgs), free(pr);
    json_decref(rows);
}

/* ------------------------------------------------ failures */

static void test_failures(void) {
    char dir[4096], msg[1024];
    snprintf(dir, sizeof dir, "%s", fixture("models/tiny-llama3-causal"));
    rm_params p;
    rm_params_init(&p);
    p.device = RM_DEVICE_CPU;
    p.tp = 2;
    p.n_threads = 2;
    p.tp_timeout_s = 0.5;
    p.now = NOW;
    rm_model *m = NULL;
    if (rm_load(dir, &p, &m, msg, sizeof msg) != RM_OK) {
        CHECK(0, "load tp 2: %s", msg);
        return;
    }
    rm_scores *s = NULL;
    CHECK(rm_score(m, "What is 2+2?", "4", &s) == RM_OK, "score: %s", rm_errmsg(m));
    double good = s ? s->values[0] : NAN;
    rm_scores_free(s);

    struct {
        int rank;
        long at;
        rm_status st;
    } inj[] = {{1, -1, RM_ERR_NOMEM}, {0, -1, RM_ERR_IO}, {1, 0, RM_ERR_NOMEM}, {0, 3, RM_ERR_INTERNAL}, {1, 5, RM_ERR_SHAPE}};
    for (size_t i = 0; i < sizeof inj / sizeof *inj; i++) {
        rm_engine_tp_inject(m->engine, inj[i].rank, inj[i].at, inj[i].st, 0);
        double t0 = now_s();
        rm_status st = rm_score(m, "What is 2+2?", "4", &s);
        double dt = now_s() - t0;
        CHECK(st == inj[i].st && !s, "inject rank %d at %ld: status %d (%s)", inj[i].rank, inj[i].at, st, rm_errmsg(m));
        char want[64];
        snprintf(want, sizeof want, "tensor-parallel rank %d of 2", inj[i].rank);
        CHECK(strstr(rm_errmsg(m), want) && strstr(rm_errmsg(m), "injected failure"), "message: %s", rm_errmsg(m));
        CHECK(dt < 0.45, "a failed rank ends the call at once (%.3f s, the timeout is 0.5 s)", dt);
        for (int r = 0; r < 2; r++) {
            char rmsg[1024];
            CHECK(rm_engine_tp_rank_result(m->engine, r, rmsg, sizeof rmsg) != RM_OK, "rank %d returned an error too", r);
        }
        /* An error is not a stall: the model serves again, with the same score. */
        s = NULL;
        CHECK(rm_score(m, "What is 2+2?", "4", &s) == RM_OK && s && s->values[0] == good, "after the failure: %s",
              rm_errmsg(m));
        rm_scores_free(s);
    }
    /* A rank that stops: the other times out, both return, within the timeout. */
    rm_engine_tp_inject(m->engine, 1, 2, RM_OK, 1);
    double t0 = now_s();
    rm_status st = rm_score(m, "What is 2+2?", "4", &s);
    double dt = now_s() - t0;
    CHECK(st == RM_ERR_DEVICE && strstr(rm_errmsg(m), "timed out after 0.5 s") && strstr(rm_errmsg(m), "waiting for rank 1"),
          "stopped rank: status %d (%s)", st, rm_errmsg(m));
    CHECK(dt >= 0.45 && dt < 3.0, "returned after %.3f s with a 0.5 s timeout", dt);
    for (int r = 0; r < 2; r++) {
        char rmsg[1024];
        CHECK(rm_engine_tp_rank_result(m->engine, r, rmsg, sizeof rmsg) == RM_ERR_DEVICE, "rank %d: %s", r, rmsg);
    }
    /* After a timeout the group is not trusted again. */
    t0 = now_s();
    CHECK(rm_score(m, "What is 2+2?", "4", &s) == RM_ERR_DEVICE && strstr(rm_errmsg(m), "failed earlier") &&
              now_s() - t0 < 0.4, "sticky: %s", rm_errmsg(m));
    rm_free(m);
}

/* ------------------------------------------------ threads through the API */

typedef struct thread_arg {
    rm_model *m;
    const convs *c;
    double *out;
    int failed;
} thread_arg;

static void *score_thread(void *p) {
    thread_arg *a = p;
    size_t w = 0;
    char msg[1024];
    for (int rep = 0; rep < 3; rep++)
        if (!score_all(a->m, a->c, rep == 1, a->out, &w, msg, sizeof msg)) a->failed++;
    return NULL;
}

static void test_threads(void) {
    convs c;
    convs_load(&c, fixture("reference/tiny-qwen2-seqcls.reference.jsonl"));
    char dir[4096], msg[1024];
    snprintf(dir, sizeof dir, "%s", fixture("models/tiny-qwen2-seqcls"));
    rm_model *m = load(dir, 2, 2, msg, sizeof msg, NULL);
    if (!m || !c.n) {
        CHECK(0, "load: %s", msg);
        rm_free(m);
        convs_free(&c);
        return;
    }
    double *single = calloc(c.n * 8, sizeof *single);
    size_t w = 0;
    CHECK(score_all(m, &c, 0, single, &w, msg, sizeof msg), "single thread: %s", msg);
    enum { T = 4 };
    pthread_t t[T];
    thread_arg a[T];
    for (int i = 0; i < T; i++) {
        a[i] = (thread_arg){m, &c, calloc(c.n * 8, sizeof(double)), 0};
        pthread_create(&t[i], NULL, score_thread, &a[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < T; i++) {
        CHECK(!a[i].failed, "thread %d: %d calls failed", i, a[i].failed);
        CHECK(memcmp(a[i].out, single, c.n * 8 * sizeof(double)) == 0, "thread %d: scores differ from one thread's", i);
        free(a[i].out);
    }
    free(single);
    rm_free(m);
    convs_free(&c);
}

/* ------------------------------------------------ ranks from the environment */

static const char *env_vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                                 "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof env_vars / sizeof *env_vars; i++) unsetenv(env_vars[i]);
}

static void test_layout(void) {
    clear_env();
    rm_tp_layout L;
    rm_err err = {0};
    CHECK(rm_tp_layout_resolve(&L, 4, -1, 0, -1, &err) == RM_OK && L.world == 1 && L.n_local == 4 && L.first_rank == 0,
          "no launcher: one process, every rank: %s", err.msg);
    setenv("OMPI_COMM_WORLD_RANK", "2", 1), setenv("OMPI_COMM_WORLD_SIZE", "4", 1), setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
    CHECK(rm_tp_layout_resolve(&L, 4, -1, 0, -1, &err) == RM_OK && L.world == 4 && L.first_rank == 2 && L.n_local == 1 &&
              L.local_rank == 0 && !strcmp(L.source, "openmpi"), "openmpi: %s", err.msg);
    setenv("SLURM_PROCID", "3", 1), setenv("SLURM_NTASKS", "4", 1), setenv("SLURM_LOCALID", "1", 1);
    CHECK(rm_tp_layout_resolve(&L, 4, -1, 0, -1, &err) == RM_OK && L.first_rank == 3 && L.local_rank == 1 &&
              !strcmp(L.source, "slurm"), "slurm before openmpi: %s", err.msg);
    setenv("RANK", "1", 1), setenv("WORLD_SIZE", "4", 1), setenv("LOCAL_RANK", "1", 1);
    CHECK(rm_tp_layout_resolve(&L, 4, -1, 0, -1, &err) == RM_OK && L.first_rank == 1 && !strcmp(L.source, "torchrun"),
          "torchrun first: %s", err.msg);
    CHECK(rm_tp_layout_resolve(&L, 4, 3, 4, 0, &err) == RM_OK && L.first_rank == 3 && L.local_rank == 0 &&
              !strcmp(L.source, "rm_params"), "rm_params first: %s", err.msg);
    CHECK(rm_tp_layout_resolve(&L, 2, -1, 0, -1, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "world of 4") &&
              strstr(err.msg, "torchrun"), "world 4 for tp 2: %s", err.msg);
    CHECK(rm_tp_layout_resolve(&L, 2, 0, 1, -1, &err) == RM_OK && L.world == 1 && L.n_local == 2,
          "world size 1 from rm_params overrides the launcher: %s", err.msg);
    setenv("RANK", "x1", 1);
    CHECK(rm_tp_layout_resolve(&L, 4, -1, 0, -1, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "RANK=\"x1\""),
          "malformed: %s", err.msg);
    setenv("RANK", "4", 1);
    CHECK(rm_tp_layout_resolve(&L, 4, -1, 0, -1, &err) == RM_ERR_INVALID_ARG && strstr(err.msg, "rank 4 outside"),
          "rank past the world: %s", err.msg);

    /* Through rm_load on the CPU: WORLD_SIZE=1 works; one process per rank needs NCCL. */
    char dir[4096], msg[1024];
    snprintf(dir, sizeof dir, "%s", fixture("models/tiny-qwen3-seqcls"));
    clear_env();
    setenv("RANK", "0", 1), setenv("WORLD_SIZE", "1", 1), setenv("LOCAL_RANK", "0", 1);
    rm_status st;
    rm_model *m = load(dir, 1, 1, msg, sizeof msg, &st);
    CHECK(m && rm_engine_tp_n_local(m->engine) == 1, "WORLD_SIZE=1, tp 1: %s", msg);
    rm_free(m);
    setenv("RANK", "1", 1), setenv("WORLD_SIZE", "2", 1), setenv("LOCAL_RANK", "1", 1);
    m = load(dir, 2, 1, msg, sizeof msg, &st);
    CHECK(!m && st == RM_ERR_UNSUPPORTED && strstr(msg, "needs NCCL") && strstr(msg, "torchrun"), "CPU, world 2: %s", msg);
    rm_free(m);
    /* tp 0 never reads the environment: a data-parallel job's WORLD_SIZE changes nothing. */
    m = load(dir, 0, 1, msg, sizeof msg, &st);
    CHECK(m != NULL, "tp 0 under WORLD_SIZE=2: %s", msg);
    rm_free(m);
    clear_env();
    rm_params p;
    rm_params_init(&p);
    p.device = RM_DEVICE_CPU;
    p.tp = 2;
    p.tp_timeout_s = -1;
    CHECK(rm_load(dir, &p, &m, msg, sizeof msg) == RM_ERR_INVALID_ARG && strstr(msg, "tp_timeout_s"), "%s", msg);
    p.tp_timeout_s = 0;
    p.tp = -2;
    CHECK(rm_load(dir, &p, &m, msg, sizeof msg) == RM_ERR_INVALID_ARG && strstr(msg, "rm_params.tp"), "%s", msg);
}

/* Which collective the CUDA engine's ranks get (plan.c): the in-process
 * group summing on the device when this process's ranks share one GPU, NCCL
 * when each has its own, a mix refused. No GPU is needed to decide it. */
static void test_cuda_collective(void) {
    struct {
        int tp, world, n_local, tp_asked;
        const int *gpus;
        int want;           /* rm_tp_collective, or -1: refused */
        const char *what;
    } cases[] = {
        {2, 1, 2, 1, (const int[]){0, 0}, RM_TP_COMM_DEVICE_THREADS, "two ranks on GPU 0"},
        {4, 1, 4, 1, (const int[]){3, 3, 3, 3}, RM_TP_COMM_DEVICE_THREADS, "four ranks on GPU 3"},
        {2, 1, 2, 1, NULL, RM_TP_COMM_NCCL, "GPUs 0 and 1 by default"},
        {4, 1, 4, 1, (const int[]){0, 1, 2, 3}, RM_TP_COMM_NCCL, "four GPUs listed"},
        {4, 1, 4, 1, (const int[]){0, 0, 1, 1}, -1, "two GPUs shared by two ranks each"},
        {2, 2, 1, 1, NULL, RM_TP_COMM_NCCL, "one process per rank"},
        {1, 1, 1, 1, NULL, RM_TP_COMM_NCCL, "tp 1 asked for: a one-rank NCCL communicator"},
        {1, 1, 1, 0, NULL, RM_TP_COMM_DEVICE_THREADS, "a tp-1 pack alone: no NCCL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rm_tp_plan plan;
        memset(&plan, 0, sizeof plan);
        plan.layout = (rm_tp_layout){.tp = cases[i].tp, .world = cases[i].world, .n_local = cases[i].n_local,
                                     .first_rank = cases[i].world > 1 ? 1 : 0, .local_rank = 1};
        plan.gpus = cases[i].gpus;
        plan.n_gpus = cases[i].gpus ? (size_t)cases[i].n_local : 0;
        plan.tp_asked = cases[i].tp_asked;
        rm_tp_collective got = (rm_tp_collective)-1;
        rm_err err = {0};
        rm_status st = rm_tp_cuda_collective(&plan, &got, &err);
        if (cases[i].want < 0)
            CHECK(st == RM_ERR_INVALID_ARG && strstr(err.msg, "rm_params.gpus") && strstr(err.msg, "share a GPU"),
                  "%s: refused (%d: %s)", cases[i].what, (int)st, err.msg);
        else
            CHECK(st == RM_OK && (int)got == cases[i].want, "%s: collective %d, expected %d (%s)", cases[i].what,
                  (int)got, cases[i].want, err.msg);
    }
}

int main(void) {
    unsigned long long seed = test_seed();
    if (access(fixture("models/tiny-llama3-causal/config.json"), R_OK) != 0)
        return test_skip("test_tp", 1, "no fixtures in ../shared/fixtures");
    snprintf(tmp_root, sizeof tmp_root, "%s/nimreward-test-tp-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    mkdir(tmp_root, 0755);
    test_rule();
    test_layout();
    test_cuda_collective();
    test_slices();
    test_fixture_models();
    test_synthetic(seed);
    test_api_scores();
    test_failures();
    test_threads();
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary("test_tp");
}
