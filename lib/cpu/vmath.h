/*
 * vmath.h - elementwise math over arrays, vectorised by glibc's libmvec
 * where the CPU allows (vmath.c). The CPU engine's softmax and SiLU spend
 * most of their time in expf; glibc's vector expf takes 8 lanes at a time.
 */
#ifndef RM_CPU_VMATH_H
#define RM_CPU_VMATH_H

#include "common.h"

/* x[i] = expf(x[i]) for i < n. On an AVX2 CPU every element goes through
 * libmvec's 8-lane expf (the tail padded), so an element's result depends
 * only on its value, never on its place in the array or the array's length:
 * a score stays the same whatever the batch. Without AVX2, glibc's scalar
 * expf. libmvec's is within 4 ulp of the exact exp (glibc's documented
 * bound; 2.5 measured by tests/test_vmath.c), the scalar within 1: far below
 * what a softmax weight or a SiLU carries into a score. */
RM_INTERNAL void rm_cpu_expf_inplace(float *x, size_t n);

#endif
