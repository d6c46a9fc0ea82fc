/*
 * test_fp8.c - the FP8 e4m3 conversion and row quantiser (lib/cpu_ops.c)
 * against an independent reference: the nearest of the 253 finite e4m3
 * values by search, ties to the even code, saturating at 448. The CUDA
 * quantiser is held to the same bytes in tests/test_kernels.
 */
#include <math.h>
#include <stdint.h>

#include "cpu_ops.h"
#include "test.h"

/* Reference: search all codes of the sign of x for the nearest value. */
static uint8_t reference(float x) {
    if (isnan(x)) return 0x7f | (signbit(x) ? 0x80 : 0);
    uint8_t sign = signbit(x) ? 0x80 : 0;
    double a = fabs((double)x);
    if (a >= 448) return sign | 0x7e;
    int best = 0;
    double best_d = INFINITY;
    for (int c = 0; c <= 0x7e; c++) {
        double v = (double)rm_fp8_e4m3_to_f32((uint8_t)c), d = fabs(v - a);
        if (d < best_d || (d == best_d && (c & 1) == 0)) best = c, best_d = d;
    }
    return sign | (uint8_t)best;
}

static uint64_t rng_state;
static uint32_t rng(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 32);
}

int main(void) {
    rng_state = test_seed();
    /* Decoding: known codes. */
    CHECK(rm_fp8_e4m3_to_f32(0x38) == 1.0f, "0x38 is 1");
    CHECK(rm_fp8_e4m3_to_f32(0x7e) == 448.0f, "0x7e is 448");
    CHECK(rm_fp8_e4m3_to_f32(0x01) == ldexpf(1, -9), "0x01 is 2^-9");
    CHECK(rm_fp8_e4m3_to_f32(0x08) == ldexpf(1, -6), "0x08 is 2^-6");
    CHECK(isnan(rm_fp8_e4m3_to_f32(0x7f)) && isnan(rm_fp8_e4m3_to_f32(0xff)), "0x7f/0xff are NaN");
    /* Every finite code round-trips. */
    int trips = 1;
    for (int c = 0; c < 256; c++)
        if ((c & 0x7f) != 0x7f && rm_fp8_e4m3_from_f32(rm_fp8_e4m3_to_f32((uint8_t)c)) != c &&
            !(c == 0x80)) trips = 0;
    CHECK(trips, "a finite code does not round-trip");
    /* Midpoints between neighbours, and points just beside them. */
    int mids = 1;
    for (int c = 0; c < 0x7e; c++) {
        float lo = rm_fp8_e4m3_to_f32((uint8_t)c), hi = rm_fp8_e4m3_to_f32((uint8_t)(c + 1));
        float mid = (lo + hi) / 2;   /* exact in fp32 */
        float probes[] = {mid, nextafterf(mid, 0), nextafterf(mid, 1000), -mid};
        for (int k = 0; k < 4; k++)
            if (rm_fp8_e4m3_from_f32(probes[k]) != reference(probes[k])) {
                mids = 0;
                fprintf(stderr, "code %d probe %.9g: %02x vs %02x\n", c, probes[k],
                        rm_fp8_e4m3_from_f32(probes[k]), reference(probes[k]));
            }
    }
    CHECK(mids, "midpoints round to the nearest even code");
    /* Saturation and specials. */
    CHECK(rm_fp8_e4m3_from_f32(448.0f) == 0x7e && rm_fp8_e4m3_from_f32(464.0f) == 0x7e &&
          rm_fp8_e4m3_from_f32(1e30f) == 0x7e && rm_fp8_e4m3_from_f32(-INFINITY) == 0xfe, "saturation");
    CHECK(rm_fp8_e4m3_from_f32(NAN) == 0x7f, "NaN");
    CHECK(rm_fp8_e4m3_from_f32(ldexpf(1, -10)) == 0 && rm_fp8_e4m3_from_f32(ldexpf(5, -12)) == 1 &&
          rm_fp8_e4m3_from_f32(ldexpf(3, -10)) == 2,
          "subnormals: half of 2^-9 ties to 0, 0.625 of it rounds to 1, 1.5 to 2 (even)");
    /* Random floats over the whole range against the reference. */
    int agree = 1;
    for (int i = 0; i < 200000 && agree; i++) {
        uint32_t bits = rng();
        float x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x) || fabsf(x) > 1e4f) x = ldexpf((float)(int32_t)rng() / 2147483648.0f, (int)(rng() % 24) - 14);
        if (rm_fp8_e4m3_from_f32(x) != reference(x)) {
            agree = 0;
            fprintf(stderr, "x = %.9g: %02x vs %02x\n", x, rm_fp8_e4m3_from_f32(x), reference(x));
        }
    }
    CHECK(agree, "random floats agree with the reference");
    /* The row quantiser: scale = amax / 448, the max element maps to 448. */
    enum { R = 7, C = 33 };
    float x[R * C], scales[R];
    uint8_t q[R * C];
    for (int i = 0; i < R * C; i++) x[i] = ((float)(int32_t)rng() / 2147483648.0f) * (float)(1 + i % 5);
    for (int j = 0; j < C; j++) x[3 * C + j] = 0;   /* an all-zero row */
    rm_cpu_quantize_fp8_rows(x, R, C, q, scales, 2);
    int rows_ok = 1;
    for (int r = 0; r < R; r++) {
        float amax = 0;
        for (int j = 0; j < C; j++) amax = fmaxf(amax, fabsf(x[r * C + j]));
        float scale = amax > 0 ? amax / 448.0f : 1.0f;
        if (scales[r] != scale) rows_ok = 0;
        for (int j = 0; j < C; j++) {
            if (q[r * C + j] != reference(x[r * C + j] / scale)) rows_ok = 0;
            float back = rm_fp8_e4m3_to_f32(q[r * C + j]) * scale;
            if (fabsf(back - x[r * C + j]) > amax / 16 + 1e-30f) rows_ok = 0;   /* 3 mantissa bits */
        }
    }
    CHECK(rows_ok, "row quantiser: scales, codes and reconstruction");
    return test_summary("test_fp8");
}
