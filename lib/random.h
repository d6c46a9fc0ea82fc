/*
 * random.h - the counter-based generator behind random models: value i of
 * tensor t under seed s is a pure function of (s, t, i), so the CPU, the GPU
 * (kernels/random.cu) and any thread order build the same weights without a
 * file. Header-only; compiles as C and as CUDA (host and device).
 */
#ifndef RM_RANDOM_H
#define RM_RANDOM_H

#include <stdint.h>

#ifdef __CUDACC__
#define RM_HD __host__ __device__ __forceinline__
#else
#define RM_HD static inline
#endif

/* splitmix64's finaliser: a bijection that mixes every input bit. */
RM_HD uint64_t rm_random_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1): 24 random bits, exact in fp32. */
RM_HD float rm_random_value(uint64_t seed, uint64_t tensor, uint64_t i) {
    uint64_t h = rm_random_mix(rm_random_mix(seed ^ 0x9e3779b97f4a7c15ULL) + tensor * 0xd1b54a32d192ed03ULL + i);
    return (float)(int32_t)((uint32_t)(h >> 40) - (1u << 23)) * (1.0f / 8388608.0f);
}

#endif
