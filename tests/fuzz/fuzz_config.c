/*
 * fuzz_config.c - libFuzzer harness for the config.json reader
 * (rm_config_parse, lib/config.c). The input is the file's text. A config
 * that parses must describe a model the rest of the library can size without
 * overflow: positive, bounded dimensions, consistent head counts, one
 * terminated name per label.
 *
 * Built by tests/fuzz/run.sh (make fuzz); replayed without libFuzzer by
 * tests/test_fuzz_regressions.sh through tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);     /* exact size, no terminator */
    if (!text) return 0;
    memcpy(text, data, size);

    rm_config cfg;
    memset(&cfg, 0xa5, sizeof cfg);           /* the parser must not rely on a zeroed struct */
    rm_err err = {0};
    rm_status st = rm_config_parse(&cfg, text, size, "fuzz/config.json", &err);
    if (st != RM_OK) {
        invariant(err.status == st);
        invariant(memchr(err.msg, 0, sizeof err.msg) != NULL && err.msg[0] != 0);
        invariant(cfg.labels == NULL);        /* nothing left to free */
        rm_config_free(&cfg);
        free(text);
        return 0;
    }
    invariant(memchr(cfg.architecture, 0, sizeof cfg.architecture) != NULL);
    invariant(memchr(cfg.dtype, 0, sizeof cfg.dtype) != NULL);
    invariant(cfg.arch >= RM_ARCH_LLAMA_SEQCLS && cfg.arch <= RM_ARCH_QWEN3_SEQCLS);
    invariant(cfg.hidden > 0 && cfg.n_layers > 0 && cfg.n_heads > 0 && cfg.n_kv_heads > 0);
    invariant(cfg.head_dim > 0 && cfg.ffn > 0 && cfg.vocab > 0 && cfg.max_pos > 0);
    invariant(cfg.n_kv_heads <= cfg.n_heads && cfg.n_heads % cfg.n_kv_heads == 0);
    /* Products the engine forms must fit comfortably in 64 bits. */
    invariant(cfg.hidden <= (1LL << 20) && cfg.vocab <= (1LL << 26) && cfg.ffn <= (1LL << 22));
    invariant(cfg.n_heads * cfg.head_dim <= (1LL << 22));
    invariant(isfinite(cfg.rms_eps) && cfg.rms_eps > 0);
    invariant(isfinite(cfg.rope_theta) && cfg.rope_theta > 0);
    if (cfg.rope_type == RM_ROPE_LLAMA3) {
        invariant(isfinite(cfg.rope_factor) && cfg.rope_factor > 0);
        invariant(cfg.rope_high_freq_factor > cfg.rope_low_freq_factor);
        invariant(cfg.rope_orig_max_pos > 0);
    }
    invariant(cfg.pad_token_id >= -1);
    invariant(cfg.n_labels >= 1 && cfg.labels != NULL);
    for (int64_t i = 0; i < cfg.n_labels; i++) {
        invariant(cfg.labels[i] != NULL);
        (void)strlen(cfg.labels[i]);          /* terminated and readable */
    }
    rm_config_free(&cfg);
    free(text);
    return 0;
}
