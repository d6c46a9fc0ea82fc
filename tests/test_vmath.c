/*
 * test_vmath.c - rm_cpu_expf_inplace (lib/cpu/vmath.c), the exp of the CPU
 * engine's softmax and SiLU: close to the exact exp over the whole float
 * range the engine meets, the IEEE special cases exact, and an element's
 * result the same wherever it sits in an array of any length (the tail goes
 * through the same lanes), which keeps a score independent of its batch.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cpu/cpuid.h"
#include "cpu/vmath.h"
#include "test.h"

/* glibc documents libmvec's float functions within 4 ulp. */
#define MAX_ULP 4.0

static double ulps(float got, double want) {
    float w = (float)want;
    if (w == 0 || isinf(w)) return got == w ? 0 : INFINITY;
    float next = nextafterf(fabsf(w), INFINITY);
    return fabs((double)got - want) / ((double)next - fabs((double)w));
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float uniform(float lo, float hi) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

int main(void) {
    fprintf(stderr, "ISA level %s: %s\n", rm_isa_name(rm_cpu_isa()),
            rm_cpu_isa() >= RM_ISA_AVX2 ? "libmvec's 8-lane expf" : "glibc's scalar expf");
    /* The range the engine meets: softmax inputs <= 0 (max subtracted),
     * SiLU's -x anywhere; results from denormal to near overflow. */
    enum { N = 1 << 20 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = i < N / 2 ? uniform(-104.0f, 0.0f) : uniform(-20.0f, 88.7f);
    memcpy(y, x, sizeof x);
    rm_cpu_expf_inplace(y, N);
    double worst = 0;
    int worst_i = 0;
    for (int i = 0; i < N; i++) {
        double u = ulps(y[i], exp((double)x[i]));
        if (!(u <= worst)) worst = u, worst_i = i;
    }
    fprintf(stderr, "%d values in [-104, 88.7]: largest error %.2f ulp (exp(%.9g) = %.9g, exactly %.9g)\n", N, worst,
            x[worst_i], y[worst_i], exp((double)x[worst_i]));
    CHECK(worst <= MAX_ULP, "expf off by %.2f ulp at %.9g", worst, x[worst_i]);

    /* The special cases. */
    float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 89.0f, -200.0f, 1.0f};
    float sy[8];
    memcpy(sy, sp, sizeof sp);
    rm_cpu_expf_inplace(sy, 8);
    CHECK(sy[0] == 1 && sy[1] == 1, "exp(+-0) = 1: %g %g", sy[0], sy[1]);
    CHECK(isinf(sy[2]) && sy[2] > 0 && sy[3] == 0, "exp(+inf) = inf, exp(-inf) = 0: %g %g", sy[2], sy[3]);
    CHECK(isnan(sy[4]), "exp(NaN) is NaN: %g", sy[4]);
    CHECK(isinf(sy[5]) && sy[6] == 0, "overflow to inf, underflow to 0: %g %g", sy[5], sy[6]);
    CHECK(ulps(sy[7], exp(1.0)) <= MAX_ULP, "exp(1) = %.9g", sy[7]);

    /* An element's bits do not depend on where it sits or on the length. */
    int moved = 0;
    for (size_t len = 1; len <= 19; len++)
        for (size_t at = 0; at < len; at++) {
            float a[19];
            for (size_t k = 0; k < len; k++) a[k] = uniform(-30.0f, 10.0f);
            float probe = x[(len * 31 + at) % N];
            a[at] = probe;
            rm_cpu_expf_inplace(a, len);
            float alone = probe;
            rm_cpu_expf_inplace(&alone, 1);
            moved += memcmp(&a[at], &alone, sizeof alone) != 0;
        }
    CHECK(moved == 0, "%d results changed with their place in the array", moved);
    float none = 5.0f;
    rm_cpu_expf_inplace(&none, 0);
    CHECK(none == 5.0f, "n = 0 writes nothing");
    return test_summary("test_vmath");
}
