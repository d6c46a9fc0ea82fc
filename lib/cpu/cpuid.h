/*
 * cpuid.h - what this CPU can run, read from cpuid and from the operating
 * system (XCR0 says which register states it saves; AMX tiles also need the
 * arch_prctl permission), never from model numbers or brand strings: a CPU
 * the code has never heard of gets the kernels its features allow.
 */
#ifndef RM_CPU_CPUID_H
#define RM_CPU_CPUID_H

#include "common.h"

/* Instruction-set levels, each including the ones before it. A level is
 * usable when the CPU reports every feature it needs and the OS saves the
 * registers (a VM may hide features; then the level is simply lower). */
typedef enum rm_isa {
    RM_ISA_GENERIC = 0,     /* portable C (any CPU) */
    RM_ISA_AVX2 = 1,        /* AVX2 + FMA, 8 fp32 lanes (Haswell, Zen 1-3) */
    RM_ISA_AVX512 = 2,      /* AVX-512 F/BW/DQ/VL, 16 fp32 lanes (Skylake-SP, Ice Lake, Zen 4) */
    RM_ISA_AVX512_BF16 = 3, /* + AVX512_BF16 dot products (Cooper Lake, Sapphire Rapids, Zen 4) */
    RM_ISA_AMX = 4,         /* + AMX tiles with bf16, permission granted (Sapphire Rapids and later) */
    RM_ISA_COUNT = 5
} rm_isa;

typedef struct rm_cpu_features {
    /* What cpuid reports. */
    int avx, avx2, fma, f16c, avx512f, avx512bw, avx512dq, avx512vl, avx512_bf16, amx_tile, amx_bf16;
    /* What the OS enables: XCR0 saves the AVX / AVX-512 / AMX state; AMX
     * also needs this process's arch_prctl(ARCH_REQ_XCOMP_PERM) to succeed. */
    int os_avx, os_avx512, os_amx, amx_permitted;
    rm_isa isa;             /* the highest usable level */
    char flags[160];        /* the features above that are usable, space-separated */
} rm_cpu_features;

/* Detected once per process (thread-safe); requests the AMX permission the
 * first time when the CPU and OS offer AMX. Never NULL. */
RM_INTERNAL const rm_cpu_features *rm_cpu_features_get(void);

/* The highest usable level (rm_cpu_features_get()->isa). */
RM_INTERNAL rm_isa rm_cpu_isa(void);

/* "generic", "avx2", "avx512", "avx512_bf16", "amx"; "?" out of range. */
RM_INTERNAL const char *rm_isa_name(rm_isa isa);

#endif
