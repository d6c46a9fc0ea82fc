/*
 * fuzz_tokenizer_json.c - libFuzzer harness for the tokenizer.json loader
 * (rm_tok_parse, lib/tokenizer_load.c and lib/bpe.c). The input is the file's
 * text; the seeds are small byte-level BPE tokenizers (the demo model's), not
 * the 17 MB Llama 3 file, so an execution takes milliseconds.
 *
 * A tokenizer that loads must then encode a few probe strings in both modes
 * without failing for any reason but a resource bound, and every id it emits
 * must be a real token (decodable, below the vocabulary size).
 *
 * Built by tests/fuzz/run.sh (make fuzz); replayed without libFuzzer by
 * tests/test_fuzz_regressions.sh through tests/fuzz/replay_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokenizer.h"

static const char *const PROBES[] = {
    "A reward model reads a conversation and returns a score.",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "  leading, trailing  \n\n\t tabs\r\n",
    "it's they're we've I'm you'll he'd 0123456789 12345",
    "h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x99\x82\xe2\x80\x8d \xe1\x9e\x80",
    "def add(a, b):\n    return a + b\n",
    /* Normalizers at work: a ligature, a decomposed A-ring, a circled 1, U+FDFA (18 characters under NFKC). */
    "\xef\xac\x81ne A\xcc\x8a \xc3\x85 \xe2\x91\xa0 \xef\xb7\xba \xef\xac\x81<sep>",
    "",
};

static void encode_probe(const rm_tokenizer *tok, const char *text, int parse_special, int masked) {
    size_t len = strlen(text);
    uint8_t *mask = NULL;
    if (masked) {
        mask = malloc(len ? len : 1);
        if (!mask) return;
        for (size_t i = 0; i < len; i++) mask[i] = (uint8_t)((i / 7) & 1);   /* alternating runs */
    }
    rm_ids ids = {0};
    rm_err err = {0};
    rm_status st = rm_tok_encode(tok, text, len, mask, parse_special, &ids, &err);
    free(mask);
    if (st != RM_OK) {
        /* Probes are valid UTF-8: only a bound (a pathological pattern) or memory may refuse them. */
        invariant(st == RM_ERR_LIMIT || st == RM_ERR_NOMEM);
        invariant(memchr(err.msg, 0, sizeof err.msg) != NULL && err.msg[0] != 0);
        rm_ids_release(&ids);
        return;
    }
    int32_t vocab = rm_tok_vocab_size(tok);
    for (size_t i = 0; i < ids.len; i++) invariant(ids.data[i] >= 0 && ids.data[i] < vocab);
    rm_buf back = {0};
    rm_status ds = rm_tok_decode(tok, ids.data, ids.len, &back, &err);
    invariant(ds == RM_OK || ds == RM_ERR_NOMEM);   /* every emitted id is a token */
    rm_buf_free(&back);
    rm_ids_release(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);     /* exact size, no terminator */
    if (!text) return 0;
    memcpy(text, data, size);

    rm_tokenizer *tok = NULL;
    rm_err err = {0};
    rm_status st = rm_tok_parse(&tok, text, size, "fuzz/tokenizer.json", &err);
    free(text);                               /* the tokenizer must not point into the file text */
    if (st != RM_OK) {
        invariant(tok == NULL);
        invariant(err.status == st);
        invariant(memchr(err.msg, 0, sizeof err.msg) != NULL && err.msg[0] != 0);
        return 0;
    }
    invariant(tok != NULL);
    int32_t vocab = rm_tok_vocab_size(tok);
    invariant(vocab >= 0);
    /* Every id's text is readable (ids without a token give NULL). */
    for (int32_t id = 0; id < vocab && id < 4096; id++) {
        const char *s = rm_tok_str(tok, id);
        if (s) (void)strlen(s);
    }
    invariant(rm_tok_str(tok, -1) == NULL && rm_tok_str(tok, vocab) == NULL);
    for (size_t p = 0; p < sizeof PROBES / sizeof PROBES[0]; p++) {
        encode_probe(tok, PROBES[p], 0, 0);
        encode_probe(tok, PROBES[p], 1, 0);
        encode_probe(tok, PROBES[p], 1, 1);
    }
    rm_tok_free(tok);
    return 0;
}
