/*
 * gemm.c - the GEMM driver every kernel shares (the Goto / BLIS loop nest)
 * and the choice of kernel.
 *
 * Each thread owns a range of output columns (whole nr panels) and runs one
 * of two loop orders over it:
 *   panel path (many rows): for each block of nc columns and kc of k, pack
 *     that block of W once, then for each block of mc rows pack X and run
 *     the tiles; W's block is reused over every row.
 *   stream path (at most stream_rows rows): pack all of X once, then for each
 *     nr columns and kc of k pack just that panel of W (it stays in L1) and
 *     run it against every row panel: W is read once, straight from memory,
 *     which is what bounds a pass of a few rows. It also beats the panel
 *     path as long as the packed X stays in cache (measured: up to ~4 MB of
 *     it, 510 rows at k = 2048), so that is the default bound.
 * Every element of Y is the same chain of operations either way (gemm.h).
 */
#include "cpu/gemm_kernel.h"

#include <omp.h>
#include <string.h>

#define ALIGN 64
/* Below this many multiply-adds a product runs on the calling thread. */
#define PAR_MIN_MACS (2u << 20)
/* The stream path by default while the packed X is at most this big (and
 * always up to the kernel's stream_rows), up to MAX_STREAM_ROWS rows. */
#define STREAM_X_BYTES (4u << 20)
#define MAX_STREAM_ROWS 4096

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
static size_t ceil_div(size_t x, size_t d) { return (x + d - 1) / d; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static size_t a_panel_bytes(const rm_gemm_kernel *K, size_t kc) {
    return align_up(ceil_div(kc, (size_t)K->kstep) * (size_t)K->mr * (size_t)K->a_bytes, ALIGN);
}

static size_t b_panel_bytes(const rm_gemm_kernel *K, size_t kc) {
    return align_up(ceil_div(kc, (size_t)K->kstep) * (size_t)K->nr * (size_t)K->b_bytes, ALIGN);
}

/* Bytes of X packed for the stream path (per thread): panels of min(kc, k),
 * every k block padded to whole steps. */
static size_t stream_x_bytes(const rm_gemm_kernel *K, size_t rows, size_t k) {
    size_t kc = (size_t)K->kc;
    return ceil_div(rows, (size_t)K->mr) * ceil_div(k, kc) * a_panel_bytes(K, k < kc ? k : kc);
}

/* Whole panels whose packed X (padding included) fits STREAM_X_BYTES, so no
 * k up to a scratch's max_k needs more than that bound (workspace_sizes). */
size_t rm_gemm_stream_rows(const rm_gemm_kernel *K, size_t k) {
    size_t per_panel = stream_x_bytes(K, (size_t)K->mr, k ? k : 1);
    size_t rows = STREAM_X_BYTES / per_panel * (size_t)K->mr;
    if (rows > MAX_STREAM_ROWS) rows = MAX_STREAM_ROWS;
    return rows > (size_t)K->stream_rows ? rows : (size_t)K->stream_rows;
}

typedef struct workspace {
    char *a, *b;
    float *tile;            /* mr x nr, for tiles cut by the last columns */
} workspace;

/* Sizes of one thread's A, B and tile areas. */
static void workspace_sizes(const rm_gemm_kernel *K, size_t max_k, size_t stream_rows, size_t *a, size_t *b,
                            size_t *tile) {
    size_t kc = (size_t)K->kc, apb = a_panel_bytes(K, kc), bpb = b_panel_bytes(K, kc);
    size_t a_block = (size_t)K->mc / (size_t)K->mr * apb, a_all;
    if (stream_rows) {
        a_all = stream_x_bytes(K, stream_rows, max_k ? max_k : 1);
    } else {    /* any k <= max_k: the budget, or the kernel's minimum rows at the largest k */
        a_all = stream_x_bytes(K, (size_t)K->stream_rows, max_k ? max_k : 1);
        if (a_all < STREAM_X_BYTES) a_all = STREAM_X_BYTES;
    }
    *a = a_block > a_all ? a_block : a_all;
    *b = (size_t)K->nc / (size_t)K->nr * bpb;
    *tile = align_up((size_t)K->mr * (size_t)K->nr * sizeof(float), ALIGN);
}

size_t rm_gemm_scratch_bytes(const rm_gemm_kernel *K, size_t max_k, size_t stream_rows) {
    size_t a, b, tile;
    workspace_sizes(K, max_k, stream_rows, &a, &b, &tile);
    return a + b + tile + ALIGN;
}

static char *workspace_base(char *scratch, size_t per_thread, int t) {
    char *base = scratch + (size_t)t * per_thread;
    return base + (align_up((uintptr_t)base, ALIGN) - (uintptr_t)base);
}

static workspace workspace_at(const rm_gemm_kernel *K, const rm_gemm_args *g, char *scratch, size_t per_thread,
                              int t) {
    size_t a, b, tile;
    workspace_sizes(K, g->k, g->stream_rows, &a, &b, &tile);
    char *base = workspace_base(scratch, per_thread, t);
    workspace w = {base, base + a, (float *)(base + a + b)};
    memset(w.tile, 0, tile);
    return w;
}

/* Column j of W (its k = 0 element). */
static const void *w_column(const rm_gemm_args *g, size_t j) {
    size_t es = g->wtype == RM_GEMM_W_BF16 ? 2 : 4;
    return (const char *)g->w + (g->w_kn ? j : j * g->ldw) * es;
}

/* One tile at (row, col) of Y; tiles cut by the last columns go through the
 * tile buffer (same arithmetic, only the valid part copied). */
static void run_tile(const rm_gemm_kernel *K, const rm_gemm_args *g, const workspace *w, size_t steps,
                     const void *ap, const void *bp, size_t row, size_t col, size_t rows, size_t cols,
                     int accumulate) {
    float *c = g->y + row * g->ldy + col;
    size_t nr = (size_t)K->nr;
    if (cols == nr) {
        K->tile(steps, ap, bp, c, g->ldy, (int)rows, accumulate);
        return;
    }
    if (accumulate)
        for (size_t i = 0; i < rows; i++) memcpy(w->tile + i * nr, c + i * g->ldy, cols * sizeof(float));
    K->tile(steps, ap, bp, w->tile, nr, (int)rows, accumulate);
    for (size_t i = 0; i < rows; i++) memcpy(c + i * g->ldy, w->tile + i * nr, cols * sizeof(float));
}

static void add_bias(const rm_gemm_args *g, size_t col, size_t cols) {
    if (!g->bias) return;
    for (size_t r = 0; r < g->m; r++) {
        float *y = g->y + r * g->ldy + col;
        const float *b = g->bias + col;
        for (size_t j = 0; j < cols; j++) y[j] += b[j];
    }
}

/* The stream path's X, every k block of every row panel, packed into x by
 * the team: thread t of nth packs every nth panel (the threads then share it). */
static void stream_pack_x(const rm_gemm_kernel *K, const rm_gemm_args *g, char *x, int t, int nth) {
    size_t mr = (size_t)K->mr, kc = (size_t)K->kc;
    size_t n_kb = ceil_div(g->k, kc), n_panels = ceil_div(g->m, mr), apb = a_panel_bytes(K, g->k < kc ? g->k : kc);
    for (size_t idx = (size_t)t; idx < n_kb * n_panels; idx += (size_t)nth) {
        size_t q = idx / n_panels, i = idx % n_panels;
        K->pack_a(g->x + i * mr * g->ldx, g->ldx, min_sz(mr, g->m - i * mr), q * kc, min_sz(kc, g->k - q * kc),
                  x + idx * apb, mr);
    }
}

static void stream_path(const rm_gemm_kernel *K, const rm_gemm_args *g, size_t n0, size_t n1, const workspace *w,
                        const char *x) {
    size_t mr = (size_t)K->mr, nr = (size_t)K->nr, kc = (size_t)K->kc;
    size_t n_kb = ceil_div(g->k, kc), n_panels = ceil_div(g->m, mr), apb = a_panel_bytes(K, g->k < kc ? g->k : kc);
    rm_pack_b_fn pack_b = K->pack_b[g->wtype][g->w_kn];
    for (size_t j = n0; j < n1; j += nr) {
        size_t cols = min_sz(nr, n1 - j);
        for (size_t q = 0; q < n_kb; q++) {
            size_t k0 = q * kc, kb = min_sz(kc, g->k - k0), steps = ceil_div(kb, (size_t)K->kstep);
            pack_b(w_column(g, j), g->ldw, cols, k0, kb, w->b, nr, 1);
            for (size_t i = 0; i < n_panels; i++)
                run_tile(K, g, w, steps, x + (q * n_panels + i) * apb, w->b, i * mr, j, min_sz(mr, g->m - i * mr),
                         cols, q > 0);
        }
        add_bias(g, j, cols);
    }
}

/* Fetches into L2 the block [k0, k0 + kb) of W's columns [j, j + cols). */
static void prefetch_w(const rm_gemm_args *g, size_t j, size_t cols, size_t k0, size_t kb) {
    size_t es = g->wtype == RM_GEMM_W_BF16 ? 2 : 4;
    if (g->w_kn) return;    /* [k, n]: attention's values, small */
    for (size_t c = 0; c < cols; c++) {
        const char *row = (const char *)w_column(g, j + c) + k0 * es;
        for (size_t b = 0; b < kb * es; b += 64) __builtin_prefetch(row + b, 0, 2);
    }
}

static void panel_path(const rm_gemm_kernel *K, const rm_gemm_args *g, size_t n0, size_t n1, const workspace *w) {
    size_t mr = (size_t)K->mr, nr = (size_t)K->nr, kc = (size_t)K->kc, mc = (size_t)K->mc, nc = (size_t)K->nc;
    size_t apb = a_panel_bytes(K, kc), bpb = b_panel_bytes(K, kc);
    rm_pack_b_fn pack_b = K->pack_b[g->wtype][g->w_kn];
    for (size_t jc = n0; jc < n1; jc += nc) {
        size_t ncols = min_sz(nc, n1 - jc), n_bp = ceil_div(ncols, nr);
        for (size_t k0 = 0; k0 < g->k; k0 += kc) {
            size_t kb = min_sz(kc, g->k - k0), steps = ceil_div(kb, (size_t)K->kstep);
            for (size_t ic = 0; ic < g->m; ic += mc) {
                size_t mrows = min_sz(mc, g->m - ic), n_ap = ceil_div(mrows, mr);
                for (size_t ip = 0; ip < n_ap; ip++)
                    K->pack_a(g->x + (ic + ip * mr) * g->ldx, g->ldx, min_sz(mr, mrows - ip * mr), k0, kb,
                              w->a + ip * apb, mr);
                for (size_t jp = 0; jp < n_bp; jp++) {
                    /* W's block is packed a panel at a time during the first row
                     * block, the next panel's rows fetched into L2 meanwhile. */
                    if (ic == 0) {
                        if (jp + 1 < n_bp) prefetch_w(g, jc + (jp + 1) * nr, min_sz(nr, ncols - (jp + 1) * nr), k0, kb);
                        pack_b(w_column(g, jc + jp * nr), g->ldw, min_sz(nr, ncols - jp * nr), k0, kb,
                               w->b + jp * bpb, nr, 0);
                    }
                    for (size_t ip = 0; ip < n_ap; ip++)
                        run_tile(K, g, w, steps, w->a + ip * apb, w->b + jp * bpb, ic + ip * mr, jc + jp * nr,
                                 min_sz(mr, mrows - ip * mr), min_sz(nr, ncols - jp * nr), k0 > 0);
                }
            }
        }
        add_bias(g, jc, ncols);
    }
}

rm_status rm_gemm(const rm_gemm_kernel *K, const rm_gemm_args *g, void *scratch, int n_threads) {
    if (!K || !g || (g->m && g->n && (!g->y || (g->k && (!g->x || !g->w)))))
        return RM_ERR_INVALID_ARG;
    if (!rm_gemm_kernel_takes(K, g->wtype, g->w_kn)) return RM_ERR_INVALID_ARG;
    if (g->m == 0 || g->n == 0) return RM_OK;
    if (g->k == 0) {            /* an empty sum: Y = bias or 0 */
        for (size_t r = 0; r < g->m; r++)
            for (size_t j = 0; j < g->n; j++) g->y[r * g->ldy + j] = g->bias ? g->bias[j] : 0.0f;
        return RM_OK;
    }
    size_t panels = ceil_div(g->n, (size_t)K->nr);
    int nt = n_threads < 1 ? 1 : n_threads;
    if ((size_t)nt > panels) nt = (int)panels;
    double macs = (double)g->m * (double)g->n * (double)g->k;
    if (macs < PAR_MIN_MACS) nt = 1;
    size_t per = rm_gemm_scratch_bytes(K, g->k, g->stream_rows);
    void *owned = NULL;
    if (!scratch) {
        size_t total;
        if (!rm_mul_ok(per, (size_t)nt, &total) || !(owned = rm_malloc(total))) return RM_ERR_NOMEM;
        scratch = owned;
    }
    size_t stream_rows = g->stream_rows ? g->stream_rows : rm_gemm_stream_rows(K, g->k);
    int stream = g->m <= stream_rows;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), nth = omp_get_num_threads();
        size_t per_t = ceil_div(panels, (size_t)nth);
        size_t n0 = min_sz((size_t)t * per_t * (size_t)K->nr, g->n), n1 = min_sz(n0 + per_t * (size_t)K->nr, g->n);
        /* Stream path: X packed once by the whole team into thread 0's area. */
        char *x = workspace_base(scratch, per, 0);
        if (stream) {
            stream_pack_x(K, g, x, t, nth);
#pragma omp barrier
        }
        if (n0 < n1) {
            workspace w = workspace_at(K, g, scratch, per, t);
            if (K->thread_begin) K->thread_begin();
            if (stream) stream_path(K, g, n0, n1, &w, x);
            else panel_path(K, g, n0, n1, &w);
            if (K->thread_end) K->thread_end();
        }
    }
    rm_mfree(owned);
    return RM_OK;
}

/* ---------------------------------------------------------------- choice */

const char *rm_gemm_kernel_name(const rm_gemm_kernel *K) { return K ? K->name : "none"; }
rm_isa rm_gemm_kernel_isa(const rm_gemm_kernel *K) { return K->isa; }
rm_gemm_arith rm_gemm_kernel_arith(const rm_gemm_kernel *K) { return K->arith; }

int rm_gemm_kernel_takes(const rm_gemm_kernel *K, rm_gemm_wtype w, int w_kn) {
    return K && (w == RM_GEMM_W_F32 || w == RM_GEMM_W_BF16) && K->pack_b[w][w_kn != 0] != NULL;
}

const rm_gemm_kernel *rm_gemm_kernel_at(rm_isa isa, rm_gemm_arith arith) {
    if (isa > rm_cpu_isa()) return NULL;
    const rm_gemm_kernel *k = NULL;
    switch (isa) {
    case RM_ISA_GENERIC: k = arith == RM_GEMM_FP32 ? &rm_gemm_generic_fp32 : &rm_gemm_generic_bf16; break;
#if defined(__x86_64__)
    case RM_ISA_AVX2: k = arith == RM_GEMM_FP32 ? &rm_gemm_avx2_fp32 : NULL; break;
    case RM_ISA_AVX512: k = arith == RM_GEMM_FP32 ? &rm_gemm_avx512_fp32 : NULL; break;
    case RM_ISA_AVX512_BF16: k = arith == RM_GEMM_BF16 ? &rm_gemm_avx512_bf16 : NULL; break;
    case RM_ISA_AMX: k = arith == RM_GEMM_BF16 ? &rm_gemm_amx_bf16 : NULL; break;
#endif
    default: break;
    }
    return k;
}

const rm_gemm_kernel *rm_gemm_kernel_pick(rm_gemm_arith arith, rm_isa max_isa) {
    rm_isa top = rm_cpu_isa() < max_isa ? rm_cpu_isa() : max_isa;
    if (arith == RM_GEMM_BF16)
        for (int isa = top; isa >= RM_ISA_AVX512_BF16; isa--) {
            const rm_gemm_kernel *k = rm_gemm_kernel_at((rm_isa)isa, RM_GEMM_BF16);
            if (k) return k;
        }
    for (int isa = top; isa > RM_ISA_GENERIC; isa--) {
        const rm_gemm_kernel *k = rm_gemm_kernel_at((rm_isa)isa, RM_GEMM_FP32);
        if (k) return k;
    }
    return &rm_gemm_generic_fp32;
}
