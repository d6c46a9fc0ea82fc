/* cuda_bf16.h (CPU emulator) - the bf16 conversions the kernels use:
 * round to nearest even, NaN to the canonical 0x7fff (cvt.rn.bf16.f32). */
#ifndef EMU_CUDA_BF16_H
#define EMU_CUDA_BF16_H
#include <stdint.h>
#include <string.h>
struct __nv_bfloat16 {
    uint16_t x;
};
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        b.x = 0x7fff;
        return b;
    }
    u += 0x7fffu + ((u >> 16) & 1);
    b.x = (uint16_t)(u >> 16);
    return b;
}
static inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
#endif
