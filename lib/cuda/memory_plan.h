/*
 * memory_plan.h - where the CUDA engine's device memory goes. Everything is
 * allocated at create, within the budget (max_device_bytes, or the free
 * memory less cu_default_margin): the weights, the GEMM workspace, one
 * activation arena, and the per-pass index arrays. The arena is sized for
 * the most token rows that fit (capped): that is the tokens per pass, and a
 * longer batch is split into passes. Nothing is allocated while scoring.
 *
 * The arena of a pass of T token rows and S sequences (S <= T is not
 * required: a fully shared sequence has no rows of its own), H hidden,
 * QD = heads * head_dim, KD = kv_heads * head_dim, F ffn:
 *   x        fp32 [T, H]           the residual stream; the last layer's final
 *                                  hidden state [S, H] lands here too
 *   delta    bf16 [T, H]           o_proj / down_proj out, added by the next norm
 *   h        bf16 [T, max(H, QD)]  norm out (GEMM in), then attention out
 *   qkv      bf16 [T, QD + 2 KD]   the fused projection; in the last layer the
 *                                  Q columns of rows 0..S hold the S queries
 *   xs       fp32 [S, H]           the last layer's residual rows
 *   gate_up  bf16 [M, 2 F]         MLP in tiles of M = min(T, CU_MLP_ROWS) rows
 *   act      bf16 [M, F]
 *   FP8 only: a8 e4m3 [T, max(H, QD)] + a_scale fp32 [T]; act8 [M, F] +
 *   act_scale fp32 [M]; four fp32 for per-tensor scales.
 * At load the arena is empty, so the streaming upload stages through it;
 * its size is at least min_bytes for that.
 */
#ifndef RM_CUDA_MEMORY_PLAN_H
#define RM_CUDA_MEMORY_PLAN_H

#include <stddef.h>

#define CU_MLP_ROWS 4096          /* MLP tile: large enough for full-rate GEMMs */
#define CU_MAX_SEQS 4096          /* sequences per pass */
#define CU_KEYS_PER_TOKEN 4       /* key map entries per token row: prefix sharing reuses rows */
#define CU_MIN_TOKENS 256         /* an arena smaller than this is refused at load */
#define CU_TOKENS_CAP_MIN 32768   /* the arena is capped at max(this, the model's positions) rows */
#define CU_ALIGN 256

typedef struct cu_shape {
    size_t hidden, q_dim, kv_dim, ffn;
    int fp8;
} cu_shape;

/* Byte offsets of the arena's regions (see above); `bytes` is the total. */
typedef struct cu_arena_layout {
    size_t tokens, seqs, mlp_rows;
    size_t x, delta, h, qkv, xs, gate_up, act, a8, a_scale, act8, act_scale, tensor_scales;
    size_t bytes;
} cu_arena_layout;

/* Offsets, in int32 elements, of the index arrays one pass uploads. */
typedef struct cu_meta_layout {
    size_t tokens, seqs, keys;
    size_t tok, pos, q_begin, q_pos0, key_off, key_rows, last_rows, last_pos, last_begin;
    size_t count;               /* int32 elements in all */
} cu_meta_layout;

void cu_arena_layout_make(const cu_shape *s, size_t tokens, size_t seqs, size_t mlp_rows, cu_arena_layout *out);
void cu_meta_layout_make(size_t tokens, size_t seqs, size_t keys, cu_meta_layout *out);

/* Device bytes of an arena of `tokens` rows (at least min_bytes) plus its
 * index arrays, with the layouts. */
size_t cu_plan_bytes(const cu_shape *s, size_t tokens, size_t min_bytes, cu_arena_layout *arena,
                     cu_meta_layout *meta);

/* The most token rows (<= cap) whose arena (at least min_bytes) and index
 * arrays fit in `avail` bytes; 0 when not even CU_MIN_TOKENS fit. Fills the
 * layouts for the answer. */
size_t cu_plan_tokens(const cu_shape *s, size_t avail, size_t cap, size_t min_bytes, cu_arena_layout *arena,
                      cu_meta_layout *meta);

/* What a budget of 0 leaves free for others: max(1 GiB, total / 64), for the
 * CUDA context's own growth, kernels loaded lazily, and whatever else shares
 * the GPU (2.2 GiB on a 140 GiB H200). */
size_t cu_default_margin(size_t total_bytes);

#endif
