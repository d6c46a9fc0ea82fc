/*
 * head_rows.c - the heads of the CUDA engine run on the host: a head reads a
 * handful of rows (score.weight, lm_head[a, b), lm_head[Yes] and [No]) of a
 * matrix that would take gigabytes on the device (lm_head: 2 GiB in a 70B),
 * so those rows are read from the mapped file, as stored, and multiplied by
 * the final hidden state forward() returned, in double. Nothing of it is
 * uploaded, and no device time is queued for it.
 */
#include <string.h>

#include "cuda_engine.h"

static float value_at(const rm_tensor *t, size_t i) {
    switch (t->dtype) {
    case RM_DT_F32: {
        float f;
        memcpy(&f, (const char *)t->data + i * 4, 4);
        return f;
    }
    case RM_DT_F16: {
        uint16_t h;
        memcpy(&h, (const char *)t->data + i * 2, 2);
        return rm_f16_to_f32(h);
    }
    case RM_DT_BF16:
    default: {
        uint16_t h;
        memcpy(&h, (const char *)t->data + i * 2, 2);
        return rm_bf16_to_f32(h);
    }
    }
}

rm_status cu_head_rows(rm_engine *e, const rm_tensor *t, const int64_t *rows, size_t n_rows, const float *hidden,
                       float *out, rm_err *err) {
    if (!e || !t) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL engine or head matrix");
    if (n_rows == 0) return RM_OK;
    if (!rows || !hidden || !out) return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: NULL head argument");
    int64_t H = e->cfg.hidden, n_mat_rows, width;
    if (t->n_dims == 2) n_mat_rows = t->shape[0], width = t->shape[1];
    else if (t->n_dims == 1) n_mat_rows = 1, width = t->shape[0];
    else return rm_fail(err, RM_ERR_SHAPE, "cuda engine: head %s has %d dimensions", t->name ? t->name : "?", t->n_dims);
    if (width != H)
        return rm_fail(err, RM_ERR_SHAPE, "cuda engine: head %s rows have %lld values, hidden is %lld",
                       t->name ? t->name : "?", (long long)width, (long long)H);
    for (size_t i = 0; i < n_rows; i++)
        if (rows[i] < 0 || rows[i] >= n_mat_rows)
            return rm_fail(err, RM_ERR_INVALID_ARG, "cuda engine: row %lld of head %s outside [0, %lld)",
                           (long long)rows[i], t->name ? t->name : "?", (long long)n_mat_rows);
    for (size_t i = 0; i < n_rows; i++) {
        size_t base = (size_t)rows[i] * (size_t)H;
        double acc = 0;
        for (int64_t j = 0; j < H; j++) acc += (double)value_at(t, base + (size_t)j) * hidden[j];
        out[i] = (float)acc;
    }
    rm_counter_add(&e->counts.weight_bytes_read, (uint64_t)n_rows * (uint64_t)H * (t->dtype == RM_DT_F32 ? 4 : 2));
    return RM_OK;
}
