/*
 * bpe.c - the BPE model of tokenizer.json: vocabulary and merges, and the
 * rank-ordered merge loop of Hugging Face tokenizers (models/bpe/word.rs):
 * symbols in a linked list, candidate merges in a min-heap ordered by
 * (rank, position), stale candidates recognised when popped.
 */
#include "bpe.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- byte-level alphabet */

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other
 * 68 (0x00-0x20, 0x7F-0xA0, 0xAD) for 256, 257, ... in byte order. */
static int printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

uint32_t rm_bytelevel_codepoint(uint8_t b) {
    if (printable(b)) return b;
    if (b <= 0x20) return 256u + b;            /* 256..288 */
    if (b <= 0xA0) return 256u + b - 0x7F + 33; /* 289..322 */
    return 323;                                /* 0xAD */
}

int rm_bytelevel_byte(uint32_t cp) {
    if (cp < 256) return printable(cp) ? (int)cp : -1;
    uint32_t n = cp - 256;
    if (n <= 32) return (int)n;
    if (n <= 66) return (int)(n - 33 + 0x7F);
    return n == 67 ? 0xAD : -1;
}

/* Decodes one UTF-8 character of valid text; returns its length. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (s[0] < 0x80 || n < 2) { *cp = s[0]; return 1; }
    if (s[0] < 0xE0) { *cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F); return 2; }
    if (s[0] < 0xF0 || n < 4) {
        if (n < 3) { *cp = s[0]; return 1; }
        *cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
          (s[3] & 0x3F);
    return 4;
}

/* The raw bytes a byte-level token stands for, written to out (room for len
 * bytes: each character is at least one byte). Returns the length, or -1 when
 * a character is outside the alphabet (an added-style token such as "<|x|>"
 * is fine: those characters are all printable ASCII). */
static long bytelevel_to_raw(const char *text, size_t len, char *out) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        i += utf8_decode(s + i, len - i, &cp);
        int b = rm_bytelevel_byte(cp);
        if (b < 0) return -1;
        out[o++] = (char)b;
    }
    return (long)o;
}

/* ---------------------------------------------------------------- merge table */

static inline size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
}

int rm_bpe_pair_get(const rm_bpe *bpe, int32_t left, int32_t right, uint32_t *rank, int32_t *merged) {
    if (!bpe->pairs) return 0;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t j = pair_slot(key, bpe->pair_mask);; j = (j + 1) & bpe->pair_mask) {
        const rm_bpe_pair *p = &bpe->pairs[j];
        if (p->key == key) {
            *rank = p->rank;
            *merged = p->merged;
            return 1;
        }
        if (p->key == UINT64_MAX) return 0;
    }
}

/* Like HF, a pair listed twice keeps its last rank. */
static void pair_put(rm_bpe *bpe, int32_t left, int32_t right, uint32_t rank, int32_t merged) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t j = pair_slot(key, bpe->pair_mask);
    while (bpe->pairs[j].key != UINT64_MAX && bpe->pairs[j].key != key) j = (j + 1) & bpe->pair_mask;
    if (bpe->pairs[j].key == UINT64_MAX) bpe->n_merges++;
    bpe->pairs[j] = (rm_bpe_pair){key, rank, merged};
}

/* ---------------------------------------------------------------- loading */

int rm_json_integer(const json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (!json_is_real(v)) return 0;
    double d = json_real_value(v);
    if (!isfinite(d) || d != floor(d)) return 0;
    /* Huge values saturate so the caller reports them as out of range. */
    *out = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
    return 1;
}

/* Prints at most 64 bytes of a token in messages. */
#define SHOW(s, n) (int)((n) > 64 ? 64 : (n)), (s)

static rm_status load_vocab(rm_bpe *bpe, json_t *vocab, const char *name, rm_err *err) {
    if (!json_is_object(vocab))
        return rm_fail(err, RM_ERR_FORMAT, "%s: model.vocab: %s", name,
                       vocab ? "expected an object {token: id}" : "missing");
    size_t n = json_object_size(vocab);
    if (n > (size_t)RM_TOK_MAX_ID + 1)
        return rm_fail(err, RM_ERR_LIMIT, "%s: model.vocab: %zu tokens, more than the bound of %d", name, n,
                       RM_TOK_MAX_ID + 1);

    /* First pass: check every entry, find the highest id and the arena size. */
    const char *key;
    size_t key_len, total = 0;
    json_t *value;
    int64_t max_id = -1;
    json_object_keylen_foreach(vocab, key, key_len, value) {
        int64_t id;
        if (!rm_json_integer(value, &id))
            return rm_fail(err, RM_ERR_FORMAT, "%s: model.vocab[\"%.*s\"]: expected an integer id", name,
                           SHOW(key, key_len));
        if (id < 0 || id > RM_TOK_MAX_ID)
            return rm_fail(err, RM_ERR_LIMIT, "%s: model.vocab[\"%.*s\"]: id %lld outside 0..%d", name,
                           SHOW(key, key_len), (long long)id, RM_TOK_MAX_ID);
        if (key_len > RM_TOK_MAX_TOKEN_BYTES)
            return rm_fail(err, RM_ERR_LIMIT, "%s: model.vocab[\"%.*s...\"]: token of %zu bytes, more than %d",
                           name, SHOW(key, key_len), key_len, RM_TOK_MAX_TOKEN_BYTES);
        if (id > max_id) max_id = id;
        total += key_len + 1;
    }
    if (total > UINT32_MAX)
        return rm_fail(err, RM_ERR_LIMIT, "%s: model.vocab: %zu bytes of token text, more than 4 GiB", name, total);

    bpe->n_ids = (int32_t)(max_id + 1);
    size_t ids = (size_t)bpe->n_ids;
    bpe->text_off = rm_malloc(ids * sizeof(uint32_t) + 1);
    bpe->text_len = rm_malloc(ids * sizeof(uint32_t) + 1);
    bpe->raw_off = rm_malloc(ids * sizeof(uint32_t) + 1);
    bpe->raw_len = rm_malloc(ids * sizeof(uint32_t) + 1);
    bpe->text = rm_malloc(total);
    bpe->raw = rm_malloc(total);
    if (!bpe->text_off || !bpe->text_len || !bpe->raw_off || !bpe->raw_len || !bpe->text || !bpe->raw ||
        !rm_hashmap_init(&bpe->by_text, n) || !rm_hashmap_init(&bpe->by_raw, n))
        return rm_fail(err, RM_ERR_NOMEM, "%s: model.vocab: out of memory for %zu tokens", name, n);
    for (size_t i = 0; i < ids; i++) bpe->text_len[i] = bpe->raw_len[i] = RM_TOK_NO_TOKEN;

    /* Second pass: copy the strings into the arenas and index them. */
    size_t text_at = 0, raw_at = 0;
    json_object_keylen_foreach(vocab, key, key_len, value) {
        int64_t id64;
        rm_json_integer(value, &id64);
        int32_t id = (int32_t)id64;
        if (bpe->text_len[id] != RM_TOK_NO_TOKEN)
            return rm_fail(err, RM_ERR_FORMAT, "%s: model.vocab[\"%.*s\"]: id %d already belongs to \"%.*s\"", name,
                           SHOW(key, key_len), id, SHOW(bpe->text + bpe->text_off[id], bpe->text_len[id]));
        char *text = bpe->text + text_at;
        memcpy(text, key, key_len);
        text[key_len] = 0;
        bpe->text_off[id] = (uint32_t)text_at;
        bpe->text_len[id] = (uint32_t)key_len;
        text_at += key_len + 1;
        if (rm_hashmap_put(&bpe->by_text, text, key_len, id, NULL) < 0)
            return rm_fail(err, RM_ERR_NOMEM, "%s: model.vocab: out of memory", name);
        long raw_len = bytelevel_to_raw(text, key_len, bpe->raw + raw_at);
        if (raw_len < 0) continue;   /* not a byte-level token: can never match text */
        bpe->raw_off[id] = (uint32_t)raw_at;
        bpe->raw_len[id] = (uint32_t)raw_len;
        /* The alphabet is a bijection, so two tokens never share raw bytes. */
        if (rm_hashmap_put(&bpe->by_raw, bpe->raw + raw_at, (size_t)raw_len, id, NULL) < 0)
            return rm_fail(err, RM_ERR_NOMEM, "%s: model.vocab: out of memory", name);
        raw_at += (size_t)raw_len;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (!rm_hashmap_get(&bpe->by_raw, &c, 1, &bpe->byte_id[b])) bpe->byte_id[b] = -1;
    }
    return RM_OK;
}

/* Splits merge i into its two halves: "a b" (exactly one space, as HF
 * requires) or ["a", "b"]. */
static rm_status merge_halves(json_t *m, size_t i, const char *name, const char **a, size_t *a_len,
                              const char **b, size_t *b_len, rm_err *err) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        size_t n = json_string_length(m);
        const char *space = memchr(s, ' ', n);
        if (!space || memchr(space + 1, ' ', n - (size_t)(space - s) - 1))
            return rm_fail(err, RM_ERR_FORMAT, "%s: model.merges[%zu]: \"%.*s\" is not two tokens joined by one space",
                           name, i, SHOW(s, n));
        *a = s;
        *a_len = (size_t)(space - s);
        *b = space + 1;
        *b_len = n - *a_len - 1;
        return RM_OK;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *a_len = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *b_len = json_string_length(json_array_get(m, 1));
        return RM_OK;
    }
    return rm_fail(err, RM_ERR_FORMAT, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", name, i);
}

static rm_status load_merges(rm_bpe *bpe, json_t *merges, const char *name, rm_err *err) {
    if (!merges) merges = json_array();   /* absent: no merges (a vocabulary of single bytes) */
    else json_incref(merges);
    if (!merges) return rm_fail(err, RM_ERR_NOMEM, "%s: out of memory", name);
    rm_status st = RM_OK;
    rm_buf joined = {0};
    if (!json_is_array(merges)) {
        st = rm_fail(err, RM_ERR_FORMAT, "%s: model.merges: expected an array", name);
        goto done;
    }
    size_t n = json_array_size(merges);
    if (n > RM_TOK_MAX_MERGES) {
        st = rm_fail(err, RM_ERR_LIMIT, "%s: model.merges: %zu merges, more than the bound of %d", name, n,
                     RM_TOK_MAX_MERGES);
        goto done;
    }
    size_t cap = 16;
    while (cap < n + n / 2) cap <<= 1;   /* at most two thirds full */
    bpe->pairs = rm_malloc(cap * sizeof *bpe->pairs);
    if (!bpe->pairs) {
        st = rm_fail(err, RM_ERR_NOMEM, "%s: model.merges: out of memory for %zu merges", name, n);
        goto done;
    }
    bpe->pair_mask = cap - 1;
    memset(bpe->pairs, 0xff, cap * sizeof *bpe->pairs);   /* key UINT64_MAX: empty */

    for (size_t i = 0; i < n; i++) {
        const char *a = NULL, *b = NULL;
        size_t a_len = 0, b_len = 0;
        if ((st = merge_halves(json_array_get(merges, i), i, name, &a, &a_len, &b, &b_len, err)) != RM_OK)
            goto done;
        int32_t left, right, merged;
        if (!rm_hashmap_get(&bpe->by_text, a, a_len, &left) || !rm_hashmap_get(&bpe->by_text, b, b_len, &right)) {
            int first = !rm_hashmap_get(&bpe->by_text, a, a_len, &left);
            const char *missing = first ? a : b;
            size_t missing_len = first ? a_len : b_len;
            st = rm_fail(err, RM_ERR_FORMAT, "%s: model.merges[%zu]: \"%.*s\" is not in model.vocab", name, i,
                         SHOW(missing, missing_len));
            goto done;
        }
        joined.len = 0;
        if (!rm_buf_append(&joined, a, a_len) || !rm_buf_append(&joined, b, b_len)) {
            st = rm_fail(err, RM_ERR_NOMEM, "%s: model.merges: out of memory", name);
            goto done;
        }
        if (!rm_hashmap_get(&bpe->by_text, joined.data, joined.len, &merged)) {
            st = rm_fail(err, RM_ERR_FORMAT, "%s: model.merges[%zu]: the merged token \"%.*s\" is not in model.vocab",
                         name, i, SHOW(joined.data, joined.len));
            goto done;
        }
        pair_put(bpe, left, right, (uint32_t)i, merged);
    }
done:
    rm_buf_free(&joined);
    json_decref(merges);
    return st;
}

/* An optional field that must be null/absent or a given "neutral" value. */
static rm_status refuse_option(json_t *model, const char *field, const char *name, rm_err *err) {
    json_t *v = json_object_get(model, field);
    if (!v || json_is_null(v) || json_is_false(v)) return RM_OK;
    if (json_is_string(v) && json_string_length(v) == 0) return RM_OK;
    if (json_is_number(v) && json_number_value(v) == 0) return RM_OK;
    return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: model.%s: only null is supported", name, field);
}

rm_status rm_bpe_load(rm_bpe *bpe, json_t *model, const char *name, rm_err *err) {
    memset(bpe, 0, sizeof *bpe);
    bpe->unk_id = -1;
    rm_status st;
    if (!json_is_object(model))
        return rm_fail(err, RM_ERR_FORMAT, "%s: model: %s", name, model ? "expected an object" : "missing");
    json_t *type = json_object_get(model, "type");
    if (!json_is_string(type))
        return rm_fail(err, RM_ERR_FORMAT, "%s: model.type: expected a string such as \"BPE\"", name);
    if (strcmp(json_string_value(type), "BPE") != 0)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "%s: model.type: \"%s\" is not supported (only \"BPE\")", name,
                       json_string_value(type));
    if ((st = refuse_option(model, "dropout", name, err)) != RM_OK ||
        (st = refuse_option(model, "continuing_subword_prefix", name, err)) != RM_OK ||
        (st = refuse_option(model, "end_of_word_suffix", name, err)) != RM_OK ||
        (st = refuse_option(model, "byte_fallback", name, err)) != RM_OK)
        return st;
    json_t *v = json_object_get(model, "ignore_merges");
    if (v && !json_is_boolean(v) && !json_is_null(v))
        return rm_fail(err, RM_ERR_FORMAT, "%s: model.ignore_merges: expected true or false", name);
    bpe->ignore_merges = json_is_true(v);
    v = json_object_get(model, "fuse_unk");
    if (v && !json_is_boolean(v) && !json_is_null(v))
        return rm_fail(err, RM_ERR_FORMAT, "%s: model.fuse_unk: expected true or false", name);
    bpe->fuse_unk = json_is_true(v);

    if ((st = load_vocab(bpe, json_object_get(model, "vocab"), name, err)) != RM_OK ||
        (st = load_merges(bpe, json_object_get(model, "merges"), name, err)) != RM_OK) {
        rm_bpe_free(bpe);
        return st;
    }
    v = json_object_get(model, "unk_token");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) ||
            !rm_hashmap_get(&bpe->by_text, json_string_value(v), json_string_length(v), &bpe->unk_id)) {
            rm_bpe_free(bpe);
            return rm_fail(err, RM_ERR_FORMAT, "%s: model.unk_token: expected null or a token of model.vocab", name);
        }
    }
    return RM_OK;
}

void rm_bpe_free(rm_bpe *bpe) {
    if (!bpe) return;
    rm_mfree(bpe->text_off);
    rm_mfree(bpe->text_len);
    rm_mfree(bpe->raw_off);
    rm_mfree(bpe->raw_len);
    rm_mfree(bpe->text);
    rm_mfree(bpe->raw);
    rm_mfree(bpe->pairs);
    rm_hashmap_free(&bpe->by_text);
    rm_hashmap_free(&bpe->by_raw);
    memset(bpe, 0, sizeof *bpe);
    bpe->unk_id = -1;
}

/* ---------------------------------------------------------------- merging one word */

typedef struct rm_bpe_symbol {
    int32_t id;
    int32_t prev, next;       /* neighbours in the list; -1 at the ends */
    uint32_t len;             /* bytes covered; 0 = merged into its left neighbour */
    int32_t pair_merged;      /* what (this, next) merges into, -1 if nothing: the merge-table
                                 answer HF looks up again when a candidate is popped, kept here */
} rm_bpe_symbol;

typedef struct rm_bpe_candidate {
    uint32_t rank;
    uint32_t pos;             /* the left symbol */
    int32_t merged;           /* what the pair merged into when queued (to spot stale entries) */
} rm_bpe_candidate;

static inline int cand_less(rm_bpe_candidate a, rm_bpe_candidate b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static inline void heap_push(rm_bpe_candidate *h, size_t *n, rm_bpe_candidate c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(c, h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

/* Moves `c` down from slot i to where it belongs among the m entries. */
static inline void sift_down(rm_bpe_candidate *h, size_t m, size_t i, rm_bpe_candidate c) {
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= m) break;
        if (child + 1 < m && cand_less(h[child + 1], h[child])) child++;
        if (!cand_less(h[child], c)) break;
        h[i] = h[child];
        i = child;
    }
    h[i] = c;
}

static inline rm_bpe_candidate heap_pop(rm_bpe_candidate *h, size_t *n) {
    rm_bpe_candidate top = h[0], last = h[--(*n)];
    if (*n > 0) sift_down(h, *n, 0, last);
    return top;
}

/* Looks up the pair (pos, next), records the answer in the symbol and queues
 * it: pushed on the heap, or (heapify = 1, while filling) appended. */
static void push_pair(const rm_bpe *bpe, rm_bpe_symbol *sym, rm_bpe_candidate *heap, size_t *n_heap, int32_t pos,
                      int heapify) {
    uint32_t rank;
    int32_t merged;
    int32_t next = sym[pos].next;
    sym[pos].pair_merged = -1;
    if (next >= 0 && rm_bpe_pair_get(bpe, sym[pos].id, sym[next].id, &rank, &merged)) {
        sym[pos].pair_merged = merged;
        rm_bpe_candidate c = {rank, (uint32_t)pos, merged};
        if (heapify) heap[(*n_heap)++] = c;
        else heap_push(heap, n_heap, c);
    }
}

int rm_bpe_encode_word(const rm_bpe *bpe, const uint8_t *word, size_t len, rm_bpe_scratch *s, rm_ids *out) {
    if (len == 0) return 1;
    int32_t id;
    if (len == 1 && bpe->byte_id[word[0]] >= 0) return rm_ids_push(out, bpe->byte_id[word[0]]);
    if (bpe->ignore_merges && rm_hashmap_get(&bpe->by_raw, (const char *)word, len, &id)) return rm_ids_push(out, id);
    if (len > INT32_MAX / 4) return 0;   /* positions are int32; such a pre-token would not fit memory anyway */

    if (s->cap < len) {
        size_t cap = len < 64 ? 64 : len;
        rm_bpe_symbol *sym = rm_malloc(cap * sizeof *sym);
        rm_bpe_candidate *heap = sym ? rm_malloc(3 * cap * sizeof *heap) : NULL;
        if (!heap) {
            rm_mfree(sym);
            return 0;
        }
        rm_bpe_scratch_free(s);
        s->sym = sym;
        s->heap = heap;
        s->cap = cap;
    }
    rm_bpe_symbol *sym = s->sym;
    rm_bpe_candidate *heap = s->heap;

    /* One symbol per byte; a byte the vocabulary lacks becomes unk or is dropped, as in HF. */
    int32_t n = 0;
    int last_unk = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t b = bpe->byte_id[word[i]];
        if (b < 0) {
            if (bpe->unk_id < 0) continue;
            if (bpe->fuse_unk && last_unk) {
                sym[n - 1].len++;
                continue;
            }
            b = bpe->unk_id;
            last_unk = 1;
        } else {
            last_unk = 0;
        }
        sym[n] = (rm_bpe_symbol){b, n - 1, n + 1, 1, -1};
        n++;
    }
    if (n == 0) return 1;
    sym[n - 1].next = -1;

    size_t n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++) push_pair(bpe, sym, heap, &n_heap, i, 1);
    for (size_t i = n_heap / 2; i-- > 0;) sift_down(heap, n_heap, i, heap[i]);   /* O(n) heap build */
    while (n_heap > 0) {
        rm_bpe_candidate top = heap_pop(heap, &n_heap);
        int32_t pos = (int32_t)top.pos;
        if (sym[pos].len == 0) continue;          /* merged away since */
        int32_t right = sym[pos].next;
        if (right < 0) continue;
        /* Stale if the pair at pos no longer merges into the same token (HF's test;
         * pair_merged is always the table's answer for the current pair). */
        if (sym[pos].pair_merged != top.merged) continue;
        sym[pos].id = top.merged;
        sym[pos].len += sym[right].len;
        sym[right].len = 0;
        sym[pos].next = sym[right].next;
        if (sym[pos].next >= 0) sym[sym[pos].next].prev = pos;
        if (sym[pos].prev >= 0) push_pair(bpe, sym, heap, &n_heap, sym[pos].prev, 0);
        push_pair(bpe, sym, heap, &n_heap, pos, 0);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if (!rm_ids_push(out, sym[i].id)) return 0;
    return 1;
}

void rm_bpe_scratch_free(rm_bpe_scratch *s) {
    rm_mfree(s->sym);
    rm_mfree(s->heap);
    memset(s, 0, sizeof *s);
}
