/*
 * test_tokenizer.c - the tokenizer against tiktoken's and transformers' ids
 * (fixtures), against an independent tiktoken-style merge loop driven by
 * Meta's rank file, and on small hand-made tokenizer.json files for the
 * rules Llama 3 does not exercise (merge order, ignore_merges, lstrip,
 * rstrip, single_word, add_prefix_space, normalizers), bad files, bad text,
 * threads and allocation failures.
 */
#include <jansson.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

#include "bpe.h"
#include "hashmap.h"
#include "test.h"
#include "tokenizer.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* xorshift64*: the seed is printed, RM_SEED replays it. */
static unsigned long long rng_state;
static unsigned long long rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int same_ids(const rm_ids *got, const int32_t *want, size_t n) {
    return got->len == n && (n == 0 || memcmp(got->data, want, n * sizeof *want) == 0);
}

static void show_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* JSON array of integers -> ids. */
static size_t json_ids(json_t *arr, int32_t **out) {
    size_t n = json_array_size(arr);
    *out = malloc((n + 1) * sizeof **out);
    for (size_t i = 0; i < n; i++) (*out)[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return n;
}

/* Encodes and returns a fresh rm_ids (len 0 on failure, status in *st). */
static rm_ids enc(const rm_tokenizer *tok, const char *text, size_t len, const uint8_t *mask, int special,
                  rm_status *st) {
    rm_ids v = {0};
    rm_err err = {0};
    rm_status s = rm_tok_encode(tok, text, len, mask, special, &v, &err);
    if (st) *st = s;
    if (s != RM_OK && !st) fprintf(stderr, "    encode failed: %s\n", err.msg);
    return v;
}

/* ---------------------------------------------------------------- fixtures */

typedef struct text_case {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n;
} text_case;

static text_case *cases;
static size_t n_cases;

static void read_cases(void) {
    FILE *f = fopen(fixture("tokenizer/llama3/cases.jsonl"), "r");
    CHECK(f != NULL, "cannot open %s", fixture("tokenizer/llama3/cases.jsonl"));
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *row = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &je);
        CHECK(row != NULL, "cases.jsonl line %zu: %s", n_cases + 1, je.text);
        if (!row) continue;
        cases = realloc(cases, (n_cases + 1) * sizeof *cases);
        text_case *c = &cases[n_cases++];
        json_t *text = json_object_get(row, "text");
        c->len = json_string_length(text);
        c->text = malloc(c->len + 1);
        memcpy(c->text, json_string_value(text), c->len + 1);
        c->n = json_ids(json_object_get(row, "ids"), &c->ids);
        json_decref(row);
    }
    free(line);
    fclose(f);
}

static void test_cases(const rm_tokenizer *tok) {
    int passed = 0, failed = 0;
    size_t bytes = 0;
    double t0 = now_ms();
    for (size_t i = 0; i < n_cases; i++) {
        rm_ids v = enc(tok, cases[i].text, cases[i].len, NULL, 0, NULL);
        int ok = same_ids(&v, cases[i].ids, cases[i].n);
        /* Special parsing must not change text without special-token strings. */
        if (ok && !strstr(cases[i].text, "<|")) {
            rm_ids w = enc(tok, cases[i].text, cases[i].len, NULL, 1, NULL);
            ok = same_ids(&w, cases[i].ids, cases[i].n);
            rm_ids_release(&w);
        }
        CHECK(ok, "cases.jsonl line %zu: %.60s", i + 1, cases[i].text);
        if (!ok) {
            show_ids("want", cases[i].ids, cases[i].n);
            show_ids("got ", v.data, v.len);
        }
        ok ? passed++ : failed++;
        bytes += cases[i].len;
        rm_ids_release(&v);
    }
    double ms = now_ms() - t0;
    fprintf(stderr, "cases.jsonl: %d passed, %d failed (%zu bytes, both modes, in %.1f ms)\n", passed, failed, bytes,
            ms);
}

static void test_reference_file(const rm_tokenizer *tok, const char *rel) {
    FILE *f = fopen(fixture(rel), "r");
    CHECK(f != NULL, "cannot open %s", fixture(rel));
    if (!f) return;
    char *line = NULL;
    size_t cap = 0, row_no = 0;
    ssize_t got;
    int passed = 0;
    while ((got = getline(&line, &cap, f)) > 0) {
        row_no++;
        json_t *row = json_loadb(line, (size_t)got, 0, NULL);
        json_t *rendered = json_object_get(row, "rendered");
        CHECK(json_is_string(rendered), "%s row %zu: no rendered", rel, row_no);
        if (!json_is_string(rendered)) { json_decref(row); continue; }
        int32_t *want;
        size_t n = json_ids(json_object_get(row, "ids"), &want);
        rm_ids v = enc(tok, json_string_value(rendered), json_string_length(rendered), NULL, 1, NULL);
        int ok = same_ids(&v, want, n);
        CHECK(ok, "%s row %zu", rel, row_no);
        if (!ok) {
            show_ids("want", want, n);
            show_ids("got ", v.data, v.len);
        }
        passed += ok;
        rm_ids_release(&v);
        free(want);
        json_decref(row);
    }
    fprintf(stderr, "%s: %d of %zu rows match transformers' ids\n", rel, passed, row_no);
    free(line);
    fclose(f);
}

static void test_lookup(const rm_tokenizer *tok) {
    CHECK(rm_tok_id(tok, "Yes", 3) == 9642, "Yes -> %d", rm_tok_id(tok, "Yes", 3));
    CHECK(rm_tok_id(tok, "No", 2) == 2822, "No -> %d", rm_tok_id(tok, "No", 2));
    CHECK(rm_tok_id(tok, "<|eot_id|>", 10) == 128009, "eot -> %d", rm_tok_id(tok, "<|eot_id|>", 10));
    CHECK(rm_tok_id(tok, "<|begin_of_text|>", 17) == 128000, "bos");
    CHECK(rm_tok_id(tok, "\xC4\xA0Hello", 7) == 22691, "\"ĠHello\" -> %d", rm_tok_id(tok, "\xC4\xA0Hello", 7));
    CHECK(rm_tok_id(tok, "no such token at all", 20) == -1, "unknown token");
    CHECK(rm_tok_id(tok, "Yes", 2) == rm_tok_id(tok, "Ye", 2), "length is honoured");
    CHECK(rm_tok_str(tok, 9642) && strcmp(rm_tok_str(tok, 9642), "Yes") == 0, "str 9642");
    CHECK(rm_tok_str(tok, 128009) && strcmp(rm_tok_str(tok, 128009), "<|eot_id|>") == 0, "str 128009");
    CHECK(rm_tok_str(tok, -1) == NULL && rm_tok_str(tok, 128256) == NULL, "str out of range");
    CHECK(rm_tok_vocab_size(tok) == 128256, "vocab size %d", rm_tok_vocab_size(tok));
    int special = 0;
    CHECK(rm_tok_is_added(tok, 128009, &special) && special, "eot is a special added token");
    CHECK(!rm_tok_is_added(tok, 9642, NULL), "Yes is not added");
    /* Every id's string maps back to that id. */
    int bad = 0;
    for (int32_t id = 0; id < rm_tok_vocab_size(tok); id++) {
        const char *s = rm_tok_str(tok, id);
        if (!s || rm_tok_id(tok, s, strlen(s)) != id) bad++;
    }
    CHECK(bad == 0, "%d ids whose string does not map back", bad);
}

static void test_special(const rm_tokenizer *tok) {
    const char *text = "<|begin_of_text|>hi<|eot_id|>";
    size_t len = strlen(text), eot_at = strlen("<|begin_of_text|>hi");
    rm_ids hi = enc(tok, "hi", 2, NULL, 0, NULL);
    rm_ids eot_plain = enc(tok, "<|eot_id|>", 10, NULL, 0, NULL);
    rm_ids tail_plain = enc(tok, "hi<|eot_id|>", 12, NULL, 0, NULL);

    rm_ids v = enc(tok, text, len, NULL, 1, NULL);
    CHECK(v.len == hi.len + 2 && v.data[0] == 128000 && v.data[v.len - 1] == 128009 &&
              memcmp(v.data + 1, hi.data, hi.len * sizeof(int32_t)) == 0,
          "special tokens recognised");
    rm_ids_release(&v);

    /* The eot characters came from content: they are text. */
    uint8_t mask[64] = {0};
    memset(mask + eot_at, 1, 10);
    v = enc(tok, text, len, mask, 1, NULL);
    CHECK(v.len == 1 + tail_plain.len && v.data[0] == 128000 &&
              memcmp(v.data + 1, tail_plain.data, tail_plain.len * sizeof(int32_t)) == 0,
          "masked special token is text");
    CHECK(v.len >= eot_plain.len && memcmp(v.data + v.len - eot_plain.len, eot_plain.data,
                                            eot_plain.len * sizeof(int32_t)) == 0,
          "masked tail equals the plain encoding of <|eot_id|>");
    rm_ids_release(&v);

    /* One masked byte is enough; masking other bytes changes nothing. */
    memset(mask, 0, sizeof mask);
    mask[eot_at + 4] = 1;
    v = enc(tok, text, len, mask, 1, NULL);
    CHECK(v.len == 1 + tail_plain.len && v.data[v.len - 1] != 128009, "one masked byte makes it text");
    rm_ids_release(&v);
    memset(mask, 0, sizeof mask);
    mask[17] = mask[18] = 1;   /* "hi" */
    v = enc(tok, text, len, mask, 1, NULL);
    CHECK(v.len == hi.len + 2 && v.data[v.len - 1] == 128009, "mask on other bytes");
    rm_ids_release(&v);

    /* Plain mode never recognises them. */
    v = enc(tok, text, len, NULL, 0, NULL);
    int none = 1;
    for (size_t i = 0; i < v.len; i++) none &= v.data[i] < 128000;
    CHECK(none, "plain mode gives no special ids");
    rm_ids_release(&v);

    /* Longest match: "<|eot_id|>" next to a longer lookalike that is not a token. */
    v = enc(tok, "<|eot_id|><|eot_id|", 19, NULL, 1, NULL);
    CHECK(v.len >= 2 && v.data[0] == 128009 && v.data[1] != 128009, "partial token is text");
    rm_ids_release(&v);
    rm_ids_release(&hi);
    rm_ids_release(&eot_plain);
    rm_ids_release(&tail_plain);
}

/* ---------------------------------------------------------------- bytes and UTF-8 */

/* GPT-2's bytes_to_unicode, written out independently of lib/bpe.c. */
static unsigned byte_char[256];
static void init_byte_chars(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_char[b] = printable ? (unsigned)b : 256u + (unsigned)n++;
    }
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void test_utf8(const rm_tokenizer *tok) {
    rm_err err = {0};
    rm_ids v = {0};
    rm_status st = rm_tok_encode(tok, "ok \xff tail", 9, NULL, 0, &v, &err);
    CHECK(st == RM_ERR_UTF8 && strstr(err.msg, "byte offset 3"), "bad byte: %d %s", st, err.msg);
    CHECK(v.len == 0, "no output on error");
    st = rm_tok_encode(tok, "abc\xe2\x82", 5, NULL, 1, &v, &err);
    CHECK(st == RM_ERR_UTF8 && strstr(err.msg, "byte offset 3"), "truncated char: %s", err.msg);
    st = rm_tok_encode(tok, "\xed\xa0\x80", 3, NULL, 0, &v, &err);   /* a surrogate */
    CHECK(st == RM_ERR_UTF8, "surrogate");
    st = rm_tok_encode(tok, NULL, 0, NULL, 0, &v, &err);
    CHECK(st == RM_OK && v.len == 0, "empty text");
    st = rm_tok_encode(tok, NULL, 3, NULL, 0, &v, &err);
    CHECK(st == RM_ERR_INVALID_ARG, "NULL text with a length");
    /* Output is appended, never reset. */
    rm_ids_push(&v, 7);
    st = rm_tok_encode(tok, "Hello", 5, NULL, 0, &v, &err);
    CHECK(st == RM_OK && v.len == 2 && v.data[0] == 7 && v.data[1] == 9906, "append");
    rm_ids_release(&v);
    /* NUL bytes are text like any other. */
    v = enc(tok, "a\0b", 3, NULL, 0, NULL);
    CHECK(v.len == 3 && v.data[1] == rm_tok_id(tok, "\xC4\x80", 2), "NUL byte -> byte token Ā");
    rm_ids_release(&v);
}

/* Random bytes never crash; valid text round-trips through decode. */
static void test_random_text(const rm_tokenizer *tok) {
    static const char *pool[] = {"a", "Z", "7", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "é", "ß", "ж", "中",
                                 "文", "한", "ក", "😀", "👩‍💻", "\xc2\xa0", "\xe2\x80\x83", "\xe1\xa0\x8e", "!", "...",
                                 "<|", "|>", "<|eot_id|>", "<|begin_of_text|>", "0", "123456", "\x01", "\x7f", "ǅ",
                                 "\xcc\x81", "ſ", "'", "K"};
    size_t n_pool = sizeof pool / sizeof *pool;
    int crashes_survived = 0, utf8_errors = 0, roundtrips = 0, bad_roundtrips = 0;
    char buf[600];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0;
        if (iter % 2) {   /* arbitrary bytes */
            len = rng() % 64;
            for (size_t i = 0; i < len; i++) buf[i] = (char)rng();
        } else {
            size_t parts = rng() % 40;
            for (size_t i = 0; i < parts; i++) {
                const char *p = pool[rng() % n_pool];
                size_t k = strlen(p);
                memcpy(buf + len, p, k);
                len += k;
            }
        }
        for (int special = 0; special <= 1; special++) {
            rm_status st;
            rm_ids v = enc(tok, buf, len, NULL, special, &st);
            crashes_survived++;
            if (st == RM_ERR_UTF8) {
                utf8_errors++;
                CHECK(rm_utf8_check(buf, len) != len, "UTF-8 error on valid text");
                continue;
            }
            CHECK(st == RM_OK, "encode status %d", st);
            int in_range = 1;
            for (size_t i = 0; i < v.len; i++) in_range &= v.data[i] >= 0 && v.data[i] < rm_tok_vocab_size(tok);
            CHECK(in_range, "ids in range");
            rm_buf back = {0};
            rm_err err = {0};
            st = rm_tok_decode(tok, v.data, v.len, &back, &err);
            int same = st == RM_OK && back.len == len && (len == 0 || memcmp(back.data, buf, len) == 0);
            roundtrips++;
            if (!same) bad_roundtrips++;
            CHECK(same, "decode(encode(text)) != text (special=%d, %zu bytes)", special, len);
            rm_buf_free(&back);
            rm_ids_release(&v);
        }
    }
    fprintf(stderr, "random text: %d encodes, %d refused as bad UTF-8, %d round trips (%d wrong)\n",
            crashes_survived, utf8_errors, roundtrips, bad_roundtrips);
}

/* ---------------------------------------------------------------- an independent merge loop */

/* Meta's tokenizer.model: "base64 rank" per line, read into bytes -> rank. */
static rm_hashmap ranks;
static char *rank_bytes;

static int b64(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static int read_ranks(void) {
    FILE *f = fopen(fixture("tokenizer/llama3/tokenizer.model"), "r");
    CHECK(f != NULL, "cannot open tokenizer.model");
    if (!f) return 0;
    rank_bytes = malloc(4 << 20);
    size_t at = 0;
    char line[1024];
    rm_hashmap_init(&ranks, 130000);
    while (fgets(line, sizeof line, f)) {
        char *space = strchr(line, ' ');
        if (!space) continue;
        size_t start = at;
        unsigned acc = 0;
        int bits = 0;
        for (char *p = line; p < space; p++) {
            int v = b64((unsigned char)*p);
            if (v < 0) continue;   /* '=' padding */
            acc = acc << 6 | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                rank_bytes[at++] = (char)(acc >> bits & 0xFF);
            }
        }
        rm_hashmap_put(&ranks, rank_bytes + start, at - start, atoi(space + 1), NULL);
    }
    fclose(f);
    return ranks.count > 100000;
}

/* tiktoken's byte_pair_encode, the plain quadratic way: merge the adjacent
 * pair whose bytes have the lowest rank (leftmost on ties) until none has one. */
static size_t tiktoken_merge(const char *piece, size_t n, int32_t *out) {
    int32_t whole;
    if (rm_hashmap_get(&ranks, piece, n, &whole)) { out[0] = whole; return 1; }
    size_t start[512], parts = n;
    for (size_t i = 0; i <= n; i++) start[i] = i;
    for (;;) {
        int32_t best = INT32_MAX, r;
        size_t at = 0;
        for (size_t i = 0; i + 1 < parts; i++)
            if (rm_hashmap_get(&ranks, piece + start[i], start[i + 2] - start[i], &r) && r < best) { best = r; at = i; }
        if (best == INT32_MAX) break;
        memmove(start + at + 1, start + at + 2, (parts - at - 1) * sizeof *start);
        parts--;
    }
    for (size_t i = 0; i < parts; i++) rm_hashmap_get(&ranks, piece + start[i], start[i + 1] - start[i], &out[i]);
    return parts;
}

/* Words of letters are single pre-tokens, so the whole encoding is one merge run. */
static void test_merge_against_tiktoken(const rm_tokenizer *tok) {
    if (!read_ranks()) return;
    static const char *letters[] = {"a", "b", "e", "i", "n", "o", "r", "s", "t", "q", "x", "z", "E", "T", "é",
                                    "ß", "ж", "и", "中", "한", "ñ", "ğ", "ø", "ā"};
    size_t n_letters = sizeof letters / sizeof *letters;
    int agree = 0, differ = 0;
    char word[480];
    int32_t want[512];
    for (int iter = 0; iter < 600; iter++) {
        size_t len = 0, target = 1 + rng() % (iter < 500 ? 40 : 150);
        if (rng() % 2) word[len++] = ' ';
        while (len < target) {
            const char *l = letters[rng() % (iter % 3 ? 12 : n_letters)];
            size_t k = strlen(l);
            memcpy(word + len, l, k);
            len += k;
        }
        size_t n = tiktoken_merge(word, len, want);
        rm_ids v = enc(tok, word, len, NULL, 0, NULL);
        int ok = same_ids(&v, want, n);
        CHECK(ok, "merge of \"%.*s\" differs from tiktoken's", (int)len, word);
        if (!ok) {
            show_ids("tiktoken", want, n);
            show_ids("ours    ", v.data, v.len);
        }
        ok ? agree++ : differ++;
        rm_ids_release(&v);
    }
    fprintf(stderr, "random words vs tiktoken's merge loop on tokenizer.model: %d agree, %d differ\n", agree, differ);
    rm_hashmap_free(&ranks);
    free(rank_bytes);
}

/* ---------------------------------------------------------------- threads */

typedef struct thread_result { const rm_tokenizer *tok; int mismatches; } thread_result;

static void *encode_all(void *arg) {
    thread_result *r = arg;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < n_cases; i++) {
            rm_ids v = {0};
            rm_err err;
            if (rm_tok_encode(r->tok, cases[i].text, cases[i].len, NULL, rep & 1, &v, &err) != RM_OK ||
                (!strstr(cases[i].text, "<|") && !same_ids(&v, cases[i].ids, cases[i].n)))
                r->mismatches++;
            rm_ids_release(&v);
        }
    return NULL;
}

static void test_threads(const rm_tokenizer *tok) {
    pthread_t th[4];
    thread_result res[4];
    for (int i = 0; i < 4; i++) {
        res[i] = (thread_result){tok, 0};
        pthread_create(&th[i], NULL, encode_all, &res[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += res[i].mismatches;
    }
    CHECK(total == 0, "%d mismatches encoding from 4 threads at once", total);
}

/* ---------------------------------------------------------------- throughput */

static void bench(const rm_tokenizer *tok) {
    /* A larger text: the cases repeated with varied separators. */
    rm_buf big = {0};
    for (int rep = 0; big.len < (2u << 20); rep++)
        for (size_t i = 0; i < n_cases; i++) {
            rm_buf_append(&big, cases[i].text, cases[i].len);
            rm_buf_append(&big, rep % 3 ? " " : "\n", 1);
        }
    double t0 = now_ms();
    rm_ids v = enc(tok, big.data, big.len, NULL, 0, NULL);
    double ms = now_ms() - t0;
    CHECK(v.len > 0, "bench text encodes");
    fprintf(stderr, "throughput: %.2f MB in %.1f ms = %.1f MB/s, %.2f M tokens/s\n", big.len / 1e6, ms,
            big.len / 1e3 / ms, v.len / 1e3 / ms);
    rm_ids_release(&v);
    /* Pathological runs must stay n log n and never overflow the JIT stack. */
    const char *quick = getenv("RM_QUICK");
    size_t n = quick && *quick == '1' ? 1u << 18 : 1u << 20;
    char *run = malloc(n);
    static const char fill[] = {' ', 'a', '1', '!', '\n'};
    for (size_t k = 0; k < sizeof fill; k++) {
        memset(run, fill[k], n);
        rm_status st;
        t0 = now_ms();
        v = enc(tok, run, n, NULL, 1, &st);
        CHECK(st == RM_OK && v.len > 0, "%zu bytes of '%c': status %d", n, fill[k], st);
        fprintf(stderr, "%zu KiB of 0x%02x in one piece: %zu tokens in %.1f ms\n", n >> 10, fill[k], v.len,
                now_ms() - t0);
        rm_ids_release(&v);
    }
    free(run);
    rm_buf_free(&big);
}

/* The generic map on its own: growth from empty, duplicates, odd keys. */
static void test_hashmap(void) {
    rm_hashmap m = {0};   /* zero-initialised is a valid empty map */
    char *keys = malloc(20000 * 8);
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(keys + 8 * i, 8, "k%d", i);
        bad += rm_hashmap_put(&m, keys + 8 * i, (size_t)n, i, NULL) != 1;
    }
    int32_t v = -1, old = -1;
    for (int i = 0; i < 20000; i++)
        bad += !rm_hashmap_get(&m, keys + 8 * i, strlen(keys + 8 * i), &v) || v != i;
    CHECK(bad == 0 && m.count == 20000, "20000 keys: %d wrong", bad);
    CHECK(rm_hashmap_put(&m, "k7", 2, 99, &old) == 0 && old == 7, "duplicate keeps the old value");
    CHECK(rm_hashmap_get(&m, "k7", 2, &v) && v == 7, "still 7");
    CHECK(!rm_hashmap_get(&m, "k", 1, &v) && !rm_hashmap_get(&m, "k7\0", 3, &v), "prefixes and NUL are distinct");
    CHECK(rm_hashmap_put(&m, NULL, 0, -5, NULL) == 1 && rm_hashmap_get(&m, "", 0, &v) && v == -5, "empty key");
    CHECK(rm_hashmap_put(&m, "a\0b", 3, 1, NULL) == 1 && rm_hashmap_put(&m, "a\0c", 3, 2, NULL) == 1 &&
              rm_hashmap_get(&m, "a\0c", 3, &v) && v == 2,
          "keys with NUL");
    rm_hashmap_free(&m);
    CHECK(!rm_hashmap_get(&m, "k1", 2, &v), "freed map is empty");
    CHECK(rm_hash_bytes("abc", 3) != rm_hash_bytes("abd", 3) && rm_hash_bytes("", 0) != rm_hash_bytes("\0", 1),
          "hash differs");
    free(keys);
}

static void test_alphabet(void) {
    int bad = 0;
    for (int b = 0; b < 256; b++)
        bad += rm_bytelevel_codepoint((uint8_t)b) != byte_char[b] || rm_bytelevel_byte(byte_char[b]) != b;
    int strays = 0;   /* code points outside the alphabet map to no byte */
    for (uint32_t cp = 0; cp < 1000; cp++) {
        int known = 0;
        for (int b = 0; b < 256; b++) known |= byte_char[b] == cp;
        strays += !known && rm_bytelevel_byte(cp) != -1;
    }
    CHECK(bad == 0 && strays == 0, "byte-level alphabet: %d wrong bytes, %d strays", bad, strays);
}

/* ---------------------------------------------------------------- hand-made tokenizers */

/* A byte-level vocabulary (id = byte) plus a few merges, ByteLevel with GPT-2's regex. */
static json_t *small_json(int pair_form) {
    json_t *vocab = json_object();
    char key[8];
    for (int b = 0; b < 256; b++) {
        key[put_utf8(key, byte_char[b])] = 0;
        json_object_set_new(vocab, key, json_integer(b));
    }
    static const char *merged[] = {"bc", "ab", "abc", "aa", ("\xC4\xA0" "a"), "xyz"};
    for (int i = 0; i < 6; i++) json_object_set_new(vocab, merged[i], json_integer(256 + i));
    static const char *rules[][2] = {{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"a", "a"}, {"\xC4\xA0", "a"}};
    json_t *merges = json_array();
    for (int i = 0; i < 5; i++) {
        if (pair_form) {
            json_array_append_new(merges, json_pack("[ss]", rules[i][0], rules[i][1]));
        } else {
            char s[32];
            snprintf(s, sizeof s, "%s %s", rules[i][0], rules[i][1]);
            json_array_append_new(merges, json_string(s));
        }
    }
    json_t *added = json_array();
    struct { int id; const char *content; int special, lstrip, rstrip, single_word, normalized; } at[] = {
        {300, "<s>", 1, 0, 0, 0, 0}, {301, "[L]", 1, 1, 0, 0, 0}, {302, "[R]", 1, 0, 1, 0, 0},
        {303, "[W]", 0, 0, 0, 1, 0}, {304, "<s>x", 1, 0, 0, 0, 0}, {305, "<n>", 0, 0, 0, 0, 1}};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++)
        json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", at[i].id, "content",
                                               at[i].content, "special", at[i].special, "lstrip", at[i].lstrip,
                                               "rstrip", at[i].rstrip, "single_word", at[i].single_word,
                                               "normalized", at[i].normalized));
    return json_pack("{s:s,s:o,s:n,s:{s:s,s:b,s:b,s:b},s:n,s:{s:s,s:n,s:n,s:b,s:b,s:o,s:o}}", "version", "1.0",
                     "added_tokens", added, "normalizer", "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0,
                     "trim_offsets", 1, "use_regex", 1, "decoder", "model", "type", "BPE", "unk_token",
                     "dropout", "ignore_merges", 0, "byte_fallback", 0, "vocab", vocab, "merges", merges);
}

static rm_tokenizer *parse_json(json_t *j, rm_status *st, rm_err *err) {
    char *s = json_dumps(j, JSON_COMPACT);
    rm_tokenizer *tok = NULL;
    *st = rm_tok_parse(&tok, s, strlen(s), "small.json", err);
    free(s);
    return tok;
}

static void expect(const rm_tokenizer *tok, const char *text, int special, const int32_t *want, size_t n) {
    rm_ids v = enc(tok, text, strlen(text), NULL, special, NULL);
    int ok = same_ids(&v, want, n);
    CHECK(ok, "\"%s\" (special=%d)", text, special);
    if (!ok) {
        show_ids("want", want, n);
        show_ids("got ", v.data, v.len);
    }
    rm_ids_release(&v);
}
#define EXPECT(tok, text, special, ...)                                     \
    do {                                                                    \
        const int32_t w_[] = {__VA_ARGS__};                                 \
        expect(tok, text, special, w_, sizeof w_ / sizeof *w_);             \
    } while (0)

static void test_small(void) {
    rm_status st;
    rm_err err = {0};
    for (int form = 0; form < 2; form++) {
        json_t *j = small_json(form);
        rm_tokenizer *tok = parse_json(j, &st, &err);
        CHECK(st == RM_OK, "small tokenizer (%s merges): %s", form ? "pair" : "string", err.msg);
        json_decref(j);
        if (!tok) continue;
        EXPECT(tok, "abc", 0, 258);          /* b c (rank 0) first, then a bc */
        EXPECT(tok, "ab", 0, 257);
        EXPECT(tok, "aaa", 0, 259, 'a');     /* equal ranks: leftmost first */
        EXPECT(tok, "aaaa", 0, 259, 259);
        EXPECT(tok, "xyz", 0, 'x', 'y', 'z'); /* ignore_merges off: no merge path */
        EXPECT(tok, "a a", 0, 'a', 260);     /* GPT-2 regex: " a" is one piece */
        EXPECT(tok, "<s>", 1, 300);
        EXPECT(tok, "<s>", 0, '<', 's', '>');
        EXPECT(tok, "<s>x<s>y", 1, 304, 300, 'y');   /* longest match */
        EXPECT(tok, "b  [L]c", 1, 'b', 301, 'c');    /* lstrip takes the spaces */
        EXPECT(tok, "b  [R]  c", 1, 'b', ' ', ' ', 302, 'c');   /* rstrip takes the spaces after */
        EXPECT(tok, "[W]", 1, 303);
        EXPECT(tok, "a [W] b", 1, 'a', ' ', 303, ' ', 'b');
        EXPECT(tok, "x[W]", 1, 'x', '[', 'W', ']');       /* single_word: inside a word it is text */
        EXPECT(tok, "[W]y", 1, '[', 'W', ']', 'y');
        EXPECT(tok, "<n><s>", 1, 305, 300);                /* normalized tokens: HF's second pass */
        EXPECT(tok, "a<n>", 1, 'a', 305);
        /* A masked byte cuts the longest match short. */
        uint8_t mask[4] = {0, 0, 0, 1};
        rm_ids v = enc(tok, "<s>x", 4, mask, 1, NULL);
        CHECK(v.len == 2 && v.data[0] == 300 && v.data[1] == 'x', "mask shortens the match");
        rm_ids_release(&v);
        CHECK(rm_tok_id(tok, "[W]", 3) == 303 && rm_tok_id(tok, "\xC4\xA0" "a", 3) == 260, "small ids");
        CHECK(rm_tok_vocab_size(tok) == 306, "small vocab size %d", rm_tok_vocab_size(tok));
        rm_tok_free(tok);
    }

    json_t *j = small_json(1);
    json_object_set_new(json_object_get(j, "model"), "ignore_merges", json_true());
    rm_tokenizer *tok = parse_json(j, &st, &err);
    CHECK(st == RM_OK, "ignore_merges: %s", err.msg);
    if (tok) {
        EXPECT(tok, "xyz", 0, 261);                        /* in the vocabulary: taken whole */
        EXPECT(tok, "xyzxyz", 0, 'x', 'y', 'z', 'x', 'y', 'z');
        rm_tok_free(tok);
    }
    json_decref(j);

    j = small_json(1);
    json_object_set_new(json_object_get(j, "pre_tokenizer"), "add_prefix_space", json_true());
    tok = parse_json(j, &st, &err);
    CHECK(st == RM_OK, "add_prefix_space: %s", err.msg);
    if (tok) {
        EXPECT(tok, "ab", 0, ' ', 257);                    /* " ab": a b merges before Ġ a */
        EXPECT(tok, " ab", 0, ' ', 257);
        EXPECT(tok, "a<s>a", 1, 260, 300, 260);            /* each segment gets its space: " a" */
        rm_tok_free(tok);
    }
    json_decref(j);

    j = small_json(1);
    json_object_set_new(j, "pre_tokenizer",
                        json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b}]}", "type", "Sequence",
                                  "pretokenizers", "type", "Split", "pattern", "String", "-", "behavior", "Isolated",
                                  "invert", 0, "type", "ByteLevel", "add_prefix_space", 0, "use_regex", 0));
    tok = parse_json(j, &st, &err);
    CHECK(st == RM_OK, "Split String: %s", err.msg);
    if (tok) {
        EXPECT(tok, "ab-abc", 0, 257, '-', 258);
        EXPECT(tok, "b a", 0, 'b', 260);                   /* no regex: " a" merges across the word */
        EXPECT(tok, "aa aa", 0, 259, ' ', 259);
        rm_tok_free(tok);
    }
    json_decref(j);
}

/* ---------------------------------------------------------------- normalizers */

/* small_json plus "é" (262) and "fi" (263) as merged tokens, two added tokens
 * written with a decomposed é (306 matched on raw text, 307 normalized), and
 * the given normalizer (NULL: null). */
static json_t *norm_json(json_t *normalizer) {
    json_t *j = small_json(1), *model = json_object_get(j, "model");
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    json_object_set_new(vocab, "\xC3\x83\xC2\xA9", json_integer(262));   /* é = C3 A9, byte-level "Ã©" */
    json_object_set_new(vocab, "fi", json_integer(263));
    json_array_append_new(merges, json_pack("[ss]", "\xC3\x83", "\xC2\xA9"));
    json_array_append_new(merges, json_pack("[ss]", "f", "i"));
    json_t *added = json_object_get(j, "added_tokens");
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b}", "id", 306, "content", "<e\xCC\x81>", "special", 1,
                                           "normalized", 0));
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b}", "id", 307, "content", "[e\xCC\x81]", "special", 0,
                                           "normalized", 1));
    json_object_set_new(j, "normalizer", normalizer ? normalizer : json_null());
    return j;
}

static rm_tokenizer *norm_tokenizer(json_t *normalizer, const char *label) {
    json_t *j = norm_json(normalizer);
    rm_status st;
    rm_err err = {0};
    rm_tokenizer *tok = parse_json(j, &st, &err);
    json_decref(j);
    CHECK(st == RM_OK && tok, "normalizer %s: %s", label, err.msg);
    return tok;
}

static json_t *form(const char *type) { return json_pack("{s:s}", "type", type); }

/* Encodes with a mask given as a string of '0'/'1', one per byte. */
static void expect_masked(const rm_tokenizer *tok, const char *text, const char *mask_bits, const int32_t *want,
                          size_t n) {
    size_t len = strlen(text);
    uint8_t mask[64] = {0};
    for (size_t i = 0; i < len && mask_bits[i]; i++) mask[i] = mask_bits[i] == '1';
    rm_ids v = enc(tok, text, len, mask, 1, NULL);
    int ok = same_ids(&v, want, n);
    CHECK(ok, "\"%s\" masked %s", text, mask_bits);
    if (!ok) {
        show_ids("want", want, n);
        show_ids("got ", v.data, v.len);
    }
    rm_ids_release(&v);
}
#define EXPECT_MASKED(tok, text, bits, ...)                                 \
    do {                                                                    \
        const int32_t w_[] = {__VA_ARGS__};                                 \
        expect_masked(tok, text, bits, w_, sizeof w_ / sizeof *w_);         \
    } while (0)

static void test_normalizers(void) {
    rm_tokenizer *tok = norm_tokenizer(NULL, "null");
    if (tok) {   /* without a normalizer the two spellings of é differ */
        EXPECT(tok, "e\xCC\x81", 0, 'e', 0xCC, 0x81);
        EXPECT(tok, "\xC3\xA9", 0, 262);
        EXPECT(tok, "[e\xCC\x81]", 1, 307);
        EXPECT(tok, "[\xC3\xA9]", 1, '[', 262, ']');
        rm_tok_free(tok);
    }

    tok = norm_tokenizer(form("NFC"), "NFC");
    if (tok) {
        EXPECT(tok, "e\xCC\x81", 0, 262);                  /* decomposed é encodes as the composed one */
        EXPECT(tok, "e\xCC\x81", 1, 262);
        EXPECT(tok, "\xC3\xA9", 0, 262);
        EXPECT(tok, "cafe\xCC\x81", 0, 'c', 'a', 'f', 262);
        rm_ids v = enc(tok, "a\0e\xCC\x81", 5, NULL, 0, NULL);
        CHECK(v.len == 3 && v.data[0] == 'a' && v.data[1] == 0 && v.data[2] == 262, "NUL byte with NFC");
        rm_ids_release(&v);
        EXPECT(tok, "\xEF\xAC\x81", 0, 0xEF, 0xAC, 0x81);   /* NFC keeps the ligature */
        EXPECT(tok, "\xE2\x84\xAB", 0, 0xC3, 0x85);         /* U+212B ANGSTROM SIGN is U+00C5 */
        /* Raw-text tokens are split out before normalizing, as HF does: the
         * decomposed spelling is the token, the composed one is text. */
        EXPECT(tok, "<e\xCC\x81>", 1, 306);
        EXPECT(tok, "<\xC3\xA9>", 1, '<', 262, '>');
        EXPECT(tok, "<e\xCC\x81>", 0, '<', 262, '>');
        /* ... and nothing composes across them: the pieces are normalized apart. */
        EXPECT(tok, "e<s>\xCC\x81", 1, 'e', 300, 0xCC, 0x81);
        /* Normalized tokens are matched in normalized text with normalized content. */
        EXPECT(tok, "[\xC3\xA9]", 1, 307);
        EXPECT(tok, "[e\xCC\x81]", 1, 307);
        EXPECT(tok, "x[e\xCC\x81]<s>[\xC3\xA9]", 1, 'x', 307, 300, 307);
        EXPECT(tok, "[\xC3\xA9]", 0, '[', 262, ']');
        /* The mask still keeps content from becoming a token. */
        EXPECT_MASKED(tok, "[\xC3\xA9]", "0000", 307);
        EXPECT_MASKED(tok, "[\xC3\xA9]", "0100", '[', 262, ']');
        EXPECT_MASKED(tok, "ab[e\xCC\x81]", "1100000", 257, 307);     /* masked run normalized apart */
        EXPECT_MASKED(tok, "[e\xCC\x81]x", "000001", 307, 'x');
        EXPECT_MASKED(tok, "[e\xCC\x81]", "00110", '[', 262, ']');    /* é composed across the mask edge */
        EXPECT_MASKED(tok, "<e\xCC\x81>", "00001", '<', 262, '>');    /* raw token: masked before NFC */
        rm_tok_free(tok);
    }

    tok = norm_tokenizer(form("NFD"), "NFD");
    if (tok) {
        EXPECT(tok, "\xC3\xA9", 0, 'e', 0xCC, 0x81);
        EXPECT(tok, "[\xC3\xA9]", 1, 307);
        EXPECT(tok, "\xEA\xB0\x80", 0, 0xE1, 0x84, 0x80, 0xE1, 0x85, 0xA1);   /* Hangul 가 -> jamo */
        rm_tok_free(tok);
    }
    tok = norm_tokenizer(form("NFKC"), "NFKC");
    if (tok) {
        EXPECT(tok, "\xEF\xAC\x81", 0, 263);               /* U+FB01 LATIN SMALL LIGATURE FI -> "fi" */
        EXPECT(tok, "e\xCC\x81", 0, 262);
        EXPECT(tok, "\xEF\xBC\xA1", 0, 'A');               /* fullwidth A */
        rm_tok_free(tok);
    }
    tok = norm_tokenizer(form("NFKD"), "NFKD");
    if (tok) {
        EXPECT(tok, "\xEF\xAC\x81\xC3\xA9", 0, 263, 'e', 0xCC, 0x81);   /* "fie" + U+0301 */
        rm_tok_free(tok);
    }
    tok = norm_tokenizer(json_pack("{s:s,s:[o,o]}", "type", "Sequence", "normalizers", form("NFKD"), form("NFC")),
                         "Sequence [NFKD, NFC]");
    if (tok) {
        EXPECT(tok, "\xEF\xAC\x81" "e\xCC\x81", 0, 263, 262);   /* fi, then é composed again */
        EXPECT(tok, "\xEF\xAC\x81\xC3\xA9", 0, 263, 262);
        rm_tok_free(tok);
    }
    tok = norm_tokenizer(json_pack("{s:s,s:[{s:s,s:[o]},o]}", "type", "Sequence", "normalizers", "type", "Sequence",
                                   "normalizers", form("NFKD"), form("NFC")),
                         "nested Sequence");
    if (tok) {
        EXPECT(tok, "\xEF\xAC\x81\xC3\xA9", 0, 263, 262);
        rm_tok_free(tok);
    }
    tok = norm_tokenizer(json_pack("{s:s,s:[]}", "type", "Sequence", "normalizers"), "empty Sequence");
    if (tok) {
        EXPECT(tok, "e\xCC\x81", 0, 'e', 0xCC, 0x81);
        rm_tok_free(tok);
    }

    /* Refused, naming the normalizer and where it is. */
    json_t *many = json_array();
    for (int i = 0; i < 17; i++) json_array_append_new(many, form("NFC"));
    struct { json_t *normalizer; rm_status status; const char *needle; } bad[] = {
        {form("Lowercase"), RM_ERR_UNSUPPORTED, "normalizer.type: normalizer \"Lowercase\" is not supported"},
        {form("BertNormalizer"), RM_ERR_UNSUPPORTED, "\"BertNormalizer\""},
        {json_pack("{s:s,s:[o,o]}", "type", "Sequence", "normalizers", form("NFC"),
                   json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "String", "a", "content", "b")),
         RM_ERR_UNSUPPORTED, "normalizer.normalizers[1].type: normalizer \"Replace\""},
        {json_pack("{s:s,s:s}", "type", "Prepend", "prepend", "_"), RM_ERR_UNSUPPORTED, "\"Prepend\""},
        {json_string("NFC"), RM_ERR_FORMAT, "normalizer: expected an object"},
        {json_pack("{s:i}", "type", 3), RM_ERR_FORMAT, "normalizer.type: expected a string"},
        {form("Sequence"), RM_ERR_FORMAT, "normalizer.normalizers: expected an array"},
        {json_pack("{s:s,s:o}", "type", "Sequence", "normalizers", many), RM_ERR_LIMIT, "more than 16 normalizers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = norm_json(bad[i].normalizer);
        rm_status st;
        rm_err err = {0};
        tok = parse_json(j, &st, &err);
        CHECK(!tok && st == bad[i].status && strstr(err.msg, bad[i].needle),
              "bad normalizer %zu: status %d, \"%s\", wanted %d with \"%s\"", i, st, err.msg, bad[i].status,
              bad[i].needle);
        rm_tok_free(tok);
        json_decref(j);
    }
}

/* Llama 3's tokenizer.json given Qwen2's NFC normalizer: decomposed text must
 * give the ids of the composed text (tiktoken's, from cases.jsonl), and
 * decoding gives back the NFC form of the input. */
static void test_nfc_llama3(void) {
    char *json;
    size_t len;
    rm_err err = {0};
    if (rm_read_file(fixture("tokenizer/llama3/tokenizer.json"), (size_t)1 << 30, &json, &len, &err) != RM_OK) {
        CHECK(0, "read tokenizer.json: %s", err.msg);
        return;
    }
    static const char null_norm[] = "\"normalizer\": null", nfc[] = "\"normalizer\": {\"type\": \"NFC\"}";
    char *at = strstr(json, null_norm);
    CHECK(at != NULL, "tokenizer.json has %s", null_norm);
    if (!at) { rm_mfree(json); return; }
    rm_buf edited = {0};
    rm_buf_append(&edited, json, (size_t)(at - json));
    rm_buf_append(&edited, nfc, sizeof nfc - 1);
    rm_buf_append(&edited, at + sizeof null_norm - 1, len - (size_t)(at - json) - (sizeof null_norm - 1));
    rm_mfree(json);
    rm_tokenizer *tok = NULL;
    rm_status st = rm_tok_parse(&tok, edited.data, edited.len, "llama3+NFC", &err);
    rm_buf_free(&edited);
    CHECK(st == RM_OK, "Llama 3 with NFC: %s", err.msg);
    if (!tok) return;

    int same = 0, differ = 0, decomposed = 0;
    for (size_t i = 0; i < n_cases; i++) {
        char *composed = (char *)utf8proc_NFC((const utf8proc_uint8_t *)cases[i].text);
        int is_nfc = composed && strlen(composed) == cases[i].len && memcmp(composed, cases[i].text, cases[i].len) == 0;
        free(composed);
        if (!is_nfc || memchr(cases[i].text, 0, cases[i].len)) continue;   /* ids are for the text as written */
        char *nfd = (char *)utf8proc_NFD((const utf8proc_uint8_t *)cases[i].text);
        if (!nfd) continue;
        decomposed += strlen(nfd) != cases[i].len;
        for (int special = 0; special <= 1; special++) {
            rm_ids v = enc(tok, nfd, strlen(nfd), NULL, special, NULL);
            int ok = same_ids(&v, cases[i].ids, cases[i].n) || (special && strstr(nfd, "<|"));
            CHECK(ok, "NFC tokenizer on NFD of cases.jsonl line %zu", i + 1);
            ok ? same++ : differ++;
            rm_ids_release(&v);
        }
        free(nfd);
    }
    CHECK(decomposed >= 20, "only %d cases change under NFD", decomposed);

    /* Random text: decode(encode(text)) is NFC(text) whatever the mix. */
    static const char *pool[] = {"a", "e", "E", " ", "\n", "\xCC\x81", "\xCC\x88", "\xCC\xA3", "\xCD\x85", "\xC3\xA9",
                                 "\xE1\x84\x80", "\xE1\x85\xA1", "\xE1\x86\xA8", "\xEA\xB0\x80", "\xE2\x84\xAB",
                                 "\xEF\xAC\x81", "\xE0\xA4\x95", "\xE0\xA4\xBC", "\xE0\xAD\x87", "\xE0\xAC\xBE",
                                 "\xCE\xB1", "\xCD\x82", "\xE2\x80\x8D", "\xF0\x9F\x98\x80", "\x00", "<|eot_id|>",
                                 "'s", "1", "\xE1\xBE\xB3", "\xEF\xBF\xBF"};
    size_t n_pool = sizeof pool / sizeof *pool;
    int roundtrips = 0, wrong = 0;
    char buf[400];
    for (int iter = 0; iter < 1500; iter++) {
        size_t n = 0, parts = rng() % 30;
        for (size_t k = 0; k < parts; k++) {
            const char *p = pool[rng() % n_pool];
            size_t plen = *p ? strlen(p) : 1;
            memcpy(buf + n, p, plen);
            n += plen;
        }
        rm_ids v = enc(tok, buf, n, NULL, 0, NULL);
        rm_buf back = {0};
        st = rm_tok_decode(tok, v.data, v.len, &back, &err);
        utf8proc_uint8_t *want = NULL;
        utf8proc_ssize_t want_len = utf8proc_map((const utf8proc_uint8_t *)buf, (utf8proc_ssize_t)n, &want,
                                                 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        int ok = st == RM_OK && want_len >= 0 && back.len == (size_t)want_len &&
                 (want_len == 0 || memcmp(back.data, want, (size_t)want_len) == 0);
        CHECK(ok, "random text %d: decode(encode(text)) is not NFC(text) (%zu bytes)", iter, n);
        roundtrips++;
        wrong += !ok;
        free(want);
        rm_buf_free(&back);
        rm_ids_release(&v);
    }
    fprintf(stderr, "NFC on Llama 3: %d encodings of NFD text match tiktoken's ids (%d differ, %d texts changed by "
            "NFD); %d random texts decode to their NFC form (%d wrong)\n", same, differ, decomposed, roundtrips, wrong);
    rm_tok_free(tok);
}

/* ---------------------------------------------------------------- bad files */

typedef void (*mutate_fn)(json_t *j);
static json_t *model_of(json_t *j) { return json_object_get(j, "model"); }
static void m_vocab_array(json_t *j) { json_object_set_new(model_of(j), "vocab", json_array()); }
static void m_vocab_missing(json_t *j) { json_object_del(model_of(j), "vocab"); }
static void m_vocab_string_id(json_t *j) { json_object_set_new(json_object_get(model_of(j), "vocab"), "ab", json_string("x")); }
static void m_vocab_dup_id(json_t *j) { json_object_set_new(json_object_get(model_of(j), "vocab"), "qq", json_integer(7)); }
static void m_vocab_negative(json_t *j) { json_object_set_new(json_object_get(model_of(j), "vocab"), "qq", json_integer(-1)); }
static void m_vocab_huge(json_t *j) { json_object_set_new(json_object_get(model_of(j), "vocab"), "qq", json_real(1e30)); }
static void m_vocab_big(json_t *j) { json_object_set_new(json_object_get(model_of(j), "vocab"), "qq", json_integer(1 << 24)); }
static void m_vocab_fraction(json_t *j) { json_object_set_new(json_object_get(model_of(j), "vocab"), "qq", json_real(3.5)); }
static void m_model_type(json_t *j) { json_object_set_new(model_of(j), "type", json_string("WordPiece")); }
static void m_model_missing(json_t *j) { json_object_del(j, "model"); }
static void m_byte_fallback(json_t *j) { json_object_set_new(model_of(j), "byte_fallback", json_true()); }
static void m_dropout(json_t *j) { json_object_set_new(model_of(j), "dropout", json_real(0.1)); }
static void m_merge_unknown(json_t *j) { json_array_append_new(json_object_get(model_of(j), "merges"), json_pack("[ss]", "zz", "a")); }
static void m_merge_unmerged(json_t *j) { json_array_append_new(json_object_get(model_of(j), "merges"), json_pack("[ss]", "x", "q")); }
static void m_merge_three(json_t *j) { json_array_append_new(json_object_get(model_of(j), "merges"), json_string("a b c")); }
static void m_merge_number(json_t *j) { json_array_append_new(json_object_get(model_of(j), "merges"), json_integer(3)); }
static void m_merges_object(json_t *j) { json_object_set_new(model_of(j), "merges", json_object()); }
static void m_normalizer(json_t *j) { json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "Lowercase")); }
static void m_pre_null(json_t *j) { json_object_set_new(j, "pre_tokenizer", json_null()); }
static void m_pre_metaspace(json_t *j) { json_object_set_new(j, "pre_tokenizer", json_pack("{s:s}", "type", "Metaspace")); }
static void m_split_removed(json_t *j) {
    json_object_set_new(j, "pre_tokenizer", json_pack("{s:s,s:[{s:s,s:{s:s},s:s},{s:s}]}", "type", "Sequence",
                                                      "pretokenizers", "type", "Split", "pattern", "Regex", "\\s+",
                                                      "behavior", "Removed", "type", "ByteLevel"));
}
static void m_split_bad_regex(json_t *j) {
    json_object_set_new(j, "pre_tokenizer", json_pack("{s:s,s:[{s:s,s:{s:s},s:s},{s:s}]}", "type", "Sequence",
                                                      "pretokenizers", "type", "Split", "pattern", "Regex", "(ab",
                                                      "behavior", "Isolated", "type", "ByteLevel"));
}
static void m_bytelevel_first(json_t *j) {
    json_object_set_new(j, "pre_tokenizer", json_pack("{s:s,s:[{s:s},{s:s,s:{s:s},s:s}]}", "type", "Sequence",
                                                      "pretokenizers", "type", "ByteLevel", "type", "Split", "pattern",
                                                      "Regex", "a", "behavior", "Isolated"));
}
static void m_added_huge_id(json_t *j) { json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 0), "id", json_real(1e20)); }
static void m_added_dup_id(json_t *j) { json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 1), "id", json_integer(300)); }
static void m_added_no_content(json_t *j) { json_object_del(json_array_get(json_object_get(j, "added_tokens"), 0), "content"); }
static void m_added_flag_type(json_t *j) { json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 0), "lstrip", json_string("yes")); }
static void m_long_token(json_t *j) {
    char *t = malloc(RM_TOK_MAX_TOKEN_BYTES + 2);
    memset(t, 'a', RM_TOK_MAX_TOKEN_BYTES + 1);
    t[RM_TOK_MAX_TOKEN_BYTES + 1] = 0;
    json_object_set_new(json_object_get(model_of(j), "vocab"), t, json_integer(999));
    free(t);
}
static void m_top_array(json_t *j) { json_object_clear(j); }

static void test_bad_files(void) {
    struct { mutate_fn fn; rm_status status; const char *needle; } bad[] = {
        {m_vocab_array, RM_ERR_FORMAT, "model.vocab"},
        {m_vocab_missing, RM_ERR_FORMAT, "model.vocab: missing"},
        {m_vocab_string_id, RM_ERR_FORMAT, "model.vocab[\"ab\"]"},
        {m_vocab_dup_id, RM_ERR_FORMAT, "already belongs"},
        {m_vocab_negative, RM_ERR_LIMIT, "model.vocab[\"qq\"]"},
        {m_vocab_huge, RM_ERR_LIMIT, "model.vocab[\"qq\"]"},
        {m_vocab_big, RM_ERR_LIMIT, "outside 0..16777215"},
        {m_vocab_fraction, RM_ERR_FORMAT, "expected an integer"},
        {m_model_type, RM_ERR_UNSUPPORTED, "model.type"},
        {m_model_missing, RM_ERR_FORMAT, "model: missing"},
        {m_byte_fallback, RM_ERR_UNSUPPORTED, "model.byte_fallback"},
        {m_dropout, RM_ERR_UNSUPPORTED, "model.dropout"},
        {m_merge_unknown, RM_ERR_FORMAT, "model.merges[5]: \"zz\""},
        {m_merge_unmerged, RM_ERR_FORMAT, "merged token \"xq\""},
        {m_merge_three, RM_ERR_FORMAT, "model.merges[5]"},
        {m_merge_number, RM_ERR_FORMAT, "model.merges[5]"},
        {m_merges_object, RM_ERR_FORMAT, "model.merges"},
        {m_normalizer, RM_ERR_UNSUPPORTED, "normalizer.type: normalizer \"Lowercase\""},
        {m_pre_null, RM_ERR_UNSUPPORTED, "pre_tokenizer"},
        {m_pre_metaspace, RM_ERR_UNSUPPORTED, "\"Metaspace\""},
        {m_split_removed, RM_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[0].behavior"},
        {m_split_bad_regex, RM_ERR_FORMAT, "pre_tokenizer.pretokenizers[0].pattern.Regex"},
        {m_bytelevel_first, RM_ERR_UNSUPPORTED, "after ByteLevel"},
        {m_added_huge_id, RM_ERR_LIMIT, "added_tokens[0].id"},
        {m_added_dup_id, RM_ERR_FORMAT, "is also the id"},
        {m_added_no_content, RM_ERR_FORMAT, "added_tokens[0].content"},
        {m_added_flag_type, RM_ERR_FORMAT, "added_tokens[0].lstrip"},
        {m_long_token, RM_ERR_LIMIT, "more than 65536"},
        {m_top_array, RM_ERR_UNSUPPORTED, "pre_tokenizer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = small_json(i % 2);
        bad[i].fn(j);
        rm_status st;
        rm_err err = {0};
        rm_tokenizer *tok = parse_json(j, &st, &err);
        CHECK(!tok && st == bad[i].status && strstr(err.msg, bad[i].needle),
              "bad file %zu: status %d, message \"%s\", wanted %d with \"%s\"", i, st, err.msg, bad[i].status,
              bad[i].needle);
        rm_tok_free(tok);
        json_decref(j);
    }

    /* Text that is not a tokenizer at all. */
    json_t *j = small_json(0);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    rm_tokenizer *tok = NULL;
    rm_err err = {0};
    size_t full = strlen(s);
    int truncations_refused = 0;
    for (size_t cut = 0; cut < full; cut += 1 + full / 97) {
        rm_status st = rm_tok_parse(&tok, s, cut, "cut.json", &err);
        truncations_refused += st == RM_ERR_FORMAT && !tok && strstr(err.msg, "cut.json: invalid JSON at line 1") != NULL;
        rm_tok_free(tok);
        tok = NULL;
    }
    CHECK(truncations_refused == (int)((full + full / 97) / (1 + full / 97)), "every truncation is a FORMAT error");
    free(s);
    const char *dup = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []},"
                      " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    rm_status st = rm_tok_parse(&tok, dup, strlen(dup), "dup.json", &err);
    CHECK(st == RM_ERR_FORMAT && strstr(err.msg, "duplicate"), "duplicate key: %s", err.msg);
    st = rm_tok_load(&tok, "/nonexistent/tokenizer.json", &err);
    CHECK(st == RM_ERR_IO && strstr(err.msg, "/nonexistent/tokenizer.json"), "missing file: %s", err.msg);
    st = rm_tok_load(&tok, "/tmp", &err);
    CHECK(st == RM_ERR_IO && !tok, "directory: %s", err.msg);
}

/* ---------------------------------------------------------------- allocation failures */

/* Takes ownership of j; mask as rm_tok_encode's plain_mask (NULL or strlen(text) bytes). */
static void test_alloc_failures(json_t *j, const char *text, const uint8_t *mask) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t len = strlen(s);
    rm_ids want = {0};
    rm_tokenizer *tok = NULL;
    rm_err err;
    CHECK(rm_tok_parse(&tok, s, len, "small.json", &err) == RM_OK, "parse");
    if (tok) rm_tok_encode(tok, text, strlen(text), mask, 1, &want, &err);
    rm_tok_free(tok);

    int points = 0, nomem = 0, wrong = 0, json_masked = 0;
    for (int64_t k = 0; k < 100000; k++) {
        tok = NULL;
        rm_alloc_fail_after(k);
        rm_status st = rm_tok_parse(&tok, s, len, "small.json", &err);
        rm_ids got = {0};
        rm_status st2 = RM_OK;
        if (st == RM_OK) st2 = rm_tok_encode(tok, text, strlen(text), mask, 1, &got, &err);
        rm_alloc_fail_after(-1);
        points++;
        if (st != RM_OK || st2 != RM_OK) {
            /* jansson turns some allocation failures into syntax errors ("invalid
             * token"): accepted from the JSON parser only, which names a line. */
            if ((st == RM_OK ? st2 : st) == RM_ERR_NOMEM) nomem++;
            else if (st == RM_ERR_FORMAT && strncmp(err.msg, "small.json: line ", 17) == 0) json_masked++;
            else {
                wrong++;
                fprintf(stderr, "    alloc failure %lld gave status %d: %s\n", (long long)k, st == RM_OK ? st2 : st,
                        err.msg);
            }
        } else {
            CHECK(same_ids(&got, want.data, want.len), "ids after %lld allocations", (long long)k);
        }
        rm_ids_release(&got);
        rm_tok_free(tok);
        if (st == RM_OK && st2 == RM_OK) break;
    }
    CHECK(wrong == 0, "%d allocation failures reported as something else than RM_ERR_NOMEM", wrong);
    CHECK(nomem > 30 && points > 500, "only %d allocation points (%d NOMEM)", points, nomem);
    fprintf(stderr, "allocation failures on \"%s\": %d points: %d RM_ERR_NOMEM, %d reported by jansson as bad JSON\n",
            text, points, nomem, json_masked);
    rm_ids_release(&want);
    free(s);
}

/* ---------------------------------------------------------------- public API */

static void test_public_api(void) {
    json_t *j = small_json(0);
    char path[] = "/tmp/test_tokenizer_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) { json_decref(j); return; }
    json_dumpfd(j, fd, 0);
    close(fd);
    json_decref(j);

    char msg[256];
    rm_tokenizer *tok = NULL;
    CHECK(rm_tokenizer_load(path, &tok, msg, sizeof msg) == RM_OK && tok, "rm_tokenizer_load: %s", msg);
    if (tok) {
        int32_t *ids = NULL;
        size_t n = 99;
        CHECK(rm_tokenize(tok, "abc<s>", 6, &ids, &n, msg, sizeof msg) == RM_OK && n == 4 && ids[0] == 258 &&
                  ids[1] == '<',
              "rm_tokenize is plain text");
        rm_ids_free(ids);
        CHECK(rm_tokenize(tok, "", 0, &ids, &n, msg, sizeof msg) == RM_OK && n == 0 && ids, "empty text");
        rm_ids_free(ids);
        CHECK(rm_tokenize(tok, "a\xc3", 2, &ids, &n, msg, sizeof msg) == RM_ERR_UTF8 && !ids && n == 0 &&
                  strstr(msg, "byte offset 1"),
              "rm_tokenize bad UTF-8: %s", msg);
        CHECK(rm_tokenize(tok, NULL, 1, &ids, &n, msg, 0) == RM_ERR_INVALID_ARG, "NULL text");
        CHECK(rm_token_id(tok, "abc") == 258 && rm_token_id(tok, "<s>") == 300 && rm_token_id(tok, "nope") == -1,
              "rm_token_id");
        CHECK(rm_token_id(NULL, "abc") == -1 && rm_token_id(tok, NULL) == -1, "rm_token_id NULL");
        rm_tokenizer_free(tok);
    }
    unlink(path);
    tok = (rm_tokenizer *)1;
    CHECK(rm_tokenizer_load(path, &tok, msg, sizeof msg) == RM_ERR_IO && !tok && strstr(msg, path),
          "missing file: %s", msg);
    CHECK(rm_tokenizer_load(NULL, &tok, msg, sizeof msg) == RM_ERR_INVALID_ARG, "NULL path");
    rm_tokenizer_free(NULL);
    rm_ids_free(NULL);
}

int main(void) {
    rm_global_init();
    rng_state = test_seed() | 1;
    init_byte_chars();

    test_hashmap();
    test_alphabet();
    test_small();
    test_normalizers();
    test_bad_files();
    test_alloc_failures(small_json(1), "ab <s>x aaa [L] b\xe4\xb8\xad\xe6\x96\x87 [W] ", NULL);
    static const uint8_t ab_masked[40] = {[5] = 1, [6] = 1};
    test_alloc_failures(norm_json(json_pack("{s:s,s:[{s:s},{s:s}]}", "type", "Sequence", "normalizers", "type", "NFKD",
                                            "type", "NFC")),
                        "[e\xcc\x81]ab[\xc3\xa9] <e\xcc\x81>caf\xc3\xa9 \xef\xac\x81<s>x", ab_masked);
    if (!test_have_fixtures()) {   /* the rest reads the Llama 3 tokenizer and its cases */
        test_skip_fixtures(12);
        return test_summary("test_tokenizer");
    }
    test_public_api();

    double t0 = now_ms();
    rm_tokenizer *tok = NULL;
    rm_err err = {0};
    rm_status st = rm_tok_load(&tok, fixture("tokenizer/llama3/tokenizer.json"), &err);
    CHECK(st == RM_OK, "load Llama 3 tokenizer.json: %s", err.msg);
    if (!tok) return test_summary("test_tokenizer");
    fprintf(stderr, "Llama 3 tokenizer.json loaded in %.1f ms\n", now_ms() - t0);

    read_cases();
    CHECK(n_cases >= 150, "only %zu cases", n_cases);
    test_cases(tok);
    test_nfc_llama3();
    test_lookup(tok);
    test_special(tok);
    static const char *refs[] = {"reference/tiny-llama3-seqcls.reference.jsonl",
                                 "reference/tiny-llama3-causal.reference.jsonl",
                                 "reference/tiny-llama3-causal.principle.reference.jsonl",
                                 "reference/tiny-qwen2-seqcls.reference.jsonl",
                                 "reference/tiny-qwen3-seqcls.reference.jsonl"};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) test_reference_file(tok, refs[i]);
    test_utf8(tok);
    test_random_text(tok);
    test_merge_against_tiktoken(tok);
    test_threads(tok);
    bench(tok);

    rm_tok_free(tok);
    for (size_t i = 0; i < n_cases; i++) {
        free(cases[i].text);
        free(cases[i].ids);
    }
    free(cases);
    return test_summary("test_tokenizer");
}
