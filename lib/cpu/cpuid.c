/*
 * cpuid.c - feature detection by cpuid leaves and XCR0 (Intel SDM vol. 2A,
 * CPUID; vol. 1, 13.3 "Enabling the XSAVE feature set"), and the AMX tile
 * permission (Linux Documentation/arch/x86/xstate.rst).
 */
#include "cpu/cpuid.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define RM_X86 1
#endif

static rm_cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

#ifdef RM_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Linux asks each process to request the 8 KB AMX tile state before using
 * it; without the permission the first tile instruction raises SIGILL. */
static int request_amx(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return 0;
    unsigned long bitmask = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &bitmask) != 0) return 0;
    return (bitmask >> XFEATURE_XTILEDATA) & 1;
#else
    return 0;
#endif
}

static void detect_x86(rm_cpu_features *f) {
    unsigned a, b, c, d, max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1;
    f->fma = (c >> 12) & 1;
    f->avx = (c >> 28) & 1;
    f->f16c = (c >> 29) & 1;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned max_sub = a;
        f->avx2 = (b >> 5) & 1;
        f->avx512f = (b >> 16) & 1;
        f->avx512dq = (b >> 17) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->amx_bf16 = (d >> 22) & 1;
        f->amx_tile = (d >> 24) & 1;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f->avx512_bf16 = (a >> 5) & 1;
        }
    }
    if (osxsave) {
        uint64_t xcr0 = xgetbv0();
        f->os_avx = (xcr0 & 0x6) == 0x6;                            /* SSE + AVX state */
        f->os_avx512 = f->os_avx && (xcr0 & 0xe0) == 0xe0;          /* opmask, ZMM_Hi256, Hi16_ZMM */
        f->os_amx = (xcr0 & 0x60000) == 0x60000;                    /* XTILECFG + XTILEDATA */
    }
    if (f->amx_tile && f->amx_bf16 && f->os_amx) f->amx_permitted = request_amx();
}
#endif

static void add_flag(rm_cpu_features *f, int on, const char *name) {
    if (!on) return;
    size_t len = strlen(f->flags);
    snprintf(f->flags + len, sizeof f->flags - len, "%s%s", len ? " " : "", name);
}

static void detect(void) {
    rm_cpu_features *f = &features;
    memset(f, 0, sizeof *f);
#ifdef RM_X86
    detect_x86(f);
#endif
    int avx = f->avx && f->os_avx;
    int avx2 = avx && f->avx2 && f->fma;
    int avx512 = avx2 && f->os_avx512 && f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl;
    int bf16 = avx512 && f->avx512_bf16;
    int amx = bf16 && f->amx_tile && f->amx_bf16 && f->os_amx && f->amx_permitted;
    f->isa = amx ? RM_ISA_AMX : bf16 ? RM_ISA_AVX512_BF16 : avx512 ? RM_ISA_AVX512 : avx2 ? RM_ISA_AVX2
                                                                                          : RM_ISA_GENERIC;
    add_flag(f, avx, "avx");
    add_flag(f, avx && f->avx2, "avx2");
    add_flag(f, avx && f->fma, "fma");
    add_flag(f, avx && f->f16c, "f16c");
    int os512 = avx && f->os_avx512;
    add_flag(f, os512 && f->avx512f, "avx512f");
    add_flag(f, os512 && f->avx512bw, "avx512bw");
    add_flag(f, os512 && f->avx512dq, "avx512dq");
    add_flag(f, os512 && f->avx512vl, "avx512vl");
    add_flag(f, os512 && f->avx512_bf16, "avx512_bf16");
    add_flag(f, f->os_amx && f->amx_tile, "amx_tile");
    add_flag(f, f->os_amx && f->amx_bf16, "amx_bf16");
    if (f->amx_tile && f->os_amx && !f->amx_permitted) add_flag(f, 1, "(amx not permitted)");
}

const rm_cpu_features *rm_cpu_features_get(void) {
    pthread_once(&features_once, detect);
    return &features;
}

rm_isa rm_cpu_isa(void) { return rm_cpu_features_get()->isa; }

const char *rm_isa_name(rm_isa isa) {
    static const char *names[RM_ISA_COUNT] = {"generic", "avx2", "avx512", "avx512_bf16", "amx"};
    return isa >= 0 && isa < RM_ISA_COUNT ? names[isa] : "?";
}
