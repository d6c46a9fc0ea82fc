/*
 * tokenizer_impl.h - the inside of rm_tokenizer, shared by tokenizer_load.c
 * (which builds it from tokenizer.json) and tokenizer.c (which encodes with
 * it). Nothing outside those two files should need it.
 */
#ifndef RM_TOKENIZER_IMPL_H
#define RM_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bpe.h"
#include "tokenizer.h"

#define RM_TOK_MAX_FILE_BYTES ((size_t)256 << 20)   /* tokenizer.json size */
#define RM_TOK_MAX_ADDED (1 << 20)                /* entries of added_tokens */
#define RM_TOK_MAX_STEPS 16                       /* pre-tokenizers in a Sequence */
#define RM_TOK_MAX_PATTERN (64 * 1024)            /* bytes of a Split regex */
#define RM_TOK_MAX_NORMALIZERS 16                 /* normalization forms in a (nested) Sequence */

/* A Unicode normalization form, done by utf8proc (see rm_tok_normalize). */
typedef enum rm_norm_form { RM_NORM_NFC, RM_NORM_NFD, RM_NORM_NFKC, RM_NORM_NFKD } rm_norm_form;

/* One entry of added_tokens. */
typedef struct rm_added_token {
    const char *content;      /* in rm_tokenizer.added_text, NUL-terminated */
    uint32_t len;
    int32_t id;
    uint8_t special, single_word, lstrip, rstrip, normalized;
} rm_added_token;

/* Finds the longest added token starting at a position: the tokens sorted by
 * their bytes, narrowed one byte at a time (a trie flattened into an array). */
typedef struct rm_token_matcher {
    const rm_added_token **sorted;
    size_t n;
    uint8_t first[256];       /* 1 when some token starts with this byte */
} rm_token_matcher;

/* One pre-tokenizer of the pipeline, applied in order. */
typedef enum rm_pretok_kind { RM_PRETOK_SPLIT, RM_PRETOK_BYTELEVEL } rm_pretok_kind;
typedef struct rm_pretok_step {
    rm_pretok_kind kind;
    pcre2_code *re;           /* SPLIT: the pattern (Isolated); BYTELEVEL: GPT-2's pattern or NULL */
    int add_prefix_space;     /* BYTELEVEL: a piece not starting with ' ' gets one */
} rm_pretok_step;

struct rm_tokenizer {
    rm_bpe bpe;
    rm_added_token *added;    /* n_added entries, in file order */
    size_t n_added;
    char *added_text;         /* arena of their contents */
    int32_t *added_by_id;     /* indices into added, sorted by id */
    rm_hashmap added_ids;     /* content -> id */
    rm_token_matcher matchers[2]; /* [0] tokens matched on raw text, [1] normalized ones (HF's two passes) */
    rm_norm_form norms[RM_TOK_MAX_NORMALIZERS];   /* the normalizer: forms applied in order */
    size_t n_norms;           /* 0: normalizer null */
    rm_added_token *norm_added;   /* with a normalizer, the normalized=true tokens with their content
                                   * normalized: what matchers[1] holds (HF normalizes them too) */
    char *norm_added_text;    /* arena of their contents */
    rm_pretok_step steps[RM_TOK_MAX_STEPS];
    size_t n_steps;
    pcre2_general_context *gctx;   /* routes PCRE2's allocations through rm_malloc */
    pcre2_code *word_re;      /* \w, for single_word added tokens */
    int32_t n_ids;            /* highest id + 1 over vocabulary and added tokens */
};

/* Applies the tokenizer's normalizer to s[0..n) (valid UTF-8). *out is NULL
 * when the text comes out unchanged (no normalizer, or only ASCII); otherwise
 * an rm_malloc'd NUL-terminated buffer of *out_len bytes, freed with rm_mfree.
 * `what` names the text in messages. Errors: RM_ERR_NOMEM, RM_ERR_LIMIT. */
RM_INTERNAL rm_status rm_tok_normalize(const rm_tokenizer *tok, const char *s, size_t n, char **out,
                                       size_t *out_len, const char *what, rm_err *err);

#endif
