/*
 * test_limits.c - the resource bounds that protect a caller from a hostile
 * checkpoint or input, checked through the public API where one reaches them
 * and by their error TEXT (docs/security.md lists them):
 *   - shard names in model.safetensors.index.json stay inside the directory;
 *   - safetensors header length (2^63, just past the file, past the bound);
 *   - file-size bounds on config.json, tokenizer.json, the index (sparse files:
 *     no gigabytes written), refused before any allocation of that size;
 *   - string and count bounds inside the JSON files, JSON nesting depth;
 *   - chat-template steps, recursion and output size;
 *   - inputs longer than the model's context.
 * "Refused before any allocation" is checked with the allocation hook: with
 * every allocation failing, the refusal must still be the bound's own error,
 * not RM_ERR_NOMEM.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "st_writer.h"
#include "test.h"
#include "tokenizer.h"
#include "weights.h"

/* ------------------------------------------------------------ helpers */

static char root[4096];
static char repo[4096] = ".";

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* A fresh directory under the test's temporary root. */
static const char *new_dir(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, name);
    mkdir(path, 0700);
    return path;
}

static const char *path_in(const char *dir, const char *file) {
    static char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return path;
}

static int write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_text(const char *path, const char *text) { return write_bytes(path, text, strlen(text)); }

/* Writes `prefix` then extends the file to `size` bytes with a hole (no disk used). */
static int write_sparse(const char *path, const char *prefix, size_t prefix_len, off_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    int ok = write(fd, prefix, prefix_len) == (ssize_t)prefix_len && ftruncate(fd, size) == 0;
    return close(fd) == 0 && ok ? 0 : -1;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* The demo model (scripts/make_demo_model.py) written into dir. */
static int make_demo(const char *dir) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "python3 '%s/scripts/make_demo_model.py' '%s' > /dev/null", repo, dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* rm_load into a throwaway model; returns the status, message in msg. */
static rm_status try_load(const char *dir, const rm_params *p, char *msg, size_t n) {
    rm_model *m = NULL;
    msg[0] = 0;
    rm_status st = rm_load(dir, p, &m, msg, n);
    if (st == RM_OK) CHECK(m != NULL, "rm_load OK but no model");
    else CHECK(m == NULL, "rm_load failed but left a model");
    rm_free(m);
    return st;
}

/* ------------------------------------------------------------ checkpoints */

/* A shard name that leaves the model directory is refused by rm_load, named. */
static void test_path_traversal(void) {
    const char *names[] = {"../../etc/passwd", "/etc/passwd"};
    st_spec s = st_spec_default("LlamaForCausalLM");
    s.n_shards = 2;
    for (size_t i = 0; i < 2; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "traversal-%zu", i);
        const char *dir = new_dir(sub);
        CHECK(st_write_model(dir, &s) == 0, "st_write_model %s", dir);
        char idx[512];
        snprintf(idx, sizeof idx,
                 "{\"metadata\": {}, \"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\","
                 " \"lm_head.weight\": \"%s\"}}", names[i]);
        write_text(path_in(dir, "model.safetensors.index.json"), idx);
        char msg[1024];
        rm_status st = try_load(dir, NULL, msg, sizeof msg);
        CHECK(st == RM_ERR_FORMAT, "%s: status %d: %s", names[i], st, msg);
        CHECK(contains(msg, names[i]) && contains(msg, "outside the model directory") &&
              contains(msg, "model.safetensors.index.json"),
              "%s: message: %s", names[i], msg);
    }
}

/* A classification head wider than a head may be (4096 scores) is refused at
 * load, before any score is computed into fixed arrays. */
static void test_too_many_labels(void) {
    st_spec s = st_spec_default("LlamaForSequenceClassification");
    s.vocab = 128256;            /* the fixture tokenizer's */
    s.hidden = 8;
    s.n_heads = 2;
    s.n_kv_heads = 1;
    s.ffn = 8;
    s.n_layers = 1;
    s.n_labels = 5000;
    const char *dir = new_dir("labels-5000");
    CHECK(st_write_model(dir, &s) == 0, "st_write_model %s", dir);
    char tok[PATH_MAX];
    CHECK(realpath(fixture("tokenizer/llama3/tokenizer.json"), tok) != NULL, "fixture tokenizer");
    CHECK(symlink(tok, path_in(dir, "tokenizer.json")) == 0, "tokenizer link");
    write_text(path_in(dir, "tokenizer_config.json"),
               "{\"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\"}");
    char msg[1024];
    rm_status st = try_load(dir, NULL, msg, sizeof msg);
    CHECK(st == RM_ERR_LIMIT && contains(msg, "5000 labels") && contains(msg, "4096"), "5000 labels: %d: %s", st, msg);
}

/* Writes config.json for s and a model.safetensors that is exactly `data`. */
static const char *raw_checkpoint(const char *name, const void *data, size_t len) {
    const char *dir = new_dir(name);
    st_spec s = st_spec_default("LlamaForSequenceClassification");
    CHECK(st_write_config(dir, &s) == 0, "config %s", dir);
    CHECK(write_bytes(path_in(dir, "model.safetensors"), data, len) == 0, "write %s", dir);
    return dir;
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void test_header_length(void) {
    char msg[1024];
    unsigned char file[128];
    const char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    size_t hl = sizeof hdr - 1, len = 8 + hl + 4;
    CHECK(len <= sizeof file, "test file fits");
    memcpy(file + 8, hdr, hl);
    memset(file + 8 + hl, 0, 4);

    /* A length of 2^63. */
    put_u64(file, 1ULL << 63);
    rm_status st = try_load(raw_checkpoint("hdr-2p63", file, len), NULL, msg, sizeof msg);
    CHECK(st == RM_ERR_FORMAT && contains(msg, "header length 9223372036854775808") && contains(msg, "past the end"),
          "2^63: status %d: %s", st, msg);

    /* One byte more than the file holds. */
    put_u64(file, len - 8 + 1);
    st = try_load(raw_checkpoint("hdr-past", file, len), NULL, msg, sizeof msg);
    char want[64];
    snprintf(want, sizeof want, "header length %zu", len - 8 + 1);
    CHECK(st == RM_ERR_FORMAT && contains(msg, want) && contains(msg, "past the end"), "past end: %d: %s", st, msg);

    /* Refused before any allocation: with every allocation failing, still the same error. */
    rm_err e = {0};
    rm_st_file *f = NULL;
    put_u64(file, 1ULL << 63);
    rm_global_init();
    rm_alloc_fail_after(0);
    st = rm_st_parse(&f, file, len, "hostile.safetensors", &e);
    rm_alloc_fail_after(-1);
    CHECK(st == RM_ERR_FORMAT && f == NULL && contains(e.msg, "9223372036854775808"),
          "2^63 without allocating: %d: %s", st, e.msg);

    /* A header longer than the bound in a file that does hold it (sparse: 100 MB of hole). */
    const char *dir = new_dir("hdr-bound");
    st_spec s = st_spec_default("LlamaForSequenceClassification");
    st_write_config(dir, &s);
    uint64_t big = 100000001;    /* safetensors.c ST_MAX_HEADER + 1 */
    char prefix[9];
    put_u64((unsigned char *)prefix, big);
    prefix[8] = '{';
    CHECK(write_sparse(path_in(dir, "model.safetensors"), prefix, 9, (off_t)(8 + big + 8)) == 0, "sparse header");
    st = try_load(dir, NULL, msg, sizeof msg);
    CHECK(st == RM_ERR_LIMIT && contains(msg, "header length 100000001") && contains(msg, "exceeds the bound"),
          "header bound: %d: %s", st, msg);

    /* Room for a billion tensors (40 GB of header, sparse): refused by the same bound,
     * before the header is parsed, so no table of a billion entries is ever sized. */
    dir = new_dir("hdr-billion");
    st_write_config(dir, &s);
    big = 40000000000ULL;
    put_u64((unsigned char *)prefix, big);
    CHECK(write_sparse(path_in(dir, "model.safetensors"), prefix, 9, (off_t)(8 + big)) == 0, "sparse 40 GB");
    st = try_load(dir, NULL, msg, sizeof msg);
    CHECK(st == RM_ERR_LIMIT && contains(msg, "header length 40000000000") && contains(msg, "exceeds the bound"),
          "40 GB header: %d: %s", st, msg);

    /* A tensor claiming 2^62 x 4 elements: refused by arithmetic, never sized. */
    const char huge[] = "{\"t\":{\"dtype\":\"BF16\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}";
    unsigned char hf[128];
    put_u64(hf, sizeof huge - 1);
    memcpy(hf + 8, huge, sizeof huge - 1);
    memset(hf + 8 + sizeof huge - 1, 0, 8);
    st = try_load(raw_checkpoint("shape-huge", hf, 8 + sizeof huge - 1 + 8), NULL, msg, sizeof msg);
    CHECK(st == RM_ERR_FORMAT && contains(msg, "\"t\"") && contains(msg, "overflows"), "huge shape: %d: %s", st, msg);
}

/* A header of a near-maximal size filled with tiny entries (a list of 50
 * million numbers, 16 million one-key members) is refused by a scan of the
 * text before the JSON parser allocates anything: parsed, it would take
 * gigabytes (about 2 GB for 100 MB of "k":0 members). Real headers pass. */
static char *header_of(size_t body_len, const char *open, const char *piece, const char *close, size_t *len) {
    size_t lo = strlen(open), lp = strlen(piece), lc = strlen(close);
    char *b = malloc(8 + body_len + lo + lc + lp + 8);
    size_t n = 8;
    memcpy(b + n, open, lo), n += lo;
    for (size_t i = 0; n + lp + lc <= 8 + lo + body_len; i++) memcpy(b + n, piece, lp), n += lp;
    n--;   /* the last piece's comma */
    memcpy(b + n, close, lc), n += lc;
    put_u64((unsigned char *)b, n - 8);
    *len = n;
    return b;
}

static void test_tensor_count(void) {
    rm_err e = {0};
    rm_st_file *f = NULL;
    size_t len;
    struct {
        const char *what, *open, *piece, *close, *want;
    } hostile[] = {
        {"16 million one-key members", "{", "\"k\":0,", "}", "more than 65536 tensors"},
        {"a list of 50 million numbers", "{\"t\":{\"dtype\":\"F32\",\"shape\":[", "0,",
         "],\"data_offsets\":[0,0]}}", "more than 1048576 JSON values"},
        {"many empty objects", "{\"t\":[", "{},", "]}", "more than 1048576 JSON values"},
    };
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        char *h = header_of(99000000, hostile[i].open, hostile[i].piece, hostile[i].close, &len);
        rm_alloc_fail_after(0);   /* refused before any allocation */
        rm_status st = rm_st_parse(&f, h, len, "hostile.safetensors", &e);
        rm_alloc_fail_after(-1);
        CHECK(st == RM_ERR_LIMIT && f == NULL && contains(e.msg, hostile[i].want) && contains(e.msg, "hostile.safetensors"),
              "%s: %d: %s", hostile[i].what, st, e.msg);
        free(h);
    }
    /* At the bound: 65536 (empty) tensors parse; one more is refused. */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = 65536 + (size_t)extra, cap = 64 + n * 64, o = 8;
        char *h = malloc(cap);
        o += (size_t)sprintf(h + o, "{");
        for (size_t i = 0; i < n; i++)
            o += (size_t)sprintf(h + o, "%s\"t%zu\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}", i ? "," : "", i);
        o += (size_t)sprintf(h + o, "}");
        while (o % 8) h[o++] = ' ';   /* the data section 8-aligned, as safetensors pads it */
        put_u64((unsigned char *)h, o - 8);
        rm_status st = rm_st_parse(&f, h, o, "many.safetensors", &e);
        if (!extra) CHECK(st == RM_OK && rm_st_count(f) == 65536, "65536 tensors: %d: %s", st, e.msg);
        else CHECK(st == RM_ERR_LIMIT && contains(e.msg, "more than 65536 tensors"), "65537 tensors: %d: %s", st, e.msg);
        rm_st_free(f);
        f = NULL;
        free(h);
    }
}

/* Files above their size bound are refused by size, before reading or allocating. */
static void test_file_bounds(void) {
    char msg[1024];
    rm_err e;

    /* config.json of 1 GiB (a 1 GB string in it, as far as the reader knows). */
    const char *dir = new_dir("config-huge");
    CHECK(write_sparse(path_in(dir, "config.json"), "{\"architectures\": [\"", 20, (off_t)1 << 30) == 0, "sparse");
    rm_status st = try_load(dir, NULL, msg, sizeof msg);
    CHECK(st == RM_ERR_LIMIT && contains(msg, "config.json") && contains(msg, "1073741824 bytes") &&
          contains(msg, "more than the bound"),
          "config.json 1 GiB: %d: %s", st, msg);
    rm_config cfg;
    memset(&e, 0, sizeof e);
    rm_alloc_fail_after(0);
    st = rm_config_load(&cfg, path_in(dir, "config.json"), &e);
    rm_alloc_fail_after(-1);
    CHECK(st == RM_ERR_LIMIT, "config.json refused before allocating: %d: %s", st, e.msg);

    /* tokenizer.json past its bound (tokenizer_impl.h: 1 GiB). */
    dir = new_dir("tokenizer-huge");
    CHECK(write_sparse(path_in(dir, "tokenizer.json"), "{\"model\": {\"vocab\": {\"", 22, ((off_t)1 << 30) + 1) == 0,
          "sparse");
    rm_tokenizer *tok = NULL;
    msg[0] = 0;
    st = rm_tokenizer_load(path_in(dir, "tokenizer.json"), &tok, msg, sizeof msg);
    CHECK(st == RM_ERR_LIMIT && tok == NULL && contains(msg, "tokenizer.json") && contains(msg, "more than the bound"),
          "tokenizer.json past 1 GiB: %d: %s", st, msg);
    memset(&e, 0, sizeof e);
    rm_alloc_fail_after(0);
    st = rm_tok_load(&tok, path_in(dir, "tokenizer.json"), &e);
    rm_alloc_fail_after(-1);
    CHECK(st == RM_ERR_LIMIT, "tokenizer.json refused before allocating: %d: %s", st, e.msg);

    /* A 1 GB string: a tokenizer.json of 10^9 bytes must be refused before
     * 10^9 bytes are allocated to read it. */
    dir = new_dir("tokenizer-1gb");
    CHECK(write_sparse(path_in(dir, "tokenizer.json"), "{\"version\": \"", 13, (off_t)1000000000) == 0, "sparse");
    memset(&e, 0, sizeof e);
    rm_alloc_fail_after(0);
    st = rm_tok_load(&tok, path_in(dir, "tokenizer.json"), &e);
    rm_alloc_fail_after(-1);
    CHECK(st == RM_ERR_LIMIT,
          "tokenizer.json with a 1 GB string refused before allocating: status %d (%s): %s "
          "[lib/tokenizer_impl.h RM_TOK_MAX_FILE_BYTES admits 10^9 bytes; parsing costs ~8x that]",
          st, rm_status_string(st), e.msg);

    /* model.safetensors.index.json past 64 MiB. */
    dir = new_dir("index-huge");
    st_spec s = st_spec_default("LlamaForCausalLM");
    st_write_config(dir, &s);
    CHECK(write_sparse(path_in(dir, "model.safetensors.index.json"), "{\"weight_map\": {\"", 17, (off_t)1 << 30) == 0,
          "sparse");
    st = try_load(dir, NULL, msg, sizeof msg);
    CHECK(st == RM_ERR_LIMIT && contains(msg, "model.safetensors.index.json") && contains(msg, "more than the bound"),
          "index 1 GiB: %d: %s", st, msg);
}

/* Bounds on strings, counts and nesting inside files of acceptable size. */
static void test_json_bounds(void) {
    rm_err e;
    rm_config cfg;
    rm_status st;

    /* A 5000-byte label name (bound 4096). */
    size_t big = 5000;
    char *label = malloc(big + 1);
    memset(label, 'x', big);
    label[big] = 0;
    size_t cap = big + 1024;
    char *json = malloc(cap);
    snprintf(json, cap,
             "{\"architectures\": [\"LlamaForSequenceClassification\"], \"hidden_size\": 32, \"num_hidden_layers\": 2,"
             " \"num_attention_heads\": 4, \"intermediate_size\": 48, \"vocab_size\": 96, \"id2label\": {\"0\": \"%s\"}}",
             label);
    memset(&e, 0, sizeof e);
    st = rm_config_parse(&cfg, json, strlen(json), "config.json", &e);
    CHECK(st == RM_ERR_LIMIT && contains(e.msg, "id2label.0") && contains(e.msg, "longer than 4096 bytes"),
          "long label: %d: %s", st, e.msg);
    if (st == RM_OK) rm_config_free(&cfg);

    /* A 1 MB architecture name: refused, and the message stays short. */
    size_t huge = 1 << 20;
    char *arch = malloc(huge + 256);
    strcpy(arch, "{\"architectures\": [\"");
    size_t at = strlen(arch);
    memset(arch + at, 'A', huge);
    strcpy(arch + at + huge, "\"]}");
    memset(&e, 0, sizeof e);
    st = rm_config_parse(&cfg, arch, strlen(arch), "config.json", &e);
    CHECK(st == RM_ERR_UNSUPPORTED && contains(e.msg, "is not supported") && strlen(e.msg) < 600,
          "1 MB architecture: %d: %.200s", st, e.msg);
    free(arch);

    /* 100000 nested arrays: the parser's depth bound, not the stack. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    size_t k = 0;
    for (size_t i = 0; i < depth; i++) deep[k++] = '[';
    for (size_t i = 0; i < depth; i++) deep[k++] = ']';
    deep[k] = 0;
    memset(&e, 0, sizeof e);
    st = rm_config_parse(&cfg, deep, k, "config.json", &e);
    CHECK(st == RM_ERR_FORMAT && contains(e.msg, "depth"), "deep config.json: %d: %s", st, e.msg);
    rm_tokenizer *tok = NULL;
    memset(&e, 0, sizeof e);
    st = rm_tok_parse(&tok, deep, k, "tokenizer.json", &e);
    CHECK(st == RM_ERR_FORMAT && tok == NULL && contains(e.msg, "depth"), "deep tokenizer.json: %d: %s", st, e.msg);
    rm_tok_free(tok);
    rm_st_file *sf = NULL;
    size_t shl = 5 + k + 1;                 /* {"a": DEEP } */
    char *stf = malloc(8 + shl);
    put_u64((unsigned char *)stf, shl);
    memcpy(stf + 8, "{\"a\":", 5);
    memcpy(stf + 13, deep, k);
    stf[8 + shl - 1] = '}';
    memset(&e, 0, sizeof e);
    st = rm_st_parse(&sf, stf, 8 + shl, "deep.safetensors", &e);
    CHECK(st == RM_ERR_FORMAT && sf == NULL && contains(e.msg, "depth"), "deep safetensors header: %d: %s", st, e.msg);
    rm_st_free(sf);
    free(stf);
    free(deep);

    /* A 70000-byte added token (bound 64 KiB). */
    size_t tl = 70000;
    char *tj = malloc(tl + 512);
    int n = snprintf(tj, tl + 512, "{\"added_tokens\": [{\"id\": 0, \"content\": \"");
    memset(tj + n, 'a', tl);
    snprintf(tj + n + tl, 512, "\", \"special\": true}], \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, "
             "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1}, \"merges\": []}}");
    memset(&e, 0, sizeof e);
    st = rm_tok_parse(&tok, tj, strlen(tj), "tokenizer.json", &e);
    CHECK(st == RM_ERR_LIMIT && contains(e.msg, "added_tokens[0].content") && contains(e.msg, "more than 65536"),
          "long added token: %d: %s", st, e.msg);
    rm_tok_free(tok);
    free(tj);
    free(label);
    free(json);
}

/* ------------------------------------------------------------ inputs */

static char *repeat(const char *piece, size_t times) {
    size_t n = strlen(piece);
    char *s = malloc(n * times + 1);
    for (size_t i = 0; i < times; i++) memcpy(s + i * n, piece, n);
    s[n * times] = 0;
    return s;
}

static void test_context(const char *demo) {
    rm_params p;
    rm_params_init(&p);
    p.max_tokens = 32;
    char msg[1024];
    rm_model *m = NULL;
    rm_status st = rm_load(demo, &p, &m, msg, sizeof msg);
    CHECK(st == RM_OK, "demo model loads: %s", msg);
    if (st != RM_OK) return;
    CHECK(rm_model_n_ctx(m) == 32, "n_ctx %lld", (long long)rm_model_n_ctx(m));
    char *longp = repeat("The quick brown fox jumps over the lazy dog. ", 20);
    rm_scores *sc = NULL;
    st = rm_score(m, longp, "ok", &sc);
    CHECK(st == RM_ERR_TOO_LONG && sc == NULL, "long prompt: status %d", st);
    CHECK(contains(rm_errmsg(m), "longer than the model's context of 32"), "message: %s", rm_errmsg(m));

    /* In a batch only the long item fails. */
    rm_message a[2] = {RM_MESSAGE("user", longp), RM_MESSAGE("assistant", "ok")}, b[2] = {RM_MESSAGE("user", "Hi"), RM_MESSAGE("assistant", "Hello")};
    rm_item items[2];
    rm_item_init(&items[0]);
    rm_item_init(&items[1]);
    items[0].messages = a;
    items[0].n_messages = 2;
    items[1].messages = b;
    items[1].n_messages = 2;
    rm_scores *out[2] = {NULL, NULL};
    st = rm_score_batch(m, items, 2, out);
    CHECK(st == RM_ERR_TOO_LONG, "batch status %d", st);
    CHECK(out[0] && out[0]->status == RM_ERR_TOO_LONG && contains(out[0]->error, "context of 32"),
          "long item: %s", out[0] ? out[0]->error : "(null)");
    CHECK(out[1] && out[1]->status == RM_OK && out[1]->n_scores == 5, "short item scored: %s",
          out[1] ? out[1]->error : "(null)");
    rm_scores_free(out[0]);
    rm_scores_free(out[1]);
    rm_free(m);
    free(longp);

    /* The model's own context (max_position_embeddings 4096). */
    m = NULL;
    st = rm_load(demo, NULL, &m, msg, sizeof msg);
    CHECK(st == RM_OK, "demo model loads: %s", msg);
    if (st != RM_OK) return;
    char *huge = repeat("zq ", 6000);    /* more than 4096 tokens in any vocabulary of this size */
    st = rm_score(m, huge, "ok", &sc);
    CHECK(st == RM_ERR_TOO_LONG && contains(rm_errmsg(m), "context of 4096"), "4096: %d: %s", st, rm_errmsg(m));
    free(huge);
    rm_free(m);
}

/* A hostile chat template: loops, recursion, output size, value size. Each is
 * refused when scoring with its bound's own status and words. */
static void test_template(const char *demo) {
    static const struct {
        const char *what, *tmpl;
        rm_status status;
        const char *words;
    } cases[] = {
        {"10^10 loop iterations",
         "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x", RM_ERR_LIMIT, "steps"},
        {"a range of 10^9", "{% for i in range(1000000000) %}{% endfor %}x", RM_ERR_TEMPLATE, "Range too big"},
        {"unbounded recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", RM_ERR_LIMIT,
         "nested more than"},
        {"128 MB of output",
         "{% set s = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' %}"
         "{% for i in range(1000) %}{% for j in range(1000) %}{{ s }}{% endfor %}{% endfor %}",
         RM_ERR_LIMIT, "output bound"},
        {"a string doubled 40 times",
         "{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
         RM_ERR_LIMIT, "bound"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rm_params p;
        rm_params_init(&p);
        p.chat_template = cases[i].tmpl;
        char msg[1024];
        rm_model *m = NULL;
        rm_status st = rm_load(demo, &p, &m, msg, sizeof msg);
        CHECK(st == RM_OK, "%s: template parses: %s", cases[i].what, msg);
        if (st != RM_OK) continue;
        rm_scores *sc = NULL;
        st = rm_score(m, "Hi", "Hello", &sc);
        CHECK(st == cases[i].status && sc == NULL && contains(rm_errmsg(m), cases[i].words),
              "%s: status %d (%s), want %d and \"%s\": %s", cases[i].what, st, rm_status_string(st), cases[i].status,
              cases[i].words, rm_errmsg(m));
        fprintf(stderr, "  template, %s: %s\n", cases[i].what, rm_errmsg(m));
        rm_scores_free(sc);
        rm_free(m);
    }
}

int main(int argc, char **argv) {
    /* Run from the repository root (tests/run.sh does); else find it from argv[0]. */
    if (access("scripts/make_demo_model.py", R_OK) != 0 && argc > 0) {
        snprintf(repo, sizeof repo, "%s", argv[0]);
        char *slash = strrchr(repo, '/');
        if (slash) *slash = 0;
        strncat(repo, "/../..", sizeof repo - strlen(repo) - 1);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/rm_limits_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    rm_global_init();
    test_path_traversal();
    if (test_have_fixtures()) test_too_many_labels();   /* it borrows the fixture tokenizer */
    else test_skip_fixtures(1);
    test_header_length();
    test_tensor_count();
    test_file_bounds();
    test_json_bounds();
    const char *demo = new_dir("demo");
    char demo_dir[4096];
    snprintf(demo_dir, sizeof demo_dir, "%s", demo);
    int have_demo = make_demo(demo_dir) == 0;
    CHECK(have_demo, "python3 scripts/make_demo_model.py %s", demo_dir);
    if (have_demo) {
        test_context(demo_dir);
        test_template(demo_dir);
    }
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    int rc = test_summary("test_limits");
    fflush(stdout);     /* before LeakSanitizer's report at exit, which ends the process */
    return rc;
}
