/*
 * ptx.cuh - the few PTX instructions the attention fast path needs, each in
 * a named wrapper (sm_80 and later): cp.async (global -> shared copies that
 * complete in groups), ldmatrix (8x8 b16 tiles from shared memory into the
 * mma fragment layout) and mma.sync.m16n8k16 with bf16 inputs and fp32
 * accumulators. Kept apart so that the rest of the kernel is plain CUDA C++.
 */
#ifndef RM_KERNELS_PTX_CUH
#define RM_KERNELS_PTX_CUH

#include <stdint.h>

/* The "memory" clobbers keep the compiler from moving shared-memory accesses
 * across the copies and the waits. */
__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Four 8x8 b16 matrices; lane i gives the address of row i % 8 of matrix i / 8. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* d += A(16x16, row) * B(16x8, col), bf16 in, fp32 accumulate. Fragments:
 *   a[0]: (row g, k 2t..2t+1)  a[1]: (g+8, 2t)  a[2]: (g, 2t+8)  a[3]: (g+8, 2t+8)
 *   b0: (k 2t..2t+1, col g)    b1: (k 2t+8.., col g)
 *   d[0..1]: (row g, col 2t..2t+1)  d[2..3]: (row g+8, col 2t..2t+1)
 * with g = lane / 4, t = lane % 4. */
__device__ __forceinline__ void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#endif
