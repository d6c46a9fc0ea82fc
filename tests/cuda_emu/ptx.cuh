/*
 * ptx.cuh (CPU emulator) - stands in for kernels/ptx.cuh (this directory
 * comes first on the include path): the same wrappers, implemented in
 * emu.cpp with the PTX ISA's semantics for cp.async groups, ldmatrix
 * fragments and mma.m16n8k16.
 */
#ifndef RM_KERNELS_PTX_CUH
#define RM_KERNELS_PTX_CUH
#include <stdint.h>
#include "cuda_runtime.h"

void emu_cp_async16(void *dst, const void *src);
void emu_cp_async_commit();
void emu_cp_async_wait(int n);
void emu_ldmatrix_x4(uint32_t r[4], const void *p, bool trans);
void emu_mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1);

static inline void cp_async16(void *dst, const void *src) { emu_cp_async16(dst, src); }
static inline void cp_async_commit() { emu_cp_async_commit(); }
template <int N> static inline void cp_async_wait() { emu_cp_async_wait(N); }
static inline void ldmatrix_x4(uint32_t r[4], const void *p) { emu_ldmatrix_x4(r, p, false); }
static inline void ldmatrix_x4_trans(uint32_t r[4], const void *p) { emu_ldmatrix_x4(r, p, true); }
static inline void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) { emu_mma_bf16(d, a, b0, b1); }
#endif
