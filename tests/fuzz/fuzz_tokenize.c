/*
 * fuzz_tokenize.c - libFuzzer harness for encoding (rm_tok_encode,
 * lib/tokenizer.c and lib/bpe.c) with the real Llama 3 tokenizer, loaded once
 * at start-up: arbitrary bytes including invalid UTF-8, both parse_special
 * modes, random plain-text masks.
 *
 * Input layout:  FLAGS SEED0 SEED1 SEED2 SEED3 TEXT...
 *   FLAGS bit 0: parse_special; bit 1: a mask (runs of marked bytes drawn
 *   from a generator seeded by SEED0..3); bit 2: also compare with the
 *   everything-masked encoding. Inputs shorter than 5 bytes are all text.
 *
 * Checked: invalid UTF-8 is RM_ERR_UTF8 and appends nothing; valid text
 * encodes, every id is in the vocabulary, decoding gives the text back byte
 * for byte (Llama 3 covers every byte and strips nothing); no special token
 * is recognised over a masked byte; a fully masked encoding equals the plain
 * one.
 *
 * The tokenizer is $RM_FUZZ_TOKENIZER, else
 * ${RM_FIXTURES:-../shared/fixtures}/tokenizer/llama3/tokenizer.json
 * (relative to the repository root, where make fuzz and the tests run).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_OWN_INITIALIZE   /* it also loads the tokenizer, below */
#include "fuzz_common.h"
#include "tokenizer.h"

static rm_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    rm_global_init();
    char path[4096];
    const char *env = getenv("RM_FUZZ_TOKENIZER"), *fx = getenv("RM_FIXTURES");
    if (env && *env) snprintf(path, sizeof path, "%s", env);
    else snprintf(path, sizeof path, "%s/tokenizer/llama3/tokenizer.json", fx && *fx ? fx : "../shared/fixtures");
    rm_err err = {0};
    if (rm_tok_load(&tok, path, &err) != RM_OK) {
        /* Test code, not the library: without its tokenizer the harness cannot run. */
        fprintf(stderr, "fuzz_tokenize: cannot load %s: %s\n", path, err.msg);
        exit(1);
    }
    return 0;
}

static uint32_t next_rand(uint32_t *s) {      /* xorshift32 */
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Checks ids against the text: decoding each id in turn walks the text, and an
 * added token must not cover a masked byte. */
static void check_ids(const char *text, size_t len, const uint8_t *mask, const rm_ids *ids, size_t first) {
    int32_t vocab = rm_tok_vocab_size(tok);
    size_t off = 0;
    rm_buf piece = {0};
    for (size_t i = first; i < ids->len; i++) {
        int32_t id = ids->data[i];
        invariant(id >= 0 && id < vocab);
        piece.len = 0;
        rm_err err = {0};
        rm_status st = rm_tok_decode(tok, &id, 1, &piece, &err);
        if (st == RM_ERR_NOMEM) break;
        invariant(st == RM_OK);
        invariant(piece.len > 0 && piece.len <= len - off);
        invariant(memcmp(piece.data, text + off, piece.len) == 0);
        if (mask && rm_tok_is_added(tok, id, NULL))
            for (size_t k = 0; k < piece.len; k++) invariant(mask[off + k] == 0);
        off += piece.len;
    }
    invariant(piece.oom || off == len);
    rm_buf_free(&piece);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t flags = 0;
    uint32_t seed = 0;
    if (size >= 5) {
        flags = data[0];
        seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
        data += 5;
        size -= 5;
    }
    int parse_special = flags & 1, use_mask = (flags >> 1) & 1, compare_masked = (flags >> 2) & 1;
    char *text = malloc(size ? size : 1);     /* exact size, no terminator */
    uint8_t *mask = NULL;
    if (!text) return 0;
    memcpy(text, data, size);
    if (use_mask) {
        mask = malloc(size ? size : 1);
        if (!mask) { free(text); return 0; }
        /* Runs, as content spans inside a rendered prompt are. */
        size_t i = 0;
        uint8_t v = (uint8_t)(seed & 1);
        while (i < size) {
            size_t run = 1 + next_rand(&seed) % 24;
            for (size_t k = 0; k < run && i < size; k++) mask[i++] = v;
            v ^= 1;
        }
    }

    /* A sentinel first: rm_tok_encode appends, and must not touch what was there. */
    rm_ids ids = {0};
    if (!rm_ids_push(&ids, -7)) { free(text); free(mask); return 0; }
    rm_err err = {0};
    int valid = rm_utf8_check(text, size) == size;
    rm_status st = rm_tok_encode(tok, text, size, mask, parse_special, &ids, &err);
    invariant(ids.len >= 1 && ids.data[0] == -7);
    if (!valid) {
        invariant(st == RM_ERR_UTF8);
        invariant(ids.len == 1);
        invariant(strstr(err.msg, "UTF-8") != NULL);
    } else if (st == RM_OK) {
        check_ids(text, size, parse_special ? mask : NULL, &ids, 1);
        if (compare_masked && parse_special) {
            uint8_t *all = malloc(size ? size : 1);
            rm_ids plain = {0}, masked = {0};
            if (all) {
                memset(all, 1, size);
                rm_status a = rm_tok_encode(tok, text, size, NULL, 0, &plain, &err);
                rm_status b = rm_tok_encode(tok, text, size, all, 1, &masked, &err);
                if (a == RM_OK && b == RM_OK)
                    invariant(plain.len == masked.len &&
                              (plain.len == 0 || memcmp(plain.data, masked.data, plain.len * sizeof(int32_t)) == 0));
                else
                    invariant(a != RM_ERR_UTF8 && b != RM_ERR_UTF8);
            }
            free(all);
            rm_ids_release(&plain);
            rm_ids_release(&masked);
        }
    } else {
        /* Valid text may only be refused for a bound or memory. */
        invariant(st == RM_ERR_LIMIT || st == RM_ERR_NOMEM);
        invariant(ids.len == 1);
    }
    rm_ids_release(&ids);
    free(text);
    free(mask);
    return 0;
}
