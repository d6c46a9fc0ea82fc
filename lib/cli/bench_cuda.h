/*
 * bench_cuda.h - nimreward-bench --device cuda (bench_cuda.c), kept apart
 * from the CPU benchmark so each can change alone.
 */
#ifndef RM_BENCH_CUDA_H
#define RM_BENCH_CUDA_H

/* Runs the CUDA benchmark with the tool's arguments; returns the exit code. */
int bench_cuda_main(int argc, char **argv);

#endif
