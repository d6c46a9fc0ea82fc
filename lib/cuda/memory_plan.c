/*
 * memory_plan.c - the arena's layout and how many token rows fit
 * (memory_plan.h). Plain arithmetic, no CUDA: tests/test_cuda_plan.c checks
 * it on any machine.
 */
#include "memory_plan.h"

#include <stdint.h>

static size_t take(size_t *off, size_t bytes) {
    size_t at = (*off + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;
    *off = at + bytes;
    return at;
}

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

void cu_arena_layout_make(const cu_shape *s, size_t T, size_t S, size_t M, cu_arena_layout *a) {
    size_t H = s->hidden, QD = s->q_dim, KD = s->kv_dim, F = s->ffn, HQ = max2(H, QD), off = 0;
    a->tokens = T;
    a->seqs = S;
    a->mlp_rows = M;
    a->x = take(&off, max2(T, S) * H * 4);
    a->delta = take(&off, max2(T, S) * H * 2);
    a->h = take(&off, max2(T, S) * HQ * 2);
    a->qkv = take(&off, max2(T, S) * (QD + 2 * KD) * 2);
    a->xs = take(&off, S * H * 4);
    a->gate_up = take(&off, M * 2 * F * 2);
    a->act = take(&off, M * F * 2);
    if (s->fp8) {
        a->a8 = take(&off, max2(T, S) * HQ);
        a->a_scale = take(&off, max2(T, S) * 4);
        a->act8 = take(&off, M * F);
        a->act_scale = take(&off, M * 4);
        a->tensor_scales = take(&off, 4 * 4);
    } else {
        a->a8 = a->a_scale = a->act8 = a->act_scale = a->tensor_scales = 0;
    }
    a->bytes = (off + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;
}

void cu_meta_layout_make(size_t T, size_t S, size_t K, cu_meta_layout *m) {
    size_t off = 0;
    m->tokens = T;
    m->seqs = S;
    m->keys = K;
    m->tok = off, off += T;
    m->pos = off, off += T;
    m->q_begin = off, off += S + 1;
    m->q_pos0 = off, off += S;
    m->key_off = off, off += S + 1;
    m->key_rows = off, off += K;
    m->last_rows = off, off += S;
    m->last_pos = off, off += S;
    m->last_begin = off, off += S + 1;
    m->count = off;
}

size_t cu_plan_bytes(const cu_shape *s, size_t T, size_t min_bytes, cu_arena_layout *arena, cu_meta_layout *meta) {
    size_t S = T < CU_MAX_SEQS ? T : CU_MAX_SEQS, M = T < CU_MLP_ROWS ? T : CU_MLP_ROWS;
    cu_arena_layout a;
    cu_meta_layout m;
    cu_arena_layout_make(s, T, S, M, &a);
    cu_meta_layout_make(T, S, CU_KEYS_PER_TOKEN * T, &m);
    if (a.bytes < min_bytes) a.bytes = (min_bytes + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;
    if (arena) *arena = a;
    if (meta) *meta = m;
    return a.bytes + (m.count * 4 + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;
}

size_t cu_plan_tokens(const cu_shape *s, size_t avail, size_t cap, size_t min_bytes, cu_arena_layout *arena,
                      cu_meta_layout *meta) {
    if (cap < CU_MIN_TOKENS || cu_plan_bytes(s, CU_MIN_TOKENS, min_bytes, arena, meta) > avail) return 0;
    /* Bytes grow with the rows: the largest that fits, by bisection. */
    size_t lo = CU_MIN_TOKENS, hi = cap;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (cu_plan_bytes(s, mid, min_bytes, NULL, NULL) <= avail) lo = mid;
        else hi = mid - 1;
    }
    cu_plan_bytes(s, lo, min_bytes, arena, meta);
    return lo;
}

size_t cu_default_margin(size_t total_bytes) {
    size_t gib = (size_t)1 << 30, m = total_bytes / 64;
    return m > gib ? m : gib;
}
