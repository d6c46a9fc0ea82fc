/*
 * fuzz_safetensors.c - libFuzzer harness for the safetensors header parser
 * (rm_st_parse, lib/safetensors.c). The input is a whole file: 8-byte
 * length, JSON header, data section. Whatever the bytes, the parser must
 * refuse or hand out tensor views that lie inside the buffer, match their
 * shape and dtype, are aligned and do not overlap.
 *
 * Built by tests/fuzz/run.sh (make fuzz); replayed without libFuzzer by
 * tests/test_fuzz_regressions.sh through tests/fuzz/replay_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so a read past the end shows under AddressSanitizer.
     * 8-byte aligned like a mapping, so alignment checks are about offsets. */
    uint8_t *buf = aligned_alloc(8, (size + 7) / 8 * 8 + 8);
    if (!buf) return 0;
    uint8_t *file = buf;
    memcpy(file, data, size);

    rm_err err = {0};
    rm_st_file *f = NULL;
    rm_status st = rm_st_parse(&f, file, size, "fuzz.safetensors", &err);
    if (st != RM_OK) {
        invariant(f == NULL);
        invariant(err.status == st);
        invariant(memchr(err.msg, 0, sizeof err.msg) != NULL && err.msg[0] != 0);
        free(buf);
        return 0;
    }
    invariant(f != NULL);
    size_t n = rm_st_count(f);
    invariant(rm_st_tensor(f, n) == NULL);
    for (size_t i = 0; i < n; i++) {
        const rm_tensor *t = rm_st_tensor(f, i);
        invariant(t != NULL && t->name != NULL);
        invariant(strcmp(t->name, "__metadata__") != 0);
        invariant(t->n_dims >= 0 && t->n_dims <= 4);
        size_t esz = rm_dtype_size(t->dtype);
        invariant(esz == 2 || esz == 4);
        uint64_t numel = 1;
        for (int d = 0; d < t->n_dims; d++) {
            invariant(t->shape[d] >= 0);
            invariant(!__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel));
        }
        invariant(numel * esz == t->n_bytes);
        const uint8_t *p = t->data;
        /* Inside the data section, past the 8-byte length and the header. */
        invariant(p >= file + 8 && p <= file + size && t->n_bytes <= (size_t)(file + size - p));
        invariant((uintptr_t)p % esz == 0);
        if (t->n_bytes) {
            volatile uint8_t first = p[0], last = p[t->n_bytes - 1]; /* readable */
            (void)first;
            (void)last;
        }
        /* Converting rows reads exactly the tensor's bytes. */
        if (t->n_bytes && t->n_bytes <= (1u << 16) && t->n_dims >= 1 && t->n_dims <= 2) {
            int64_t rows = t->n_dims == 1 ? 1 : t->shape[0];
            float *out = malloc((size_t)numel * sizeof(float));
            if (out) {
                rm_tensor_rows_f32(t, 0, rows, out);
                free(out);
            }
        }
        /* No two tensors share a byte (small files: pairwise). */
        if (n <= 64)
            for (size_t k = 0; k < i; k++) {
                const rm_tensor *u = rm_st_tensor(f, k);
                const uint8_t *a = t->data, *b = u->data;
                invariant(t->n_bytes == 0 || u->n_bytes == 0 || a + t->n_bytes <= b || b + u->n_bytes <= a);
                invariant(strcmp(t->name, u->name) != 0);
            }
    }
    rm_st_free(f);
    free(buf);
    return 0;
}
