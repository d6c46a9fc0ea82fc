/*
 * random_model.h - the random Llama-shaped model of the benchmark and the
 * real-shape test, defined once for both devices over lib/random.h, so the
 * CPU engine and the CUDA engine (kernels/random.cu through
 * rm_cuda_module.create_random) build the same weights without a file.
 *
 *   matrix value i   bf16(rm_rnd_matrix_scale(cols) * rm_random_value(seed, id, i))
 *   embedding        bf16(rm_random_value(seed, RM_RND_EMBED, i))
 *   norm weight i    bf16(1 + rm_random_value(seed, id, i) / 8), made on the host by both
 *
 * where id is RM_RND_EMBED, RM_RND_FINAL_NORM, RM_RND_SCORE, or
 * rm_rnd_layer_tensor(layer, kind). The scale keeps each projection's output
 * near unit variance (a uniform value on [-1, 1) has variance 1/3).
 * Header-only.
 */
#ifndef RM_RANDOM_MODEL_H
#define RM_RANDOM_MODEL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "random.h"

enum {
    RM_RND_EMBED = 1,
    RM_RND_FINAL_NORM = 2,
    RM_RND_SCORE = 3,                       /* a classification head [n_labels, hidden] */
};

/* One decoder layer's tensors. */
typedef enum rm_rnd_kind {
    RM_RND_ATTN_NORM = 0, RM_RND_WQ, RM_RND_WK, RM_RND_WV, RM_RND_WO,
    RM_RND_MLP_NORM, RM_RND_WGATE, RM_RND_WUP, RM_RND_WDOWN, RM_RND_N_KINDS
} rm_rnd_kind;

static inline uint64_t rm_rnd_layer_tensor(int64_t layer, rm_rnd_kind kind) {
    return 16 + (uint64_t)layer * RM_RND_N_KINDS + (uint64_t)kind;
}

static inline float rm_rnd_matrix_scale(int64_t cols) { return sqrtf(3.0f / (float)cols); }

static inline float rm_rnd_norm_value(uint64_t seed, uint64_t tensor, uint64_t i) {
    return 1.0f + rm_random_value(seed, tensor, i) * 0.125f;
}

/* fp32 -> bf16, round to nearest even (the values here are finite). */
static inline uint16_t rm_rnd_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#endif
