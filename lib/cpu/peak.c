/*
 * peak.c - the in-register loops behind rm_cpu_peak(). Each keeps enough
 * independent accumulators in flight to cover the instruction's latency on
 * every pipe (16 or more chains; the CPUs in question have 2 FMA pipes and
 * 4-6 cycles of latency) and never loads in the loop. Values stay normal
 * (no denormal slow path): fp32 chains converge to a fixed point, bf16 sums
 * grow by a tiny amount per step.
 */
#include "cpu/peak.h"

#include <omp.h>
#include <string.h>
#include <time.h>

#include "cpu/gemm_kernel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

/* Keeps the results alive. */
static volatile float sink;

/* Portable: 16 chains of 4-lane multiply + add (what SSE2, the x86-64
 * baseline, or any other target's vectors give the compiler). */
typedef float v4 __attribute__((vector_size(16)));
static double loop_generic(uint64_t iters) {
    v4 acc[16], a = {0.999f, 0.999f, 0.999f, 0.999f}, b = {1e-3f, 1e-3f, 1e-3f, 1e-3f};
    for (int i = 0; i < 16; i++) acc[i] = (v4){(float)i, 1, 2, 3};
    for (uint64_t it = 0; it < iters; it++) {
        for (int i = 0; i < 16; i++) acc[i] = acc[i] * a + b;
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
    }
    v4 s = acc[0];
    for (int i = 1; i < 16; i++) s += acc[i];
    sink = s[0] + s[1] + s[2] + s[3];
    return (double)iters * 16 * 4 * 2;
}

#if defined(__x86_64__)
#define FMA_CHAINS(T, fma, n)                                  \
    for (uint64_t it = 0; it < iters; it++) {                  \
        _Pragma("GCC unroll 24") for (int i = 0; i < n; i++) acc[i] = fma(acc[i], a, b); \
    }

__attribute__((target("avx2,fma"))) static double loop_avx2(uint64_t iters) {
    __m256 acc[12], a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    FMA_CHAINS(__m256, _mm256_fmadd_ps, 12)
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
    sink = _mm256_cvtss_f32(s);
    return (double)iters * 12 * 8 * 2;
}

__attribute__((target("avx512f"))) static double loop_avx512(uint64_t iters) {
    __m512 acc[24], a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    FMA_CHAINS(__m512, _mm512_fmadd_ps, 24)
    __m512 s = acc[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, acc[i]);
    sink = _mm512_reduce_add_ps(s);
    return (double)iters * 24 * 16 * 2;
}

/* Each VDPBF16PS: 16 lanes x 2 products, each a multiply and an add. */
__attribute__((target("avx512f,avx512bf16"))) static double loop_bf16(uint64_t iters) {
    __m512 acc[24];
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3a803a80), b = (__m512bh)_mm512_set1_epi32(0x3a803a80); /* 2^-10 */
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    for (uint64_t it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, acc[i]);
    sink = _mm512_reduce_add_ps(s);
    return (double)iters * 24 * 16 * 2 * 2;
}

/* Each TDPBF16PS on 16 x 16 x 32: 8192 multiply-adds. Four independent
 * sums (tiles 0-3) cover its latency; the operand tiles are loaded once. */
__attribute__((target("amx-tile,amx-bf16"))) static double loop_amx(uint64_t iters) {
    uint16_t small[16 * 32] __attribute__((aligned(64)));     /* 2^-10: sums stay small and normal */
    for (int i = 0; i < 16 * 32; i++) small[i] = 0x3a80;
    float out[16 * 16] __attribute__((aligned(64)));
    rm_gemm_amx_bf16.thread_begin();
    __asm__ volatile("" ::: "memory");
    _tile_loadd(4, small, 64);
    _tile_loadd(5, small, 64);
    _tile_loadd(6, small, 64);
    _tile_loadd(7, small, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (uint64_t it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    __asm__ volatile("" ::: "memory");
    sink = out[0];
    rm_gemm_amx_bf16.thread_end();
    return (double)iters * 4 * 16 * 16 * 32 * 2;
}
#endif

typedef double (*loop_fn)(uint64_t iters);

static loop_fn pick(rm_peak_kind kind, rm_isa isa, rm_isa *level, const char **what) {
#if defined(__x86_64__)
    if (kind == RM_PEAK_AMX_BF16 && isa >= RM_ISA_AMX)
        return *level = RM_ISA_AMX, *what = "amx tdpbf16ps 16x16x32", loop_amx;
    if (kind == RM_PEAK_BF16_DOT && isa >= RM_ISA_AVX512_BF16)
        return *level = RM_ISA_AVX512_BF16, *what = "avx512_bf16 vdpbf16ps zmm", loop_bf16;
    if (kind == RM_PEAK_FP32 && isa >= RM_ISA_AVX512)
        return *level = RM_ISA_AVX512, *what = "avx512 vfmadd231ps zmm", loop_avx512;
    if (kind == RM_PEAK_FP32 && isa >= RM_ISA_AVX2)
        return *level = RM_ISA_AVX2, *what = "avx2 vfmadd231ps ymm", loop_avx2;
#endif
    if (kind == RM_PEAK_FP32) return *level = RM_ISA_GENERIC, *what = "portable 4-lane mul + add", loop_generic;
    return *level = RM_ISA_GENERIC, *what = "none", NULL;
}

rm_peak rm_cpu_peak(rm_peak_kind kind, int n_threads, double seconds, int repeats) {
    rm_peak r = {0, 0, RM_ISA_GENERIC, "none"};
    loop_fn loop = pick(kind, rm_cpu_isa(), &r.isa, &r.what);
    if (!loop) return r;
    if (n_threads < 1) n_threads = 1;
    /* Size the loop from a short single-thread run. */
    uint64_t iters = 1000;
    for (;;) {
        double t = now(), flops = loop(iters);
        t = now() - t;
        (void)flops;
        if (t > 0.02 || iters > (1ull << 40)) {
            iters = (uint64_t)((double)iters * seconds / (t > 0 ? t : 1e-9)) + 1;
            break;
        }
        iters *= 4;
    }
    for (int rep = 0; rep < repeats; rep++) {
        double worst = 0, flops = 0, cpu = 0;
#pragma omp parallel num_threads(n_threads) reduction(max : worst) reduction(+ : flops, cpu)
        {
#pragma omp barrier
            double t = now(), c = clock_s(CLOCK_THREAD_CPUTIME_ID);
            flops += loop(iters);
            worst = now() - t;
            cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c;
        }
        double g = flops / (worst > 0 ? worst : 1e-9) / 1e9, gc = flops / (cpu > 0 ? cpu : 1e-9) / 1e9;
        if (g > r.gflops) r.gflops = g;
        if (gc > r.core_gflops) r.core_gflops = gc;
    }
    return r;
}
