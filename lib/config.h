/*
 * config.h - a model's config.json, read into plain numbers.
 * Both layouts found in the wild are accepted: the older one (rope_theta +
 * rope_scaling, torch_dtype, no head_dim) and the newer one (rope_parameters,
 * dtype, head_dim).
 */
#ifndef RM_CONFIG_H
#define RM_CONFIG_H

#include "common.h"

typedef enum rm_arch {
    RM_ARCH_LLAMA_SEQCLS = 1,   /* LlamaForSequenceClassification */
    RM_ARCH_LLAMA_CAUSAL,       /* LlamaForCausalLM */
    RM_ARCH_QWEN2_SEQCLS,       /* Qwen2ForSequenceClassification: q/k/v bias */
    RM_ARCH_QWEN3_SEQCLS,       /* Qwen3ForSequenceClassification: per-head q/k RMSNorm */
} rm_arch;

typedef enum rm_rope_type { RM_ROPE_DEFAULT = 0, RM_ROPE_LLAMA3 = 1 } rm_rope_type;

typedef struct rm_config {
    char architecture[96];      /* as written in "architectures"[0] */
    rm_arch arch;
    int is_causal_lm;           /* *ForCausalLM: has lm_head (or ties it to the embedding) */
    int64_t hidden;             /* hidden_size */
    int64_t n_layers;           /* num_hidden_layers */
    int64_t n_heads;            /* num_attention_heads */
    int64_t n_kv_heads;         /* num_key_value_heads (defaults to n_heads) */
    int64_t head_dim;           /* head_dim, else hidden / n_heads */
    int64_t ffn;                /* intermediate_size */
    int64_t vocab;              /* vocab_size */
    int64_t max_pos;            /* max_position_embeddings */
    double rms_eps;             /* rms_norm_eps */
    double rope_theta;
    rm_rope_type rope_type;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_orig_max_pos;  /* original_max_position_embeddings */
    int qkv_bias;               /* q/k/v projections have biases (qwen2, attention_bias) */
    int o_bias;                 /* o_proj has a bias (attention_bias on llama) */
    int mlp_bias;
    int qk_norm;                /* per-head RMSNorm on q and k (qwen3) */
    int tie_embeddings;         /* tie_word_embeddings */
    int64_t n_labels;           /* classification: number of labels (id2label / num_labels) */
    char **labels;              /* n_labels names from id2label, index order; "LABEL_i" when absent */
    int64_t pad_token_id;       /* -1 when absent */
    char dtype[16];             /* "bfloat16", "float16", "float32" (informational) */
} rm_config;

/* Reads `path` (a config.json). Errors name the file and field:
 * RM_ERR_IO, RM_ERR_FORMAT (bad JSON, missing/ill-typed field),
 * RM_ERR_UNSUPPORTED (unknown architecture, activation or rope type). */
RM_INTERNAL rm_status rm_config_load(rm_config *cfg, const char *path, rm_err *err);
/* The same from text already in memory (fuzzing); `name` is used in messages. */
RM_INTERNAL rm_status rm_config_parse(rm_config *cfg, const char *json, size_t len, const char *name,
                                      rm_err *err);
RM_INTERNAL void rm_config_free(rm_config *cfg);

#endif
