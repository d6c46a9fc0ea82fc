/*
 * gemm.c - cuBLASLt plans, cached per shape (gemm.h).
 */
#include "gemm.h"

#include <string.h>

#include "device.h"

#define KEY_WORDS 7
#define INITIAL_PLANS 256

struct cu_gemm_plan {
    int used;
    uint64_t key[KEY_WORDS];
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

/* log2 of the largest power of two (<= 256) dividing the address. */
static unsigned align_log2(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned l = 0;
    while (l < 8 && !(a & ((uintptr_t)1 << l))) l++;
    return l;
}

static void make_key(const cu_gemm *g, const cu_gemm_call *c, uint64_t *key) {
    key[0] = (uint64_t)c->kind | (uint64_t)(g->fast_accum != 0) << 4 | (uint64_t)align_log2(c->w) << 8 |
             (uint64_t)align_log2(c->x) << 16 | (uint64_t)align_log2(c->y) << 24 |
             (uint64_t)align_log2(c->w_scale) << 32 | (uint64_t)align_log2(c->x_scale) << 40;
    key[1] = (uint64_t)c->m;
    key[2] = (uint64_t)c->n;
    key[3] = (uint64_t)c->k;
    key[4] = c->ldx;
    key[5] = c->ldw;
    key[6] = c->ldy;
}

static uint64_t hash_key(const uint64_t *key) {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < KEY_WORDS; i++) {
        h ^= key[i];
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
    }
    return h;
}

static void plan_release(cu_gemm_plan *p) {
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

static void cache_clear(cu_gemm *g) {
    for (size_t i = 0; i < g->cap_plans; i++)
        if (g->plans[i].used) plan_release(&g->plans[i]);
    g->n_plans = 0;
}

#define LT(call) LT_TRY(g->gpu, err, call)

static rm_status set_scales(cu_gemm *g, cu_gemm_plan *p, const cu_gemm_call *c, rm_err *err) {
    if (c->kind == CU_GEMM_BF16) return RM_OK;
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &c->w_scale, sizeof c->w_scale));
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &c->x_scale, sizeof c->x_scale));
    return RM_OK;
}

static rm_status plan_build(cu_gemm *g, const cu_gemm_call *c, cu_gemm_plan *p, rm_err *err) {
    cudaDataType_t ab = c->kind == CU_GEMM_BF16 ? CUDA_R_16BF : CUDA_R_8F_E4M3;
    LT(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (c->kind != CU_GEMM_BF16) {
        int32_t mode = c->kind == CU_GEMM_FP8_ROWS ? CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
                                                   : CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode));
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode));
        int8_t fast = (int8_t)(g->fast_accum != 0);
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
        rm_status st = set_scales(g, p, c, err);
        if (st) return st;
    }
    LT(cublasLtMatrixLayoutCreate(&p->a, ab, (uint64_t)c->k, (uint64_t)c->n, (int64_t)c->ldw));
    LT(cublasLtMatrixLayoutCreate(&p->b, ab, (uint64_t)c->k, (uint64_t)c->m, (int64_t)c->ldx));
    LT(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_16BF, (uint64_t)c->n, (uint64_t)c->m, (int64_t)c->ldy));

    cublasLtMatmulPreference_t pref = NULL;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = g->workspace_bytes;
    uint32_t al_a = 1u << align_log2(c->w), al_b = 1u << align_log2(c->x), al_c = 1u << align_log2(c->y);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    static const char *kinds[] = {"bf16", "FP8 (per-row scales)", "FP8 (per-tensor scales)"};
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || (s == CUBLAS_STATUS_SUCCESS && found == 0))
        return rm_fail(err, RM_ERR_UNSUPPORTED, "cuBLASLt has no %s GEMM for m=%d n=%d k=%d on GPU %d", kinds[c->kind],
                       c->m, c->n, c->k, g->gpu);
    if (s != CUBLAS_STATUS_SUCCESS) return rm_cu_blas_fail(g->gpu, err, s, "cublasLtMatmulAlgoGetHeuristic");
    p->algo = res.algo;
    return RM_OK;
}

/* The plan for c: cached, or built and cached. */
static rm_status plan_get(cu_gemm *g, const cu_gemm_call *c, cu_gemm_plan **out, rm_err *err) {
    uint64_t key[KEY_WORDS];
    make_key(g, c, key);
    /* Keep the table at most half full; when it would pass that, start over
     * (a plan is a pure function of its key, so rebuilding one changes nothing). */
    if (2 * (g->n_plans + 1) > g->cap_plans) cache_clear(g);
    size_t mask = g->cap_plans - 1, i = (size_t)hash_key(key) & mask;
    for (; g->plans[i].used; i = (i + 1) & mask)
        if (memcmp(g->plans[i].key, key, sizeof key) == 0) {
            *out = &g->plans[i];
            return RM_OK;
        }
    cu_gemm_plan *p = &g->plans[i];
    memset(p, 0, sizeof *p);
    rm_status st = plan_build(g, c, p, err);
    if (st) {
        plan_release(p);
        return st;
    }
    memcpy(p->key, key, sizeof key);
    p->used = 1;
    g->n_plans++;
    *out = p;
    return RM_OK;
}

rm_status cu_gemm_init(cu_gemm *g, int gpu, size_t workspace_bytes, rm_err *err) {
    memset(g, 0, sizeof *g);
    g->gpu = gpu;
    g->plans = rm_calloc(INITIAL_PLANS, sizeof *g->plans);
    if (!g->plans) return rm_fail(err, RM_ERR_NOMEM, "cuda engine: out of memory for the GEMM plan cache");
    g->cap_plans = INITIAL_PLANS;
    LT(cublasLtCreate(&g->lt));
    if (workspace_bytes) CU_TRY(gpu, err, cudaMalloc(&g->workspace, workspace_bytes));
    g->workspace_bytes = workspace_bytes;
    return RM_OK;
}

void cu_gemm_free(cu_gemm *g) {
    if (g->plans) cache_clear(g);
    rm_mfree(g->plans);
    if (g->workspace) cudaFree(g->workspace);
    if (g->lt) cublasLtDestroy(g->lt);
    memset(g, 0, sizeof *g);
}

rm_status cu_gemm_run(cu_gemm *g, const cu_gemm_call *c, cudaStream_t stream, rm_err *err) {
    if (c->m <= 0 || c->n <= 0) return RM_OK;
    cu_gemm_plan *p;
    rm_status st = plan_get(g, c, &p, err);
    if (st || (st = set_scales(g, p, c, err))) return st;
    const float alpha = 1.0f, beta = 0.0f;
    LT(cublasLtMatmul(g->lt, p->desc, &alpha, c->w, p->a, c->x, p->b, &beta, c->y, p->c, c->y, p->c, &p->algo,
                      g->workspace, g->workspace_bytes, stream));
    if (g->record && g->n_record < g->cap_record) g->record[g->n_record++] = *c;
    return RM_OK;
}

rm_status cu_gemm_check(cu_gemm *g, cu_gemm_kind kind, int m, int n, int k, rm_err *err) {
    /* The heuristic never touches the operands: the workspace stands in for
     * every pointer, so they count as 256-byte aligned, as the engine's are. */
    cu_gemm_call c = {.kind = kind, .m = m, .n = n, .k = k, .x = g->workspace, .ldx = (size_t)k,
                      .x_scale = g->workspace, .w = g->workspace, .ldw = (size_t)k, .w_scale = g->workspace,
                      .y = g->workspace, .ldy = (size_t)n};
    cu_gemm_plan p;
    memset(&p, 0, sizeof p);
    rm_status st = plan_build(g, &c, &p, err);
    plan_release(&p);
    return st;
}
