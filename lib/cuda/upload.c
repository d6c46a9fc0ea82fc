/*
 * upload.c - weights stream from the mapped safetensors files to the GPU.
 *
 * Each tensor goes in chunks of whole rows through two pinned host buffers:
 * while the copy engine moves chunk i to the device, host threads read chunk
 * i + 1 out of the mapping into the other buffer (that read is where the
 * file comes off the disk), and the kernel asks the page cache to read ahead
 * the chunk after. The whole model is never held in host memory. On the
 * device a chunk is written in place (bf16 as stored), or lands in a staging
 * area carved from the still empty activation arena and is converted there:
 * fp32 / fp16 to bf16, and bf16 rows to e4m3 with their scales for FP8
 * (rm_cu_quantize_fp8_rows; per-tensor mode takes two passes, one for the
 * tensor's amax, one to quantise). An FP8 pack's projections are e4m3 with
 * their per-row scales already (made by rm_cpu_quantize_fp8_rows, the
 * quantiser's twin, from the same bf16 values): their bytes go in as they are.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cuda_engine.h"
#include "extras.h"
#include "kernels.h"

#define CHUNK_BYTES ((size_t)64 << 20)
#define COPY_PIECE ((size_t)4 << 20)        /* what one host thread copies at a time */
#define MAX_COPY_THREADS 8

typedef enum dest_mode {
    TO_BF16,        /* dst: bf16 rows */
    AS_STORED,      /* dst: the bytes as they are (an FP8 pack's e4m3 rows) */
    TO_FP8_ROWS,    /* dst: e4m3 rows, scales: one per row */
    FOLD_AMAX,      /* no output: max |x| folded into the stager's amax */
    TO_FP8_TENSOR,  /* dst: e4m3 rows with the stager's amax, scales: the one scale */
} dest_mode;

typedef struct stager {
    rm_engine *e;
    void *pinned[2];
    cudaEvent_t copied[2];      /* the last copy out of pinned[i] is done */
    int next;
    size_t chunk;
    char *dev_src, *dev_bf16;   /* in the arena */
    float *amax;                /* in the arena */
    int threads;
} stager;


static void host_copy(void *dst, const void *src, size_t bytes, int threads) {
    size_t pieces = (bytes + COPY_PIECE - 1) / COPY_PIECE;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (pieces > 1)
    for (size_t i = 0; i < pieces; i++) {
        size_t off = i * COPY_PIECE, n = bytes - off < COPY_PIECE ? bytes - off : COPY_PIECE;
        memcpy((char *)dst + off, (const char *)src + off, n);
    }
}

/* Asks the kernel to start reading [p, p + bytes) of a mapping now. */
static void read_ahead(const void *p, size_t bytes) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !bytes) return;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1);
    (void)madvise((void *)a, bytes + ((uintptr_t)p - a), MADV_WILLNEED);
}

/* Rows [0, rows) of t (cols values each, as stored) to rows row0.. of the
 * destination. */
static rm_status stream_tensor(stager *s, const rm_tensor *t, int64_t rows, int64_t cols, dest_mode mode, void *dst,
                               float *scales, int64_t row0, rm_err *err) {
    rm_engine *e = s->e;
    int gpu = e->gpu;
    size_t elt = rm_dtype_size(t->dtype), row_bytes = (size_t)cols * elt;
    if ((size_t)rows * row_bytes != t->n_bytes)
        return rm_fail(err, RM_ERR_SHAPE, "cuda engine: %s holds %zu bytes, expected %lld x %lld values",
                       t->name ? t->name : "a tensor", t->n_bytes, (long long)rows, (long long)cols);
    if (row_bytes > s->chunk)
        return rm_fail(err, RM_ERR_LIMIT, "cuda engine: a row of %s (%zu bytes) is larger than the %zu-byte upload "
                       "chunk", t->name ? t->name : "a tensor", row_bytes, s->chunk);
    size_t per = s->chunk / row_bytes;
    for (int64_t r = 0; r < rows;) {
        size_t n = (size_t)(rows - r) < per ? (size_t)(rows - r) : per, bytes = n * row_bytes;
        const char *src = (const char *)t->data + (size_t)r * row_bytes;
        int b = s->next;
        s->next ^= 1;
        CU_TRY(gpu, err, cudaEventSynchronize(s->copied[b]));
        size_t left = (size_t)(rows - r) - n;
        if (left) read_ahead(src + bytes, (left < per ? left : per) * row_bytes);
        host_copy(s->pinned[b], src, bytes, s->threads);
        size_t at = (size_t)(row0 + r) * (size_t)cols, count = n * (size_t)cols;
        if (mode == AS_STORED || (mode == TO_BF16 && t->dtype == RM_DT_BF16)) {
            CU_TRY(gpu, err, cudaMemcpyAsync((char *)dst + at * elt, s->pinned[b], bytes, cudaMemcpyHostToDevice,
                                             e->stream));
        } else {
            CU_TRY(gpu, err, cudaMemcpyAsync(s->dev_src, s->pinned[b], bytes, cudaMemcpyHostToDevice, e->stream));
            const uint16_t *bf = (const uint16_t *)s->dev_src;
            uint16_t *conv = mode == TO_BF16 ? (uint16_t *)dst + at : (uint16_t *)s->dev_bf16;
            if (t->dtype == RM_DT_F32) CU_TRY(gpu, err, rm_cu_f32_to_bf16(conv, (const float *)s->dev_src, count, e->stream));
            if (t->dtype == RM_DT_F16) CU_TRY(gpu, err, rm_cu_f16_to_bf16(conv, (const uint16_t *)s->dev_src, count, e->stream));
            if (t->dtype != RM_DT_BF16) bf = conv;
            size_t c = (size_t)cols;
            if (mode == TO_FP8_ROWS)
                CU_TRY(gpu, err, rm_cu_quantize_fp8_rows(bf, c, n, c, (uint8_t *)dst + at, scales + row0 + r, e->stream));
            else if (mode == FOLD_AMAX)
                CU_TRY(gpu, err, rm_cu_amax_bf16(bf, c, n, c, s->amax, e->stream));
            else if (mode == TO_FP8_TENSOR)
                CU_TRY(gpu, err, rm_cu_quantize_fp8_tensor(bf, c, n, c, s->amax, (uint8_t *)dst + at, c, scales,
                                                           e->stream));
        }
        CU_TRY(gpu, err, cudaEventRecord(s->copied[b], e->stream));
        r += (int64_t)n;
    }
    return RM_OK;
}

static rm_status stream_vector(stager *s, const rm_tensor *t, uint16_t *dst, int64_t offset, rm_err *err) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return stream_tensor(s, t, 1, n, TO_BF16, dst + offset, NULL, 0, err);
}

/* An FP8 pack's matrix: the e4m3 rows and their scales as they are. Only
 * per-row scaling takes them; every part must be e4m3 with its scales. */
static rm_status stream_matrix_fp8(stager *s, const cu_matrix *m, const rm_tensor *const *parts,
                                   const rm_tensor *const *scales, int n_parts, rm_err *err) {
    rm_engine *e = s->e;
    for (int i = 0; i < n_parts; i++)
        if (parts[i]->dtype != RM_DT_F8_E4M3 || !scales[i] || scales[i]->dtype != RM_DT_F32 ||
            scales[i]->n_bytes != (size_t)parts[i]->shape[0] * sizeof(float))
            return rm_fail(err, RM_ERR_FORMAT, "cuda engine: %s: an FP8 pack's projections must all be e4m3 with "
                           "one fp32 scale per row", parts[i]->name ? parts[i]->name : "a projection");
    if (e->kind != CU_GEMM_FP8_ROWS)
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cuda engine: %s: an FP8 pack holds per-row scales, and this "
                       "cuBLASLt runs FP8 with one scale per matrix only; load the checkpoint instead (it is "
                       "quantised at load)", parts[0]->name ? parts[0]->name : "a projection");
    rm_status st;
    int64_t row = 0;
    for (int i = 0; i < n_parts; i++) {
        if ((st = stream_tensor(s, parts[i], parts[i]->shape[0], m->cols, AS_STORED, m->data, NULL, row, err)))
            return st;
        CU_TRY(e->gpu, err, cudaMemcpyAsync(m->scales + row, scales[i]->data, scales[i]->n_bytes,
                                            cudaMemcpyHostToDevice, e->stream));
        row += parts[i]->shape[0];
    }
    return RM_OK;
}

/* One projection matrix made of parts stacked by rows (q/k/v, gate/up). */
static rm_status stream_matrix(stager *s, const cu_matrix *m, const rm_tensor *const *parts,
                               const rm_tensor *const *scales, int n_parts, rm_err *err) {
    rm_engine *e = s->e;
    rm_status st;
    for (int i = 0; i < n_parts; i++)
        if (parts[i]->dtype == RM_DT_F8_E4M3) return stream_matrix_fp8(s, m, parts, scales, n_parts, err);
    if (e->kind == CU_GEMM_FP8_TENSOR) {
        CU_TRY(e->gpu, err, cudaMemsetAsync(s->amax, 0, sizeof(float), e->stream));
        for (int i = 0, row = 0; i < n_parts; row += (int)parts[i]->shape[0], i++)
            if ((st = stream_tensor(s, parts[i], parts[i]->shape[0], m->cols, FOLD_AMAX, NULL, NULL, row, err))) return st;
    }
    dest_mode mode = e->kind == CU_GEMM_BF16 ? TO_BF16 : e->kind == CU_GEMM_FP8_ROWS ? TO_FP8_ROWS : TO_FP8_TENSOR;
    int64_t row = 0;
    for (int i = 0; i < n_parts; i++) {
        if ((st = stream_tensor(s, parts[i], parts[i]->shape[0], m->cols, mode, m->data, m->scales, row, err)))
            return st;
        row += parts[i]->shape[0];
    }
    return RM_OK;
}

/* A fused bias: the parts that exist, zeros for those that do not. */
static rm_status stream_bias(stager *s, uint16_t *dst, const rm_tensor *const *parts, const int64_t *lens,
                             int n_parts, rm_err *err) {
    int64_t off = 0;
    for (int i = 0; i < n_parts; i++) {
        rm_status st;
        if (parts[i]) {
            if ((st = stream_vector(s, parts[i], dst, off, err))) return st;
        } else {
            CU_TRY(s->e->gpu, err, cudaMemsetAsync(dst + off, 0, (size_t)lens[i] * 2, s->e->stream));
        }
        off += lens[i];
    }
    return RM_OK;
}

static rm_status upload_all(stager *s, rm_err *err) {
    rm_engine *e = s->e;
    const rm_model_weights *w = e->w;
    rm_status st;
    if ((st = stream_tensor(s, w->embed, e->cfg.vocab, e->H, TO_BF16, e->embed, NULL, 0, err))) return st;
    for (int64_t l = 0; l < e->cfg.n_layers; l++) {
        const rm_layer_weights *lw = &w->layers[l];
        cu_layer *L = &e->layers[l];
        const rm_tensor *qkv[3] = {lw->wq, lw->wk, lw->wv}, *o[1] = {lw->wo}, *gu[2] = {lw->w_gate, lw->w_up},
                        *down[1] = {lw->w_down};
        const rm_tensor *const *sc = lw->scale;   /* wq wk wv wo gate up down */
        if ((st = stream_matrix(s, &L->qkv, qkv, sc, 3, err)) || (st = stream_matrix(s, &L->o, o, sc + 3, 1, err)) ||
            (st = stream_matrix(s, &L->gate_up, gu, sc + 4, 2, err)) ||
            (st = stream_matrix(s, &L->down, down, sc + 6, 1, err)) ||
            (st = stream_vector(s, lw->attn_norm, L->attn_norm, 0, err)) ||
            (st = stream_vector(s, lw->mlp_norm, L->mlp_norm, 0, err)))
            return st;
        const rm_tensor *bqkv[3] = {lw->bq, lw->bk, lw->bv}, *bgu[2] = {lw->b_gate, lw->b_up};
        int64_t lqkv[3] = {e->QD, e->KD, e->KD}, lgu[2] = {e->F, e->F};
        if ((L->qkv_bias && (st = stream_bias(s, L->qkv_bias, bqkv, lqkv, 3, err))) ||
            (L->o_bias && (st = stream_vector(s, lw->bo, L->o_bias, 0, err))) ||
            (L->gate_up_bias && (st = stream_bias(s, L->gate_up_bias, bgu, lgu, 2, err))) ||
            (L->down_bias && (st = stream_vector(s, lw->b_down, L->down_bias, 0, err))) ||
            (L->q_norm && (st = stream_vector(s, lw->q_norm, L->q_norm, 0, err))) ||
            (L->k_norm && (st = stream_vector(s, lw->k_norm, L->k_norm, 0, err))))
            return st;
    }
    if ((st = stream_vector(s, w->final_norm, e->final_norm, 0, err))) return st;
    CU_TRY(e->gpu, err, cudaStreamSynchronize(e->stream));
    return RM_OK;
}

rm_status cu_upload_weights(rm_engine *e, rm_err *err) {
    rm_cu_device_guard g;
    rm_status st = rm_cu_device_enter(&g, e->gpu, err);
    if (st) return st;
    stager s;
    memset(&s, 0, sizeof s);
    s.e = e;
    /* Two chunks of staging and an amax fit in the arena (create asked for it). */
    s.chunk = (e->arena.bytes - CU_ALIGN) / 2 / CU_ALIGN * CU_ALIGN;
    if (s.chunk > CHUNK_BYTES) s.chunk = CHUNK_BYTES;
    s.dev_src = e->arena_base;
    s.dev_bf16 = e->arena_base + s.chunk;
    s.amax = (float *)(e->arena_base + 2 * s.chunk);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    s.threads = e->n_threads > 0 ? e->n_threads : (int)(cores > 0 ? cores : 1);
    if (s.threads > MAX_COPY_THREADS) s.threads = MAX_COPY_THREADS;
    int gpu = e->gpu;
    for (int i = 0; i < 2; i++) {
        CU_TRY_GOTO(gpu, err, st, done, cudaHostAlloc(&s.pinned[i], s.chunk, cudaHostAllocDefault));
        CU_TRY_GOTO(gpu, err, st, done, cudaEventCreateWithFlags(&s.copied[i], cudaEventDisableTiming));
    }
    st = upload_all(&s, err);
done:
    if (st) (void)cudaStreamSynchronize(e->stream);   /* no copy may still read a buffer freed below */
    for (int i = 0; i < 2; i++) {
        if (s.pinned[i]) cudaFreeHost(s.pinned[i]);
        if (s.copied[i]) cudaEventDestroy(s.copied[i]);
    }
    rm_cu_device_leave(&g);
    return st;
}
