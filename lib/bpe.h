/*
 * bpe.h - the "model" section of a byte-level BPE tokenizer.json: the
 * vocabulary, the merge ranks, and the merge algorithm that turns one
 * pre-token into ids exactly as Hugging Face tokenizers' BPE model does.
 *
 * Tokens are stored as written in the file (byte-level alphabet, "Ġ" for a
 * space) and, when every character belongs to that alphabet, also as the raw
 * bytes they stand for, so encoding never has to re-map text.
 */
#ifndef RM_BPE_H
#define RM_BPE_H

#include <jansson.h>

#include "common.h"
#include "hashmap.h"

/* Bounds on what a tokenizer.json may declare (documented in docs/tokenizer.md). */
#define RM_TOK_MAX_ID ((1 << 24) - 1)            /* highest token id accepted */
#define RM_TOK_MAX_TOKEN_BYTES (64 * 1024)       /* longest vocabulary / added token */
#define RM_TOK_MAX_MERGES (1 << 24)              /* merge rules */
#define RM_TOK_NO_TOKEN UINT32_MAX               /* length marking an unused id */

/* One merge rule: (left id, right id) -> merged id, with its rank (its index
 * in model.merges; lower merges first). */
typedef struct rm_bpe_pair {
    uint64_t key;             /* left << 32 | right; UINT64_MAX = empty slot */
    uint32_t rank;
    int32_t merged;
} rm_bpe_pair;

typedef struct rm_bpe {
    int32_t n_ids;            /* highest vocabulary id + 1 */
    uint32_t *text_off;       /* [n_ids] the token as written, at text + text_off[id] (NUL-terminated) */
    uint32_t *text_len;       /* [n_ids] its length; RM_TOK_NO_TOKEN = no token has this id */
    uint32_t *raw_off;        /* [n_ids] the bytes it stands for, at raw + raw_off[id] */
    uint32_t *raw_len;        /* [n_ids] RM_TOK_NO_TOKEN = not in the byte-level alphabet */
    char *text, *raw;         /* arenas holding the strings */
    rm_hashmap by_text;       /* token as written -> id (keys in `text`) */
    rm_hashmap by_raw;        /* raw bytes -> id (keys in `raw`) */
    int32_t byte_id[256];     /* id of each single byte; -1 when the vocabulary lacks it */
    rm_bpe_pair *pairs;       /* merge table, pair_mask + 1 slots */
    size_t pair_mask;
    size_t n_merges;
    int ignore_merges;        /* a pre-token that is itself a token is emitted whole (Llama 3) */
    int32_t unk_id;           /* model.unk_token's id, or -1: bytes missing from the vocabulary are dropped */
    int fuse_unk;             /* consecutive unknown bytes become one unk */
} rm_bpe;

/* Per-call working memory of rm_bpe_encode_word (one per thread). Zero-initialise. */
typedef struct rm_bpe_scratch {
    struct rm_bpe_symbol *sym;
    struct rm_bpe_candidate *heap;
    size_t cap;               /* symbols room; the heap has 3 * cap */
} rm_bpe_scratch;

/* The GPT-2 byte-level alphabet (bytes_to_unicode): the code point standing for each byte. */
RM_INTERNAL uint32_t rm_bytelevel_codepoint(uint8_t byte);
/* The byte a code point stands for, or -1 when it is not in the alphabet. */
RM_INTERNAL int rm_bytelevel_byte(uint32_t codepoint);

/* Reads the JSON object `model` (type "BPE"). `name` prefixes messages, which
 * name the field ("model.merges[12]: ..."). On failure *bpe holds nothing to free. */
RM_INTERNAL rm_status rm_bpe_load(rm_bpe *bpe, json_t *model, const char *name, rm_err *err);
RM_INTERNAL void rm_bpe_free(rm_bpe *bpe);

/* Appends the ids of one pre-token (raw bytes) to out. Returns 0 when out of
 * memory. Reads bpe only, so threads may share it; scratch is the caller's. */
RM_INTERNAL int rm_bpe_encode_word(const rm_bpe *bpe, const uint8_t *word, size_t len,
                                   rm_bpe_scratch *scratch, rm_ids *out);
RM_INTERNAL void rm_bpe_scratch_free(rm_bpe_scratch *scratch);

/* A JSON number that is an integer (files are read with JSON_DECODE_INT_AS_REAL,
 * so huge ids are reported, not rejected by the parser): 1 and *out set, else 0. */
RM_INTERNAL int rm_json_integer(const json_t *v, int64_t *out);

/* Looks a merge rule up: returns 1 and sets *rank, *merged when (left, right) merges. */
RM_INTERNAL int rm_bpe_pair_get(const rm_bpe *bpe, int32_t left, int32_t right, uint32_t *rank,
                                int32_t *merged);

#endif
