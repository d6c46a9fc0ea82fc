/*
 * test_loader.c - safetensors parsing, model directories (single file and
 * sharded), binding to the architecture, fp32 conversion; every kind of bad
 * input with its own status and a message naming the file, tensor or field;
 * allocation-failure sweeps and a seeded mutation fuzz of the header parser.
 */
#define _GNU_SOURCE
#include "config.h"
#include "st_writer.h"
#include "test.h"
#include "weights.h"

#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static char tmp_root[4096];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* A fresh empty directory under the test's temporary root. */
static const char *new_dir(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    mkdir(path, 0700);
    return path;
}

static char *path_in(const char *dir, const char *file) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return path;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Opens dir's weights expecting failure `want`, with each substring in the message. */
static void expect_open_fail(const char *what, const char *dir, rm_status want, const char *s1, const char *s2) {
    rm_weights *w = NULL;
    rm_err e = {0};
    rm_status st = rm_weights_open(&w, dir, &e);
    CHECK(st == want, "%s: status %d, want %d: %s", what, st, want, e.msg);
    CHECK(w == NULL || st == RM_OK, "%s: handle set on failure", what);
    if (s1) CHECK(strstr(e.msg, s1) != NULL, "%s: message lacks \"%s\": %s", what, s1, e.msg);
    if (s2) CHECK(strstr(e.msg, s2) != NULL, "%s: message lacks \"%s\": %s", what, s2, e.msg);
    rm_weights_close(w);
}

/* The header padded with spaces to a multiple of 8, as safetensors writes it
 * (so the data section starts aligned). Static buffer, one at a time. */
static const char *pad8(const char *header) {
    static char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf - 8, "%s", header);
    while (n % 8) buf[n++] = ' ';
    buf[n] = 0;
    return buf;
}

/* Writes dir/model.safetensors from a header and `data_len` bytes of 0x3c. */
static void raw_model(const char *dir, const char *header, size_t data_len) {
    unsigned char *data = malloc(data_len + 1);
    memset(data, 0x3c, data_len);
    header = pad8(header);
    if (st_write_raw(path_in(dir, "model.safetensors"), header, strlen(header), data, data_len) != 0)
        fprintf(stderr, "cannot write %s\n", path_in(dir, "model.safetensors"));
    free(data);
}

/* Parses an in-memory header as given (8-aligned buffer) expecting `want`. */
static void expect_parse_raw(const char *what, const char *header, size_t data_len, rm_status want, const char *s1,
                             const char *s2) {
    size_t hl = strlen(header), len = 8 + hl + data_len;
    uint64_t *buf = calloc(len / 8 + 2, 8);    /* uint64_t: an aligned base, like a mapping */
    unsigned char *b = (unsigned char *)buf;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    rm_st_file *f = NULL;
    rm_err e = {0};
    rm_status st = rm_st_parse(&f, b, len, "mem.safetensors", &e);
    CHECK(st == want, "%s: status %d, want %d: %s", what, st, want, e.msg);
    if (st != RM_OK) {
        CHECK(f == NULL, "%s: file set on failure", what);
        CHECK(strstr(e.msg, "mem.safetensors") != NULL, "%s: message does not name the file: %s", what, e.msg);
    }
    if (s1) CHECK(strstr(e.msg, s1) != NULL, "%s: message lacks \"%s\": %s", what, s1, e.msg);
    if (s2) CHECK(strstr(e.msg, s2) != NULL, "%s: message lacks \"%s\": %s", what, s2, e.msg);
    rm_st_free(f);
    free(buf);
}

static void expect_parse(const char *what, const char *header, size_t data_len, rm_status want, const char *s1,
                         const char *s2) {
    expect_parse_raw(what, pad8(header), data_len, want, s1, s2);
}

/* Loads config + weights + binding of dir. Returns 0 on success. */
typedef struct loaded {
    rm_config cfg;
    rm_weights *w;
    rm_model_weights mw;
} loaded;

static rm_status load_dir(loaded *m, const char *dir, rm_err *e) {
    memset(m, 0, sizeof *m);
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    rm_status st = rm_config_load(&m->cfg, cfg_path, e);
    if (st != RM_OK) return st;
    if ((st = rm_weights_open(&m->w, dir, e)) != RM_OK) {
        rm_config_free(&m->cfg);
        return st;
    }
    if ((st = rm_model_weights_bind(&m->mw, m->w, &m->cfg, e)) != RM_OK) {
        rm_weights_close(m->w);
        rm_config_free(&m->cfg);
        m->w = NULL;
    }
    return st;
}

static void unload(loaded *m) {
    rm_model_weights_free(&m->mw);
    rm_weights_close(m->w);
    rm_config_free(&m->cfg);
}

/* ------------------------------------------------------------ fixtures */

/* Decodes element `idx` of tensor `name` in a bf16 safetensors file by reading
 * the bytes directly (stdio + jansson), independent of the library. */
static int independent_bf16(const char *path, const char *name, int64_t idx, float *out) {
    size_t len;
    unsigned char *b = read_all(path, &len);
    if (!b || len < 8) { free(b); return -1; }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    json_t *h = json_loadb((const char *)b + 8, (size_t)n, 0, NULL);
    json_t *t = h ? json_object_get(h, name) : NULL;
    int rc = -1;
    if (t && strcmp(json_string_value(json_object_get(t, "dtype")), "BF16") == 0) {
        json_int_t begin = json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
        size_t at = 8 + (size_t)n + (size_t)begin + 2 * (size_t)idx;
        uint32_t u = (uint32_t)(b[at] | (b[at + 1] << 8)) << 16;
        memcpy(out, &u, 4);
        rc = 0;
    }
    json_decref(h);
    free(b);
    return rc;
}

static void spot_check(const char *model, const rm_weights *w, const char *name, int64_t row, int64_t col) {
    const rm_tensor *t = rm_weights_find(w, name);
    CHECK(t != NULL, "%s: %s not found", model, name);
    if (!t) return;
    int64_t row_len = t->n_dims == 2 ? t->shape[1] : t->shape[0];
    float *rowv = malloc((size_t)row_len * sizeof(float)), want = 0;
    rm_tensor_rows_f32(t, row, 1, rowv);
    int rc = independent_bf16(rm_weights_shard_file(w, t->shard), name, row * row_len + col, &want);
    CHECK(rc == 0 && rowv[col] == want, "%s: %s[%lld][%lld] = %g, bytes say %g", model, name, (long long)row,
          (long long)col, rowv[col], want);
    CHECK(rowv[col] != 0.0f, "%s: %s[%lld][%lld] is 0 (random weights should not be)", model, name, (long long)row,
          (long long)col);
    free(rowv);
}

static void test_fixture_models(void) {
    const char *names[] = {"tiny-llama3-seqcls", "tiny-llama3-causal", "tiny-qwen3-seqcls", "tiny-qwen2-seqcls"};
    for (int m = 0; m < 4; m++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/models/%s", test_fixtures(), names[m]);
        loaded L;
        rm_err e = {0};
        rm_status st = load_dir(&L, dir, &e);
        CHECK(st == RM_OK, "%s: %s", names[m], e.msg);
        if (st != RM_OK) continue;
        const rm_config *c = &L.cfg;
        const rm_model_weights *mw = &L.mw;
        CHECK(mw->n_layers == c->n_layers && mw->embed && mw->final_norm && mw->layers, "%s: bound", names[m]);
        CHECK(mw->embed->shape[0] == 128256 && mw->embed->shape[1] == 32, "%s: embed shape", names[m]);
        for (int64_t i = 0; i < mw->n_layers; i++) {
            const rm_layer_weights *l = &mw->layers[i];
            CHECK(l->attn_norm && l->wq && l->wk && l->wv && l->wo && l->mlp_norm && l->w_gate && l->w_up && l->w_down,
                  "%s: layer %lld incomplete", names[m], (long long)i);
            CHECK(!l->bo && !l->b_gate && !l->b_up && !l->b_down, "%s: unexpected biases", names[m]);
            CHECK(!!l->bq == !!c->qkv_bias && !!l->bk == !!c->qkv_bias && !!l->bv == !!c->qkv_bias,
                  "%s: qkv bias binding", names[m]);
            CHECK(!!l->q_norm == !!c->qk_norm && !!l->k_norm == !!c->qk_norm, "%s: qk norm binding", names[m]);
        }
        size_t file_bytes = 0;
        for (int s = 0; s < rm_weights_n_shards(L.w); s++) {
            struct stat sb;
            if (stat(rm_weights_shard_file(L.w, s), &sb) == 0) file_bytes += (size_t)sb.st_size;
        }
        CHECK(rm_weights_bytes_mapped(L.w) == file_bytes && file_bytes > 8000000, "%s: bytes mapped %zu vs %zu",
              names[m], rm_weights_bytes_mapped(L.w), file_bytes);
        switch (m) {
        case 0: /* llama3 seqcls: 5 labels, head_dim 16, GQA 2:1 */
            CHECK(mw->score && mw->score->shape[0] == 5 && !mw->lm_head, "llama3-seqcls head");
            CHECK(mw->layers[0].wq->shape[0] == 32 && mw->layers[0].wk->shape[0] == 16, "llama3-seqcls q/k rows");
            CHECK(rm_weights_n_shards(L.w) == 1, "single file");
            spot_check(names[m], L.w, "score.weight", 4, 31);
            spot_check(names[m], L.w, "model.embed_tokens.weight", 128255, 7);
            break;
        case 1: /* causal: three shards, untied lm_head */
            CHECK(rm_weights_n_shards(L.w) == 3, "causal shards %d", rm_weights_n_shards(L.w));
            CHECK(mw->lm_head && mw->lm_head != mw->embed && !mw->score, "causal lm_head untied");
            CHECK(mw->lm_head->shard == 1 && mw->embed->shard == 0 && mw->final_norm->shard == 2,
                  "causal shards of tensors %d %d %d", mw->lm_head->shard, mw->embed->shard, mw->final_norm->shard);
            CHECK(strstr(rm_weights_shard_file(L.w, 1), "model-00002-of-00003.safetensors") != NULL, "shard name");
            spot_check(names[m], L.w, "lm_head.weight", 9642, 3);
            spot_check(names[m], L.w, "model.layers.2.mlp.down_proj.weight", 31, 63);
            break;
        case 2: /* qwen3: q_norm, head_dim 16 with 4 heads and hidden 32; tied but classification */
            CHECK(mw->layers[1].q_norm && mw->layers[1].q_norm->shape[0] == 16, "qwen3 q_norm");
            CHECK(mw->layers[0].wq->shape[0] == 64 && mw->layers[0].wo->shape[1] == 64, "qwen3 wide q");
            CHECK(mw->score && mw->score->shape[0] == 1 && !mw->lm_head, "qwen3 head");
            spot_check(names[m], L.w, "model.layers.1.self_attn.k_norm.weight", 0, 15);
            break;
        case 3: /* qwen2: q/k/v biases */
            CHECK(mw->layers[1].bq && mw->layers[1].bq->shape[0] == 32 && mw->layers[1].bv->shape[0] == 16, "qwen2 bias");
            CHECK(mw->score && mw->score->shape[0] == 2, "qwen2 head");
            spot_check(names[m], L.w, "model.layers.0.self_attn.q_proj.bias", 0, 5);
            spot_check(names[m], L.w, "model.norm.weight", 0, 0);
            break;
        }
        unload(&L);
    }
}

/* ------------------------------------------------------------ written models */

/* Every element of every tensor as rm_tensor_rows_f32 gives it, against the writer's formula. */
static void check_values(const char *what, const st_spec *s, const rm_weights *w) {
    int n;
    st_tdesc *t = st_model_tensors(s, &n);
    int bad = 0;
    for (int k = 0; k < n && bad < 5; k++) {
        const rm_tensor *rt = rm_weights_find(w, t[k].name);
        if (!rt) { bad++; CHECK(0, "%s: %s missing", what, t[k].name); continue; }
        int64_t numel = st_numel(&t[k]), rows = t[k].n_dims == 2 ? t[k].shape[0] : 1;
        float *buf = malloc((size_t)numel * sizeof(float) + 4);
        rm_tensor_rows_f32(rt, 0, rows, buf);
        for (int64_t i = 0; i < numel; i++) {
            float want = st_round(s->dtype, st_value(s, &t[k], i));
            if (buf[i] != want) {
                if (bad++ < 5) fprintf(stderr, "%s: %s[%lld] = %.9g, want %.9g\n", what, t[k].name, (long long)i, buf[i], want);
                break;
            }
        }
        /* A slice of rows lands where the full read put it. */
        if (rows > 3) {
            int64_t rl = numel / rows;
            float *part = malloc((size_t)(2 * rl) * sizeof(float));
            rm_tensor_rows_f32(rt, 2, 2, part);
            if (memcmp(part, buf + 2 * rl, (size_t)(2 * rl) * sizeof(float)) != 0) bad++;
            free(part);
        }
        free(buf);
    }
    CHECK(bad == 0, "%s: %d tensors with wrong values", what, bad);
    free(t);
}

static void written_case(const char *name, const st_spec *s) {
    const char *dir = new_dir(name);
    CHECK(st_write_model(dir, s) == 0, "%s: write", name);
    loaded L;
    rm_err e = {0};
    rm_status st = load_dir(&L, dir, &e);
    CHECK(st == RM_OK, "%s: %s", name, e.msg);
    if (st != RM_OK) return;
    rm_st_dtype want = !strcmp(s->dtype, "F32") ? RM_DT_F32 : !strcmp(s->dtype, "F16") ? RM_DT_F16 : RM_DT_BF16;
    CHECK(L.mw.embed->dtype == want && L.mw.layers[0].wq->dtype == want, "%s: dtype", name);
    CHECK(rm_weights_n_shards(L.w) == (s->n_shards > 1 ? s->n_shards : 1), "%s: %d shards", name,
          rm_weights_n_shards(L.w));
    int causal = strstr(s->arch, "Causal") != NULL;
    if (causal && s->tie_embeddings) CHECK(L.mw.lm_head == L.mw.embed, "%s: tied lm_head is the embedding", name);
    if (causal && !s->tie_embeddings) CHECK(L.mw.lm_head && L.mw.lm_head != L.mw.embed, "%s: untied lm_head", name);
    if (!causal) CHECK(L.mw.score && L.mw.score->shape[0] == s->n_labels && !L.mw.lm_head, "%s: score head", name);
    if (s->attention_bias) CHECK(L.mw.layers[0].bo && L.mw.layers[1].bq, "%s: attention biases", name);
    if (s->mlp_bias) CHECK(L.mw.layers[1].b_down && L.mw.layers[1].b_gate, "%s: mlp biases", name);
    if (s->labels) CHECK(strcmp(L.cfg.labels[s->n_labels - 1], s->labels[s->n_labels - 1]) == 0, "%s: labels", name);
    check_values(name, s, L.w);
    unload(&L);
}

static void test_written_models(void) {
    static const char *const labels[] = {"helpful", "harmless \"quoted\"", "honest"};
    st_spec s = st_spec_default("LlamaForSequenceClassification");
    s.n_labels = 3;
    s.labels = labels;
    s.rope_llama3 = 1;
    s.new_layout = 1;
    written_case("llama-seqcls-bf16", &s);

    s = st_spec_default("LlamaForCausalLM");
    s.dtype = "F16";
    s.tie_embeddings = 1;
    s.n_shards = 3;
    written_case("llama-causal-f16-tied-sharded", &s);

    s = st_spec_default("LlamaForCausalLM");
    s.dtype = "F32";
    s.attention_bias = 1;
    s.mlp_bias = 1;
    s.n_layers = 3;
    written_case("llama-causal-f32-biases", &s);

    /* Tied with an lm_head copy saved anyway: transformers computes with the embedding. */
    s = st_spec_default("LlamaForCausalLM");
    s.tie_embeddings = 1;
    s.write_tied_lm_head = 1;
    written_case("llama-causal-tied-with-copy", &s);

    s = st_spec_default("Qwen2ForSequenceClassification");
    s.dtype = "F16";
    s.n_shards = 2;
    written_case("qwen2-f16-sharded", &s);

    s = st_spec_default("Qwen3ForSequenceClassification");
    s.dtype = "F32";
    s.head_dim = 16;
    s.new_layout = 1;
    s.n_labels = 1;
    s.tie_embeddings = 1;
    written_case("qwen3-f32", &s);

    /* Every f16 bit pattern through the conversion (F16C or fallback path),
     * against the writer's own decoder: subnormals, inf, nan, -0 included. */
    const char *dir = new_dir("f16-all");
    uint16_t *h = malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    const char *hdr = pad8("{\"x\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,131072]}}");
    CHECK(st_write_raw(path_in(dir, "model.safetensors"), hdr, strlen(hdr), h, 131072) == 0, "write");
    rm_weights *w = NULL;
    rm_err e = {0};
    if (rm_weights_open(&w, dir, &e) == RM_OK) {
        float *out = malloc(65536 * sizeof(float));
        rm_tensor_rows_f32(rm_weights_find(w, "x"), 0, 256, out);
        int bad = 0, bad_common = 0;
        for (uint32_t i = 0; i < 65536; i++) {
            float want = st_f16_bits_to_f32(h[i]), alt = rm_f16_to_f32(h[i]);
            if (isnan(want)) {
                bad += !isnan(out[i]);
                bad_common += !isnan(alt);
            } else {
                bad += memcmp(&want, &out[i], 4) != 0;
                bad_common += memcmp(&want, &alt, 4) != 0;
            }
        }
        CHECK(bad == 0 && bad_common == 0, "f16: %d patterns wrong in rows_f32, %d in rm_f16_to_f32", bad, bad_common);
        CHECK(out[1] == 5.9604644775390625e-08f && out[0x3c00] == 1.0f && isinf(out[0x7c00]) && out[0x7bff] == 65504.0f,
              "f16 landmarks");
        free(out);
        rm_weights_close(w);
    } else {
        CHECK(0, "f16-all: %s", e.msg);
    }
    free(h);

    /* The writer's f16 encoder rounds to nearest even at the edges. */
    CHECK(st_f32_to_f16_bits(65504.0f) == 0x7bff && st_f32_to_f16_bits(65520.0f) == 0x7c00 &&
              st_f32_to_f16_bits(65519.0f) == 0x7bff && st_f32_to_f16_bits(1.0f + 0x1p-11f) == 0x3c00 &&
              st_f32_to_f16_bits(1.0f + 0x1.8p-11f) == 0x3c01 &&
              st_f32_to_f16_bits(1.0f + 0x1.8p-10f) == 0x3c02 && st_f32_to_f16_bits(0x1p-25f) == 0 &&
              st_f32_to_f16_bits(0x1.8p-25f) == 1 && st_f32_to_f16_bits(-0x1p-14f) == 0x8400 &&
              st_f32_to_f16_bits(0x1.ffcp-15f) == 0x0400,
          "f16 encoder edges");
}

/* ------------------------------------------------------------ bad inputs */

static void test_bad_files(void) {
    rm_err e = {0};
    rm_config c;
    const char *dir = new_dir("empty");
    CHECK(rm_config_load(&c, path_in(dir, "config.json"), &e) == RM_ERR_IO && strstr(e.msg, "config.json"),
          "missing config.json: %s", e.msg);
    expect_open_fail("missing safetensors", dir, RM_ERR_IO, "model.safetensors", "empty");

    /* A good small file to cut. */
    st_spec s = st_spec_default("LlamaForSequenceClassification");
    const char *good = new_dir("good");
    st_write_model(good, &s);
    size_t len;
    unsigned char *b = read_all(path_in(good, "model.safetensors"), &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    FILE *f;

    dir = new_dir("cut-5");
    f = fopen(path_in(dir, "model.safetensors"), "wb"); fwrite(b, 1, 5, f); fclose(f);
    expect_open_fail("cut to 5 bytes", dir, RM_ERR_FORMAT, "model.safetensors", "truncated");

    dir = new_dir("cut-header");
    f = fopen(path_in(dir, "model.safetensors"), "wb"); fwrite(b, 1, 8 + n / 2, f); fclose(f);
    expect_open_fail("header cut", dir, RM_ERR_FORMAT, "cut-header/model.safetensors", "past the end");

    dir = new_dir("cut-data");
    f = fopen(path_in(dir, "model.safetensors"), "wb"); fwrite(b, 1, len - 10, f); fclose(f);
    expect_open_fail("data cut", dir, RM_ERR_FORMAT, "cut-data/model.safetensors", "score.weight");

    dir = new_dir("len-outside");
    {
        uint64_t big = len - 7;     /* one byte more than the file holds */
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)(big >> (8 * i));
        f = fopen(path_in(dir, "model.safetensors"), "wb"); fwrite(b, 1, len, f); fclose(f);
        expect_open_fail("header length outside", dir, RM_ERR_FORMAT, "len-outside/model.safetensors", "past the end");
        big = 1ULL << 63;
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)(big >> (8 * i));
        f = fopen(path_in(dir, "model.safetensors"), "wb"); fwrite(b, 1, len, f); fclose(f);
        expect_open_fail("header length 2^63", dir, RM_ERR_FORMAT, "9223372036854775808", "model.safetensors");
    }
    free(b);

    /* A header past the bound in a file big enough to hold it (sparse: costs no disk). */
    dir = new_dir("huge-header");
    {
        uint64_t hl = 100000001;
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
        f = fopen(path_in(dir, "model.safetensors"), "wb");
        fwrite(len8, 1, 8, f);
        fputc('{', f);
        CHECK(ftruncate(fileno(f), (off_t)(8 + hl + 16)) == 0, "ftruncate");
        fclose(f);
        expect_open_fail("huge header", dir, RM_ERR_LIMIT, "100000001", "huge-header/model.safetensors");
    }

    dir = new_dir("offsets-outside");
    raw_model(dir, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
    expect_open_fail("offsets outside", dir, RM_ERR_FORMAT, "a.weight", "outside the data section");

    dir = new_dir("overlap");
    raw_model(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_open_fail("overlap", dir, RM_ERR_FORMAT, "overlap", "\"b\"");

    dir = new_dir("size-mismatch");
    raw_model(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,6]}}", 8);
    expect_open_fail("end-begin != numel*size", dir, RM_ERR_FORMAT, "\"a\"", "need 8");

    dir = new_dir("dtype-i64");
    raw_model(dir, "{\"pos.ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("dtype I64", dir, RM_ERR_UNSUPPORTED, "pos.ids", "I64");
    dir = new_dir("dtype-unknown");
    raw_model(dir, "{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("dtype unknown", dir, RM_ERR_UNSUPPORTED, "\"a\"", "Q4_K");

    /* In-memory headers: each rule of the format. */
    expect_parse("valid with metadata, scalar, empty tensor",
                 "{\"__metadata__\":{\"format\":\"pt\"},\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                 "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                 "\"t\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}}    ",
                 8, RM_OK, NULL, NULL);
    expect_parse("not an object", "[1,2,3]", 0, RM_ERR_FORMAT, "JSON object", NULL);
    expect_parse("bad JSON", "{\"a\": {", 0, RM_ERR_FORMAT, "invalid", NULL);
    expect_parse("trailing garbage", "{} x", 0, RM_ERR_FORMAT, NULL, NULL);
    expect_parse("duplicate names",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, RM_ERR_FORMAT, "duplicate", NULL);
    expect_parse("metadata not strings", "{\"__metadata__\":{\"n\":5}}", 0, RM_ERR_FORMAT, "__metadata__", NULL);
    expect_parse("entry not object", "{\"a\":5}", 0, RM_ERR_FORMAT, "\"a\"", NULL);
    expect_parse("no dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, RM_ERR_FORMAT, "dtype", NULL);
    expect_parse("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, RM_ERR_FORMAT,
                 "shape[0]", NULL);
    expect_parse("string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,4]}}", 4, RM_ERR_FORMAT,
                 "shape[0]", NULL);
    expect_parse("five dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                 RM_ERR_UNSUPPORTED, "dimensions", NULL);
    expect_parse("numel overflow",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
                 RM_ERR_FORMAT, "overflow", NULL);
    expect_parse("bytes overflow",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
                 RM_ERR_FORMAT, "overflow", NULL);
    expect_parse("begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, RM_ERR_FORMAT,
                 "outside", NULL);
    expect_parse("offsets too big for int64",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4, RM_ERR_FORMAT,
                 "too big", NULL);
    expect_parse("offsets three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                 RM_ERR_FORMAT, "data_offsets", NULL);
    expect_parse("overlap contained",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                 "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}      ", 16, RM_ERR_FORMAT, "overlap",
                 NULL);
    /* An unpadded header (pre-0.3 safetensors) leaves tensors misaligned: refused, not read unaligned. */
    expect_parse("misaligned", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}    ", 8,
                 RM_ERR_UNSUPPORTED, "not aligned", "\"a\"");
    expect_parse_raw("misaligned by the header", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
                 RM_ERR_UNSUPPORTED, "not aligned", NULL);
    expect_parse("header length 1", "{", 0, RM_ERR_FORMAT, NULL, NULL);
}

static void test_bad_directories(void) {
    /* Shape mismatch: the config says hidden 64, the weights are 32 wide. */
    st_spec s = st_spec_default("LlamaForSequenceClassification");
    const char *dir = new_dir("shape-mismatch");
    st_write_model(dir, &s);
    s.hidden = 64;
    st_write_config(dir, &s);
    loaded L;
    rm_err e = {0};
    rm_status st = load_dir(&L, dir, &e);
    CHECK(st == RM_ERR_SHAPE, "hidden changed: status %d: %s", st, e.msg);
    CHECK(strstr(e.msg, "model.embed_tokens.weight") && strstr(e.msg, "[96, 64]") && strstr(e.msg, "[96, 32]") &&
              strstr(e.msg, "model.safetensors"),
          "hidden changed: message %s", e.msg);
    if (st == RM_OK) unload(&L);

    s = st_spec_default("LlamaForSequenceClassification");
    dir = new_dir("ffn-mismatch");
    st_write_model(dir, &s);
    s.ffn = 40;
    st_write_config(dir, &s);
    st = load_dir(&L, dir, &e);
    CHECK(st == RM_ERR_SHAPE && strstr(e.msg, "model.layers.0.mlp.gate_proj.weight") && strstr(e.msg, "[40, 32]") &&
              strstr(e.msg, "[48, 32]"),
          "ffn changed: %d %s", st, e.msg);
    if (st == RM_OK) unload(&L);

    s = st_spec_default("LlamaForSequenceClassification");
    dir = new_dir("labels-mismatch");
    st_write_model(dir, &s);
    s.n_labels = 3;
    st_write_config(dir, &s);
    st = load_dir(&L, dir, &e);
    CHECK(st == RM_ERR_SHAPE && strstr(e.msg, "score.weight"), "labels changed: %d %s", st, e.msg);
    if (st == RM_OK) unload(&L);

    /* A Qwen2 config over Llama weights: the q bias is missing. */
    s = st_spec_default("LlamaForSequenceClassification");
    dir = new_dir("missing-bias");
    st_write_model(dir, &s);
    s.arch = "Qwen2ForSequenceClassification";
    st_write_config(dir, &s);
    st = load_dir(&L, dir, &e);
    CHECK(st == RM_ERR_FORMAT && strstr(e.msg, "model.layers.0.self_attn.q_proj.bias") && strstr(e.msg, "missing") &&
              strstr(e.msg, "missing-bias"),
          "missing tensor: %d %s", st, e.msg);
    if (st == RM_OK) unload(&L);

    /* Causal without lm_head and not tied. */
    s = st_spec_default("LlamaForCausalLM");
    s.tie_embeddings = 1;
    dir = new_dir("missing-lm-head");
    st_write_model(dir, &s);
    s.tie_embeddings = 0;
    st_write_config(dir, &s);
    st = load_dir(&L, dir, &e);
    CHECK(st == RM_ERR_FORMAT && strstr(e.msg, "lm_head.weight"), "missing lm_head: %d %s", st, e.msg);
    if (st == RM_OK) unload(&L);

    dir = new_dir("gelu");
    s = st_spec_default("LlamaForSequenceClassification");
    st_write_model(dir, &s);
    write_text(path_in(dir, "config.json"),
               "{\"architectures\": [\"LlamaForSequenceClassification\"], \"hidden_act\": \"gelu\", \"hidden_size\": 32,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"intermediate_size\": 48, \"vocab_size\": 96}");
    st = load_dir(&L, dir, &e);
    CHECK(st == RM_ERR_UNSUPPORTED && strstr(e.msg, "gelu") && strstr(e.msg, "gelu/config.json"), "gelu: %s", e.msg);
    write_text(path_in(dir, "config.json"),
               "{\"architectures\": [\"GPT2LMHeadModel\"], \"hidden_size\": 32, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"intermediate_size\": 48, \"vocab_size\": 96}");
    st = load_dir(&L, dir, &e);
    CHECK(st == RM_ERR_UNSUPPORTED && strstr(e.msg, "GPT2LMHeadModel") && strstr(e.msg, "gelu/config.json"),
          "unknown arch: %s", e.msg);

    /* Index problems. */
    s = st_spec_default("LlamaForCausalLM");
    s.n_shards = 2;
    const char *bad_names[] = {"../../etc/passwd", "/etc/passwd", "sub/model.safetensors", "a\\b.safetensors", "..",
                               ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "traversal-%zu", i);
        dir = new_dir(name);
        st_write_model(dir, &s);
        char idx[1024];
        json_t *o = json_pack("{s:{s:s,s:s}}", "weight_map", "model.norm.weight", "model-00001-of-00002.safetensors",
                              "lm_head.weight", bad_names[i]);
        char *txt = json_dumps(o, 0);
        snprintf(idx, sizeof idx, "%s", txt);
        free(txt);
        json_decref(o);
        write_text(path_in(dir, "model.safetensors.index.json"), idx);
        char what[128];
        snprintf(what, sizeof what, "shard name \"%s\"", bad_names[i]);
        expect_open_fail(what, dir, RM_ERR_FORMAT, "outside the model directory", "model.safetensors.index.json");
    }

    dir = new_dir("ghost");
    st_write_model(dir, &s);
    {
        size_t len;
        char *txt = (char *)read_all(path_in(dir, "model.safetensors.index.json"), &len);
        txt[len] = 0;
        char *p = strstr(txt, "\"weight_map\": {");
        char *out = malloc(len + 200);
        size_t head = (size_t)(p - txt) + strlen("\"weight_map\": {");
        memcpy(out, txt, head);
        sprintf(out + head, "\"ghost.weight\": \"model-00002-of-00002.safetensors\",%s", txt + head);
        write_text(path_in(dir, "model.safetensors.index.json"), out);
        free(out);
        free(txt);
    }
    expect_open_fail("index names a tensor its shard lacks", dir, RM_ERR_FORMAT, "ghost.weight",
                     "model-00002-of-00002.safetensors");

    dir = new_dir("missing-shard");
    st_write_model(dir, &s);
    remove(path_in(dir, "model-00002-of-00002.safetensors"));
    expect_open_fail("missing shard", dir, RM_ERR_IO, "missing-shard/model-00002-of-00002.safetensors", NULL);

    dir = new_dir("wrong-shard");
    st_write_model(dir, &s);
    {
        size_t len;
        char *txt = (char *)read_all(path_in(dir, "model.safetensors.index.json"), &len);
        txt[len] = 0;
        /* model.norm.weight is in shard 2; claim shard 1. */
        char *p = strstr(txt, "\"model.norm.weight\": \"model-00002");
        if (p) p[strlen("\"model.norm.weight\": \"model-0000")] = '1';
        write_text(path_in(dir, "model.safetensors.index.json"), txt);
        free(txt);
    }
    expect_open_fail("tensor in another shard than the index says", dir, RM_ERR_FORMAT, "model.norm.weight",
                     "found in model-00002-of-00002.safetensors");

    dir = new_dir("dup-across");
    {
        const char *h = pad8("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
        float v[2] = {1, 2};
        st_write_raw(path_in(dir, "a.safetensors"), h, strlen(h), v, 8);
        st_write_raw(path_in(dir, "b.safetensors"), h, strlen(h), v, 8);
        write_text(path_in(dir, "model.safetensors.index.json"), "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\"}}");
    }
    expect_open_fail("tensor in two files", dir, RM_ERR_FORMAT, "\"x\"", "present in both");

    dir = new_dir("bad-index");
    write_text(path_in(dir, "model.safetensors.index.json"), "{\"weight_map\": [1]}");
    expect_open_fail("weight_map not an object", dir, RM_ERR_FORMAT, "weight_map", "index.json");
    write_text(path_in(dir, "model.safetensors.index.json"), "{\"weight_map\": {\"x\": 5}}");
    expect_open_fail("weight_map value not a string", dir, RM_ERR_FORMAT, "\"x\"", "index.json");
    write_text(path_in(dir, "model.safetensors.index.json"), "{\"weight_map\": {}}");
    expect_open_fail("weight_map empty", dir, RM_ERR_FORMAT, "empty", NULL);
    write_text(path_in(dir, "model.safetensors.index.json"), "{\"weight_map\": {");
    expect_open_fail("index bad JSON", dir, RM_ERR_FORMAT, "index.json", NULL);
}

/* ------------------------------------------------------------ robustness */

/* Fails each allocation in turn: NOMEM every time, and no leak (ASan). */
static void sweep(const char *what, const char *dir) {
    int bad = 0, points = 0;
    for (int64_t k = 0; k < 100000; k++) {
        loaded L;
        rm_err e = {0};
        rm_alloc_fail_after(k);
        rm_status st = load_dir(&L, dir, &e);
        rm_alloc_fail_after(-1);
        if (st == RM_OK) {
            unload(&L);
            break;
        }
        points++;
        if (st != RM_ERR_NOMEM && bad++ < 3) fprintf(stderr, "%s: failure %lld: %d %s\n", what, (long long)k, st, e.msg);
    }
    CHECK(points > 10 && bad == 0, "%s: %d of %d allocation failures not reported as NOMEM", what, bad, points);
}

/* Random byte edits of a valid small file: the parser refuses or accepts, and
 * when it accepts every tensor lies inside the buffer (read it all; ASan watches). */
static void fuzz(unsigned long long seed) {
    st_spec s = st_spec_default("Qwen3ForSequenceClassification");
    s.hidden = 8; s.n_heads = 2; s.n_kv_heads = 1; s.ffn = 8; s.vocab = 4; s.n_layers = 1;
    const char *dir = new_dir("fuzz");
    st_write_model(dir, &s);
    size_t len;
    unsigned char *orig = read_all(path_in(dir, "model.safetensors"), &len);
    int iters = getenv("RM_QUICK") && !strcmp(getenv("RM_QUICK"), "1") ? 2000 : 20000, accepted = 0;
    uint64_t r = seed;
    for (int it = 0; it < iters; it++) {
        size_t cut = len;
        uint64_t *mem = malloc(len + 8);
        unsigned char *b = (unsigned char *)mem;
        memcpy(b, orig, len);
        int edits = 1 + (int)((r = st_mix64(r)) % 4);
        for (int k = 0; k < edits; k++) {
            r = st_mix64(r);
            size_t at = (r >> 8) % (len < 700 ? len : 700);     /* mostly the header */
            const char digits[] = "0123456789,[]{}\":-eE ";
            b[at] = (r & 1) ? (unsigned char)(r >> 32) : (unsigned char)digits[(r >> 40) % (sizeof digits - 1)];
        }
        if (((r = st_mix64(r)) & 7) == 0) cut = (size_t)((r >> 8) % len);
        rm_st_file *f = NULL;
        rm_err e;
        if (rm_st_parse(&f, b, cut, "fuzz", &e) == RM_OK) {
            accepted++;
            for (size_t i = 0; i < rm_st_count(f); i++) {
                const rm_tensor *t = rm_st_tensor(f, i);
                const unsigned char *p = t->data;
                if (p < b || p + t->n_bytes > b + cut) { CHECK(0, "fuzz %d: tensor outside buffer", it); break; }
                if (t->n_dims == 2 && t->shape[0] > 0 && rm_tensor_numel(t) < 4096) {
                    float *out = malloc((size_t)rm_tensor_numel(t) * sizeof(float) + 4);
                    rm_tensor_rows_f32(t, 0, t->shape[0], out);
                    free(out);
                }
            }
            rm_st_free(f);
        }
        free(mem);
    }
    CHECK(accepted > 0 && accepted < iters, "fuzz: %d of %d accepted", accepted, iters);
    free(orig);
}

int main(void) {
    unsigned long long seed = test_seed();
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/rm-loader-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 2;
    }
    if (test_have_fixtures()) test_fixture_models();
    else test_skip_fixtures(4);
    test_written_models();
    test_bad_files();
    test_bad_directories();

    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/tiny-llama3-causal", test_fixtures());
    if (test_have_fixtures()) sweep("causal fixture", dir);
    else test_skip_fixtures(1);
    st_spec s = st_spec_default("Qwen2ForSequenceClassification");
    s.n_shards = 3;
    s.n_layers = 1;
    const char *d = new_dir("sweep-qwen2");
    st_write_model(d, &s);
    sweep("sharded qwen2", d);
    fuzz(seed);

    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary("test_loader");
}
