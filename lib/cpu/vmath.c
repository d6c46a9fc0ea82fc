/*
 * vmath.c - rm_cpu_expf_inplace over glibc's libmvec (vmath.h).
 *
 * _ZGVdN8v_expf is libmvec's AVX2 expf under the x86-64 vector ABI
 * (glibc 2.22 and later, in every glibc system's libmvec.so.1): it takes
 * and returns eight floats in a ymm register.
 */
#include "cpu/vmath.h"

#include <math.h>
#include <string.h>

#include "cpu/cpuid.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256 x);

__attribute__((target("avx2,fma"))) static void expf_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _ZGVdN8v_expf(_mm256_loadu_ps(x + i)));
    if (i < n) {   /* the tail through the same lanes */
        float lanes[8] = {0};
        memcpy(lanes, x + i, (n - i) * sizeof *x);
        _mm256_storeu_ps(lanes, _ZGVdN8v_expf(_mm256_loadu_ps(lanes)));
        memcpy(x + i, lanes, (n - i) * sizeof *x);
    }
}
#endif

void rm_cpu_expf_inplace(float *x, size_t n) {
#if defined(__x86_64__)
    if (rm_cpu_isa() >= RM_ISA_AVX2) {
        expf_avx2(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = expf(x[i]);
}
