/*
 * cuda_runtime.h (CPU emulator) - CUDA C++'s device side as kernels/ uses it,
 * for a C++ compiler: the qualifiers vanish (__shared__ becomes static, which
 * is per block since blocks run one at a time), the built-in indices are
 * globals the scheduler sets, the IEEE intrinsics are plain operators (no FMA
 * contraction on x86-64 without -march), shuffles exchange through emu.cpp,
 * and a launch becomes emu_launch (tests/cuda_emu/translate.py rewrites the
 * <<<>>> syntax).
 */
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <math.h>
#include <tuple>
#include "cuda_runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint4 {
    unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

using std::isfinite;
using std::isnan;
using std::max;
using std::min;
using std::signbit;

static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }

void __syncthreads();
void emu_warp_barrier();
uint64_t *emu_warp_slots(int words); /* this warp's exchange area: 32 lanes x words */
void *emu_dynamic_smem();
void emu_fail(const char *fmt, ...);

template <class T> static T emu_shfl_from(T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of a scalar");
    uint64_t *slots = emu_warp_slots(1);
    int lane = threadIdx.x & 31;
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    slots[lane] = b;
    emu_warp_barrier();
    T r;
    b = slots[src & 31];
    memcpy(&r, &b, sizeof r);
    emu_warp_barrier();
    return r;
}
template <class T> static T __shfl_xor_sync(unsigned mask, T v, int o) {
    if (mask != 0xffffffffu) emu_fail("shuffle with a partial mask");
    return emu_shfl_from(v, (int)(threadIdx.x & 31) ^ o);
}
template <class T> static T __shfl_sync(unsigned mask, T v, int src) {
    if (mask != 0xffffffffu) emu_fail("shuffle with a partial mask");
    return emu_shfl_from(v, src);
}

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
cudaError_t emu_set_smem_limit(const void *k, int bytes);
template <class T> cudaError_t cudaFuncSetAttribute(T *k, cudaFuncAttribute a, int v) {
    return emu_set_smem_limit((const void *)k, v);
}

void emu_run(const void *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
template <class... P, class... A>
void emu_launch(void (*k)(P...), dim3 g, dim3 b, size_t smem, cudaStream_t, A &&...args) {
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    emu_run((const void *)k, g, b, smem, [&] { std::apply(k, params); });
}
#endif
