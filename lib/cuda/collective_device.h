/*
 * collective_device.h - the device operations the in-process collective
 * (lib/parallel/comm_threads.c) uses for ranks sharing one GPU: the sum of
 * kernels/reduce.cu, copies, waits and scratch (collective_device.c).
 * libnimreward reaches them through the module table (rm_cuda_module.comm_device).
 */
#ifndef RM_CUDA_COLLECTIVE_DEVICE_H
#define RM_CUDA_COLLECTIVE_DEVICE_H

#include "parallel/collective.h"

RM_INTERNAL extern const rm_comm_device rm_cu_comm_device;

#endif
