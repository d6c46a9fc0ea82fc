/*
 * peak.h - the machine's arithmetic peak, measured: loops of independent
 * multiply-adds that never touch memory, at the widest vector ISA present,
 * on every thread of a team at once. The benchmark divides its GEMM and
 * whole-pass rates by these numbers, so they are the machine's own ceiling
 * in this run (turbo, the VM's share of the cores, another process's load
 * included), not the rate of some library.
 */
#ifndef RM_CPU_PEAK_H
#define RM_CPU_PEAK_H

#include "cpu/cpuid.h"

typedef enum rm_peak_kind {
    RM_PEAK_FP32 = 0,       /* fp32 FMA: AVX-512, else AVX2, else portable C (SSE2 mul + add) */
    RM_PEAK_BF16_DOT = 1,   /* VDPBF16PS (AVX512_BF16) */
    RM_PEAK_AMX_BF16 = 2,   /* TDPBF16PS (AMX) */
} rm_peak_kind;

typedef struct rm_peak {
    double gflops;          /* best of the repeats over wall time; 0 when the CPU lacks the instructions */
    double core_gflops;     /* per core while the loop ran: FLOPs / the threads' CPU seconds (best);
                               what a core gives when it is not shared, even on a busy machine */
    rm_isa isa;             /* the level the loop ran at */
    const char *what;       /* "avx2 vfmadd231ps ymm", ... */
} rm_peak;

/* Runs the loop of `kind` on n_threads threads at once for about `seconds`
 * each time, `repeats` times, and keeps the best. */
RM_INTERNAL rm_peak rm_cpu_peak(rm_peak_kind kind, int n_threads, double seconds, int repeats);

#endif
