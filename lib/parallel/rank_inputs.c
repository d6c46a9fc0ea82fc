/*
 * rank_inputs.c - the input design of one process per rank: every rank is
 * given the same inputs (the caller's job: each process of the group makes
 * the same calls in the same order with the same conversations), and each
 * forward pass checks it, because ranks computing on different token rows
 * would exchange activations of different sequences and return wrong
 * scores without an error. Two tiny collectives per pass: rank 0's
 * fingerprint broadcast, then a sum of the ranks that differ.
 */
#include "parallel/tp.h"

#include <stdio.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY   /* XXH64_state_t on the stack: no allocation to fail */
#include <xxhash.h>

/* n_seqs, total tokens and a hash of everything the pass computes from. */
static void fingerprint(const rm_batch *b, uint64_t fp[4]) {
    XXH64_state_t state, *h = &state;
    uint64_t total = 0;
    XXH64_reset(h, 0x7470u);
    for (size_t s = 0; s < b->n_seqs; s++) {
        uint64_t meta[3] = {b->n_tokens[s], b->shared_len ? b->shared_len[s] : 0,
                            b->parent ? (uint64_t)(int64_t)b->parent[s] : UINT64_MAX};
        XXH64_update(h, meta, sizeof meta);
        XXH64_update(h, b->tokens[s], b->n_tokens[s] * sizeof(int32_t));
        total += b->n_tokens[s];
    }
    fp[0] = b->n_seqs;
    fp[1] = total;
    fp[2] = XXH64_digest(h);
    fp[3] = 0x6e696d7265776172ULL;   /* a constant: a torn broadcast shows */
}

rm_status rm_tp_inputs_check(rm_comm *c, const rm_batch *b, rm_err *err) {
    if (c->size == 1) return RM_OK;
    uint64_t mine[4], root[4];
    fingerprint(b, mine);
    memcpy(root, mine, sizeof root);
    rm_status st = c->ops->broadcast(c, root, sizeof root, 0, NULL, err);
    if (st) return st;
    int differs = memcmp(root, mine, sizeof mine) != 0;
    float n_differ = differs ? 1.0f : 0.0f;
    if ((st = c->ops->all_reduce_sum(c, &n_differ, 1, RM_COMM_F32, NULL, err))) return st;
    if (n_differ > 0)
        return rm_fail(err, RM_ERR_INVALID_ARG,
                       "tensor-parallel rank %d of %d: %s%.0f of the %d ranks were given inputs that differ from "
                       "rank 0's (%llu sequences, %llu tokens here); every rank must score the same inputs, making "
                       "the same calls in the same order", c->rank, c->size,
                       differs ? "this rank's inputs differ; " : "", (double)n_differ, c->size,
                       (unsigned long long)mine[0], (unsigned long long)mine[1]);
    return RM_OK;
}
