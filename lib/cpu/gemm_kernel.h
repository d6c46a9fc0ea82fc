/*
 * gemm_kernel.h - what a GEMM kernel gives the driver (gemm.c): its tile
 * shape, blocking, packing functions and the tile product itself. One file
 * per ISA (gemm_generic.c, gemm_avx2.c, gemm_avx512.c, gemm_avx512_bf16.c,
 * gemm_amx.c) defines its kernels; the driver, the blocking and the edge
 * handling are shared, so every ISA runs the same loops.
 *
 * Packed layouts. X is packed in panels of mr rows, W in panels of nr
 * columns, each over one block of k (at most kc). A "k-step" is the k one
 * packed element covers: 1 for fp32, 2 for bf16 pairs, 32 for AMX rows.
 * Packing pads with zeros to mr rows / nr columns and to whole k-steps.
 *   fp32:       a[p * mr + i] = x[i][k0 + p];   b[p * nr + j] = w(j, k0 + p)
 *   bf16 pairs: 32-bit words: a[p * mr + i] = (x[i][k0+2p], x[i][k0+2p+1]) as
 *               bf16, low half first; b[p * nr + j] likewise from W.
 *   AMX:        a: per 32 k, mr rows of 32 bf16 (tile A rows); b: bf16 pairs.
 */
#ifndef RM_CPU_GEMM_KERNEL_H
#define RM_CPU_GEMM_KERNEL_H

#include "cpu/gemm.h"

/* Packs rows [0, rows) (rows <= mr) of x, k in [k0, k0 + kc), into one panel. */
typedef void (*rm_pack_a_fn)(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst,
                             size_t mr);
/* Packs columns [0, cols) (cols <= nr) of W, k in [k0, k0 + kc), into one
 * panel; w points at column 0 (row 0 of an [n, k] W, element 0 of a row of a
 * [k, n] W); ldw in elements. ahead: the next block of the same columns is
 * packed next (the stream path), so prefetching past this block pays; in
 * the panel path it would fetch what is evicted before its turn. */
typedef void (*rm_pack_b_fn)(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                             size_t nr, int ahead);
/* C[0..m) x [0..nr) (row stride ldc) = (accumulate ? C + : ) the product of
 * one packed A panel and one packed B panel over `steps` k-steps. Rows at or
 * past m are neither read nor written; all nr columns are. */
typedef void (*rm_tile_fn)(size_t steps, const void *a, const void *b, float *c, size_t ldc, int m,
                           int accumulate);

struct rm_gemm_kernel {
    const char *name;
    rm_isa isa;
    rm_gemm_arith arith;
    int mr, nr;             /* tile rows (of X) and columns (of W) */
    int kstep;              /* k per packed element: 1, 2 or 32 */
    int a_bytes, b_bytes;   /* bytes of one packed element (one row or column, one k-step) */
    int kc, mc, nc;         /* blocking: k per block (multiple of kstep), rows and columns per packed block */
    int stream_rows;        /* default rm_gemm_args.stream_rows */
    rm_pack_a_fn pack_a;
    rm_pack_b_fn pack_b[2][2]; /* [rm_gemm_wtype][w_kn]; NULL where not taken */
    rm_tile_fn tile;
    /* Called by each thread before / after its share (AMX: tile configuration). */
    void (*thread_begin)(void);
    void (*thread_end)(void);
};

/* The kernels (defined in their ISA's file; NULL-free on every build, but
 * only run when rm_cpu_isa() reaches their level). */
RM_INTERNAL extern const rm_gemm_kernel rm_gemm_generic_fp32, rm_gemm_generic_bf16;
#if defined(__x86_64__)
RM_INTERNAL extern const rm_gemm_kernel rm_gemm_avx2_fp32, rm_gemm_avx512_fp32, rm_gemm_avx512_bf16,
    rm_gemm_amx_bf16;
#endif

/* Portable packers (gemm_pack.c), used by the generic kernels and for the
 * cases the ISA files do not specialise. */
RM_INTERNAL void rm_pack_a_f32(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst, size_t mr);
RM_INTERNAL void rm_pack_a_pairs(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc, void *dst,
                                 size_t mr);
RM_INTERNAL void rm_pack_b_f32_nk(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                  size_t nr, int ahead);
RM_INTERNAL void rm_pack_b_f32_kn(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                  size_t nr, int ahead);
RM_INTERNAL void rm_pack_b_bf16_nk(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                   size_t nr, int ahead);
RM_INTERNAL void rm_pack_b_bf16_kn(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                   size_t nr, int ahead);
RM_INTERNAL void rm_pack_b_pairs_nk(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                    size_t nr, int ahead);

#if defined(__x86_64__)
/* AVX2 versions of the nk W packers (gemm_avx2.c), for every x86 kernel. */
RM_INTERNAL void rm_pack_b_f32_nk_avx2(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                       size_t nr, int ahead);
RM_INTERNAL void rm_pack_b_bf16_nk_avx2(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                        size_t nr, int ahead);
RM_INTERNAL void rm_pack_b_pairs_nk_avx2(const void *w, size_t ldw, size_t cols, size_t k0, size_t kc, void *dst,
                                         size_t nr, int ahead);
#endif


#endif
