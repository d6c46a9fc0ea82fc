/*
 * weights.h - the checkpoint's tensors: safetensors files, single or sharded,
 * memory-mapped and validated before use; then bound to the architecture.
 */
#ifndef RM_WEIGHTS_H
#define RM_WEIGHTS_H

#include "common.h"
#include "config.h"

/* As stored in a file. F8_E4M3 only comes from an FP8 model pack (lib/pack/):
 * projection weights quantised per output row, each with a "<name>_scale"
 * tensor of fp32 scales; only the CUDA engine takes them. */
typedef enum rm_st_dtype { RM_DT_F32 = 0, RM_DT_F16 = 1, RM_DT_BF16 = 2, RM_DT_F8_E4M3 = 3 } rm_st_dtype;

/* One tensor as it lies in a mapped file. */
typedef struct rm_tensor {
    const char *name;
    rm_st_dtype dtype;
    int n_dims;
    int64_t shape[4];
    const void *data;           /* inside the mapping of file `shard` */
    size_t n_bytes;
    int shard;                  /* index of the file that holds it (weights addressable by shard) */
} rm_tensor;

/* ------------------------------------------------ safetensors: one file */

typedef struct rm_st_file rm_st_file;
/* Parses and validates a safetensors header held in memory: `data` is the
 * whole file (len bytes). Checks: header length inside the file and bounded,
 * valid JSON object, each tensor's dtype known, shape sane, offsets inside the
 * data section, end - begin == numel * dtype size, no two tensors overlapping.
 * Tensors point into `data`. `name` is used in messages. */
RM_INTERNAL rm_status rm_st_parse(rm_st_file **out, const void *data, size_t len, const char *name,
                                  rm_err *err);
RM_INTERNAL size_t rm_st_count(const rm_st_file *f);
RM_INTERNAL const rm_tensor *rm_st_tensor(const rm_st_file *f, size_t i);
RM_INTERNAL void rm_st_free(rm_st_file *f);

/* ------------------------------------------------ a model directory */

typedef struct rm_weights rm_weights;
/* Opens model.safetensors, or the shards named by model.safetensors.index.json
 * (a shard name that is absolute, contains "..", a '/' or '\\' is refused),
 * memory-maps each file read-only and validates every header. */
RM_INTERNAL rm_status rm_weights_open(rm_weights **out, const char *dir, rm_err *err);
RM_INTERNAL const rm_tensor *rm_weights_find(const rm_weights *w, const char *name);
RM_INTERNAL size_t rm_weights_bytes_mapped(const rm_weights *w);
RM_INTERNAL int rm_weights_n_shards(const rm_weights *w);
/* All tensors of all shards, sorted by name: i in [0, rm_weights_count). */
RM_INTERNAL size_t rm_weights_count(const rm_weights *w);
RM_INTERNAL const rm_tensor *rm_weights_tensor(const rm_weights *w, size_t i);
/* The path of shard file `shard` (rm_tensor.shard), for messages; NULL if out of range. */
RM_INTERNAL const char *rm_weights_shard_file(const rm_weights *w, int shard);
/* The model directory given to rm_weights_open, for messages. */
RM_INTERNAL const char *rm_weights_dir(const rm_weights *w);
RM_INTERNAL void rm_weights_close(rm_weights *w);
/* An rm_weights over tensors already in memory (a pack rank's, decompressed):
 * takes ownership of `tensors` (n of them, names from rm_malloc) and of
 * `blob` (rm_malloc'd, the data they point into), even on failure. `file`
 * (inside dir) names them in messages. A name given twice is refused. */
RM_INTERNAL rm_status rm_weights_adopt(rm_weights **out, const char *dir, const char *file, rm_tensor *tensors,
                                       size_t n, void *blob, size_t blob_bytes, rm_err *err);

/* Converts rows [row0, row0 + n_rows) of a 1-D or 2-D tensor to fp32 (a 1-D
 * tensor is one row). `out` holds n_rows * row_len floats. */
RM_INTERNAL void rm_tensor_rows_f32(const rm_tensor *t, int64_t row0, int64_t n_rows, float *out);
RM_INTERNAL int64_t rm_tensor_numel(const rm_tensor *t);
RM_INTERNAL size_t rm_dtype_size(rm_st_dtype dt);

/* ------------------------------------------------ bound to the architecture */

/* Tensors of one decoder layer; NULL where the architecture has none. */
typedef struct rm_layer_weights {
    const rm_tensor *attn_norm;           /* input_layernorm.weight            [hidden] */
    const rm_tensor *wq, *wk, *wv, *wo;   /* self_attn.{q,k,v,o}_proj.weight  [n_heads*head_dim, hidden],
                                             [n_kv*head_dim, hidden] x2, [hidden, n_heads*head_dim] */
    const rm_tensor *bq, *bk, *bv, *bo;   /* biases (qwen2: q/k/v)             [out] */
    const rm_tensor *q_norm, *k_norm;     /* qwen3: self_attn.{q,k}_norm.weight [head_dim] */
    const rm_tensor *mlp_norm;            /* post_attention_layernorm.weight   [hidden] */
    const rm_tensor *w_gate, *w_up;       /* mlp.{gate,up}_proj.weight         [ffn, hidden] */
    const rm_tensor *w_down;              /* mlp.down_proj.weight              [hidden, ffn] */
    const rm_tensor *b_gate, *b_up, *b_down; /* mlp_bias */
    /* An FP8 pack's per-row fp32 scales of the e4m3 projections, in the
     * order wq, wk, wv, wo, w_gate, w_up, w_down; NULL for other dtypes. */
    const rm_tensor *scale[7];
} rm_layer_weights;

typedef struct rm_model_weights {
    const rm_tensor *embed;               /* model.embed_tokens.weight [vocab, hidden] */
    rm_layer_weights *layers;             /* n_layers */
    int64_t n_layers;
    const rm_tensor *final_norm;          /* model.norm.weight [hidden] */
    const rm_tensor *lm_head;             /* lm_head.weight [vocab, hidden], or embed when tied; NULL for
                                             classification */
    const rm_tensor *score;               /* score.weight [n_labels, hidden] for classification */
} rm_model_weights;

/* Finds every tensor the architecture needs and checks dtype (f32/f16/bf16;
 * e4m3 projections with their scales, from an FP8 pack) and shape against
 * the config. Errors name the tensor, and the expected and
 * found shapes (RM_ERR_SHAPE), or the missing tensor (RM_ERR_FORMAT). */
RM_INTERNAL rm_status rm_model_weights_bind(rm_model_weights *mw, const rm_weights *w,
                                            const rm_config *cfg, rm_err *err);
RM_INTERNAL void rm_model_weights_free(rm_model_weights *mw);

#endif
