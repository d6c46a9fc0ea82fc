/*
 * gemm_candidates.c - the GEMM libraries we could use, side by side on the
 * engine's real shapes, against the machine's measured FMA peak. Built by
 * `make gemm-candidates` (needs libdnnl-dev and libblis-dev besides the
 * usual packages) as one binary per library, since OpenBLAS and BLIS both
 * export the BLAS symbols; scripts/gemm-candidates.sh runs them in turn.
 *
 * A "layer" is the seven projections of one Llama-3.2-1B decoder layer
 * (hidden 2048, ffn 8192, 32/8 heads x 64): Y = X W^T for W of
 * [2048|512|512|2048|8192|8192|2048, 2048|2048|2048|2048|2048|2048|8192].
 * Each candidate runs the layer at m rows, best of R repeats, 2 threads
 * unless --threads says otherwise. Candidates:
 *   own fp32 / own bf16: lib/cpu/gemm.h (best fp32 kernel; bf16 weights
 *     through the same kernel, or the bf16 kernel where the CPU has one);
 *   openblas-team: the engine's previous way (an OpenMP team, each thread a
 *     single-threaded cblas_sgemm on its slice of columns);
 *   openblas: one cblas_sgemm on OpenBLAS's own threads;
 *   dnnl-sgemm: oneDNN's dnnl_sgemm (its own OpenMP threads);
 *   dnnl-matmul-bf16: oneDNN's matmul primitive, bf16 x bf16 -> fp32
 *     (only where oneDNN implements it for this CPU);
 *   blis: bli_sgemm on BLIS's threads.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpuid.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernel.h"
#include "cpu/peak.h"

#ifdef CAND_OPENBLAS
#include <cblas.h>
#endif
#ifdef CAND_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef CAND_BLIS
#include <blis.h>
#endif

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_now(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

enum { N_PROJ = 7 };
static const size_t proj_n[N_PROJ] = {2048, 512, 512, 2048, 8192, 8192, 2048};
static const size_t proj_k[N_PROJ] = {2048, 2048, 2048, 2048, 2048, 2048, 8192};

static float *X, *Y, *W32[N_PROJ];
static uint16_t *W16[N_PROJ];
static int threads = 2;

typedef int (*layer_fn)(size_t m);   /* runs the 7 products; 0 when unsupported */

static int own(size_t m, int bf16) {
    const rm_gemm_kernel *k = rm_gemm_kernel_pick(bf16 ? RM_GEMM_BF16 : RM_GEMM_FP32, RM_ISA_COUNT);
    static void *scratch;
    if (!scratch) scratch = malloc(rm_gemm_scratch_bytes(k, 8192, 0) * (size_t)threads + 4096);
    for (int i = 0; i < N_PROJ; i++) {
        rm_gemm_args g = {.m = m, .n = proj_n[i], .k = proj_k[i], .x = X, .ldx = proj_k[i],
                          .w = bf16 ? (void *)W16[i] : (void *)W32[i], .ldw = proj_k[i],
                          .wtype = bf16 ? RM_GEMM_W_BF16 : RM_GEMM_W_F32, .y = Y, .ldy = proj_n[i]};
        if (rm_gemm(k, &g, scratch, threads) != RM_OK) return 0;
    }
    return 1;
}
static int own_fp32(size_t m) { return own(m, 0); }
static int own_bf16(size_t m) { return own(m, 1); }

#ifdef CAND_OPENBLAS
static int openblas_team(size_t m) {
    openblas_set_num_threads(1);
    for (int i = 0; i < N_PROJ; i++) {
        size_t n = proj_n[i], k = proj_k[i];
#pragma omp parallel num_threads(threads)
        {
            size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
            size_t per = ((n + nt - 1) / nt + 63) / 64 * 64, o0 = t * per, o1 = o0 + per < n ? o0 + per : n;
            if (o0 < o1)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)(o1 - o0), (int)k, 1.0f, X, (int)k,
                            W32[i] + o0 * k, (int)k, 0.0f, Y + o0, (int)n);
        }
    }
    return 1;
}
static int openblas_own(size_t m) {
    openblas_set_num_threads(threads);
    for (int i = 0; i < N_PROJ; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)proj_n[i], (int)proj_k[i], 1.0f, X,
                    (int)proj_k[i], W32[i], (int)proj_k[i], 0.0f, Y, (int)proj_n[i]);
    return 1;
}
#endif

#ifdef CAND_DNNL
static int dnnl_sgemm_layer(size_t m) {
    for (int i = 0; i < N_PROJ; i++)
        if (dnnl_sgemm('N', 'T', (dnnl_dim_t)m, (dnnl_dim_t)proj_n[i], (dnnl_dim_t)proj_k[i], 1.0f, X,
                       (dnnl_dim_t)proj_k[i], W32[i], (dnnl_dim_t)proj_k[i], 0.0f, Y, (dnnl_dim_t)proj_n[i]) !=
            dnnl_success)
            return 0;
    return 1;
}

/* bf16 matmul: X converted to bf16 first (part of the timed work), W bf16 as [n, k] ("ba" of [k, n]). */
static dnnl_engine_t eng;
static dnnl_stream_t strm;
static uint16_t *X16;
static int dnnl_bf16_layer(size_t m) {
    static size_t built_m;
    static dnnl_primitive_t prim[N_PROJ];
    static dnnl_memory_t src[N_PROJ], wei[N_PROJ], dst[N_PROJ];
    static int ok = 1;
    if (!eng) {
        if (dnnl_engine_create(&eng, dnnl_cpu, 0) || dnnl_stream_create(&strm, eng, dnnl_stream_default_flags)) return 0;
        X16 = malloc(2048 * 8192 * sizeof(uint16_t));
    }
    if (built_m != m) {
        built_m = m;
        for (int i = 0; i < N_PROJ; i++) {
            dnnl_memory_desc_t sd, wd, dd;
            dnnl_dims_t sdims = {(dnnl_dim_t)m, (dnnl_dim_t)proj_k[i]}, wdims = {(dnnl_dim_t)proj_k[i], (dnnl_dim_t)proj_n[i]},
                        ddims = {(dnnl_dim_t)m, (dnnl_dim_t)proj_n[i]};
            dnnl_memory_desc_init_by_tag(&sd, 2, sdims, dnnl_bf16, dnnl_ab);
            dnnl_memory_desc_init_by_tag(&wd, 2, wdims, dnnl_bf16, dnnl_ba);
            dnnl_memory_desc_init_by_tag(&dd, 2, ddims, dnnl_f32, dnnl_ab);
            dnnl_matmul_desc_t md;
            dnnl_primitive_desc_t pd;
            if (dnnl_matmul_desc_init(&md, &sd, &wd, NULL, &dd) || dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL)) {
                ok = 0;
                return 0;
            }
            const char *impl = NULL;
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
            if (i == 0) fprintf(stderr, "  dnnl bf16 matmul implementation: %s\n", impl ? impl : "?");
            dnnl_primitive_create(&prim[i], pd);
            dnnl_memory_create(&src[i], &sd, eng, X16);
            dnnl_memory_create(&wei[i], &wd, eng, W16[i]);
            dnnl_memory_create(&dst[i], &dd, eng, Y);
            dnnl_primitive_desc_destroy(pd);
        }
    }
    if (!ok) return 0;
    for (int i = 0; i < N_PROJ; i++) {
        size_t n = m * proj_k[i];
#pragma omp parallel for num_threads(threads)
        for (size_t j = 0; j < n; j++) X16[j] = rm_f32_to_bf16(X[j]);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src[i]}, {DNNL_ARG_WEIGHTS, wei[i]}, {DNNL_ARG_DST, dst[i]}};
        if (dnnl_primitive_execute(prim[i], strm, 3, args)) return 0;
    }
    dnnl_stream_wait(strm);
    return 1;
}
#endif

#ifdef CAND_BLIS
static int blis_layer(size_t m) {
    float one = 1, zero = 0;
    bli_thread_set_num_threads(threads);
    for (int i = 0; i < N_PROJ; i++)
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, (dim_t)m, (dim_t)proj_n[i], (dim_t)proj_k[i], &one, X,
                  (inc_t)proj_k[i], 1, W32[i], (inc_t)proj_k[i], 1, &zero, Y, (inc_t)proj_n[i], 1);
    return 1;
}
#endif

typedef struct cand {
    const char *name;
    layer_fn fn;
    double best, best_cpu;
} cand;


int main(int argc, char **argv) {
    size_t rows[8] = {512, 2048, 64, 1};
    int n_rows = 4, repeat = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows")) {
            n_rows = 0;
            for (char *s = argv[i + 1]; *s && n_rows < 8;) {
                rows[n_rows++] = strtoul(s, &s, 10);
                if (*s == ',') s++;
            }
        }
    }
    cand cands[8];
    int nc = 0;
    cands[nc++] = (cand){"own fp32", own_fp32, 0};
    cands[nc++] = (cand){"own bf16", own_bf16, 0};
#ifdef CAND_OPENBLAS
    cands[nc++] = (cand){"openblas-team", openblas_team, 0};
    cands[nc++] = (cand){"openblas", openblas_own, 0};
    fprintf(stderr, "OpenBLAS: %s\n", openblas_get_config());
#endif
#ifdef CAND_DNNL
    const dnnl_version_t *v = dnnl_version();
    fprintf(stderr, "oneDNN %d.%d.%d (cpu runtime %u)\n", v->major, v->minor, v->patch, v->cpu_runtime);
    cands[nc++] = (cand){"dnnl-sgemm", dnnl_sgemm_layer, 0};
    cands[nc++] = (cand){"dnnl-matmul-bf16", dnnl_bf16_layer, 0};
#endif
#ifdef CAND_BLIS
    fprintf(stderr, "BLIS %s, configuration %s\n", bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()));
    cands[nc++] = (cand){"blis", blis_layer, 0};
#endif
    const rm_cpu_features *f = rm_cpu_features_get();
    fprintf(stderr, "cpu features: %s; own kernels: fp32 %s, bf16 %s\n", f->flags,
            rm_gemm_kernel_name(rm_gemm_kernel_pick(RM_GEMM_FP32, RM_ISA_COUNT)),
            rm_gemm_kernel_name(rm_gemm_kernel_pick(RM_GEMM_BF16, RM_ISA_COUNT)));

    size_t max_m = 0;
    for (int r = 0; r < n_rows; r++) max_m = rows[r] > max_m ? rows[r] : max_m;
    X = malloc(max_m * 8192 * sizeof(float));
    Y = malloc(max_m * 8192 * sizeof(float));
    for (size_t i = 0; i < max_m * 8192; i++) X[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    double layer_bytes32 = 0, layer_macs_per_row = 0;
    for (int i = 0; i < N_PROJ; i++) {
        size_t n = proj_n[i] * proj_k[i];
        W32[i] = malloc(n * sizeof(float));
        W16[i] = malloc(n * sizeof(uint16_t));
        for (size_t j = 0; j < n; j++) {
            W32[i][j] = (float)((j * 40503u + (unsigned)i) % 2000) / 40000.0f - 0.025f;
            W16[i][j] = rm_f32_to_bf16(W32[i][j]);
            uint32_t u = (uint32_t)W16[i][j] << 16;     /* the same values in both */
            memcpy(&W32[i][j], &u, 4);
        }
        layer_bytes32 += (double)n * 4;
        layer_macs_per_row += (double)n;
    }
    omp_set_num_threads(threads);   /* oneDNN's team */
    rm_peak pk = rm_cpu_peak(RM_PEAK_FP32, threads, 0.3, 3);
    printf("peak: %.1f GFLOPS on %d threads, %.1f per core on CPU time (%s)\n", pk.gflops, threads, pk.core_gflops,
           pk.what);
    printf("(wall: GFLOPS over wall time and %% of the wall peak; core: per core over the process's CPU time, spinning\n"
           " included, and %% of the per-core peak: the comparison that holds up when other processes share the cores)\n");
    for (int r = 0; r < n_rows; r++) {
        size_t m = rows[r];
        for (int c = 0; c < nc; c++) cands[c].best = cands[c].best_cpu = INFINITY;
        for (int rep = 0; rep < repeat; rep++)
            for (int c = 0; c < nc; c++) {      /* interleaved, so load changes hit all alike */
                double t = now(), cpu = cpu_now();
                int ok = cands[c].fn(m);
                t = now() - t, cpu = cpu_now() - cpu;
                if (!ok) t = cpu = INFINITY;
                if (t < cands[c].best) cands[c].best = t;
                if (cpu < cands[c].best_cpu) cands[c].best_cpu = cpu;
            }
        printf("rows %zu (one layer, %.2f GFLOP):\n", m, 2 * layer_macs_per_row * (double)m / 1e9);
        for (int c = 0; c < nc; c++) {
            double flop = 2 * layer_macs_per_row * (double)m, g = flop / cands[c].best / 1e9,
                   gc = flop / cands[c].best_cpu / 1e9;
            if (!isfinite(cands[c].best)) printf("  %-18s not implemented here\n", cands[c].name);
            else
                printf("  %-18s wall %8.2f ms %7.1f GFLOPS %5.1f%% | core %7.1f GFLOPS %5.1f%% | %5.1f GB/s of fp32 weights\n",
                       cands[c].name, cands[c].best * 1e3, g, 100 * g / pk.gflops, gc, 100 * gc / pk.core_gflops,
                       layer_bytes32 / cands[c].best / 1e9);
        }
        fflush(stdout);
    }
    return 0;
}
