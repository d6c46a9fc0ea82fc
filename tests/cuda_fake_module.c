/*
 * cuda_fake_module.c - stand-ins for the CUDA module, built by
 * tests/test_cuda_module.sh, so the library's side of the module contract is
 * tested on any machine: a table with another interface version
 * (-DFAKE_ABI=n), another library version (-DFAKE_VERSION="x"), a module
 * whose probe finds no GPU (-DFAKE_PROBE_MSG="..."), and one without the
 * entry point (-DFAKE_NO_SYMBOL).
 */
#include <stdio.h>

#include "cuda_module.h"

#ifndef FAKE_ABI
#define FAKE_ABI RM_CUDA_MODULE_ABI
#endif
#ifndef FAKE_VERSION
#define FAKE_VERSION RM_VERSION_STRING
#endif
#ifndef FAKE_PROBE_MSG
#define FAKE_PROBE_MSG "no CUDA GPU (fake module)"
#endif

static rm_status probe(int gpu, rm_cuda_device_info *info, rm_err *err) {
    (void)info;
    if (err) {
        err->status = RM_ERR_DEVICE;
        snprintf(err->msg, sizeof err->msg, "%s, gpu %d", FAKE_PROBE_MSG, gpu);
    }
    return RM_ERR_DEVICE;
}

/* Never called: probe always fails. */
static const rm_engine_ops ops = {.name = "fake"};

static const rm_cuda_module table = {
    .abi = FAKE_ABI,
    .struct_size = sizeof(rm_cuda_module),
    .version = FAKE_VERSION,
    .arch = "none",
    .layout = RM_CUDA_LAYOUT_INIT,
    .ops = &ops,
    .probe = probe,
};

#ifndef FAKE_NO_SYMBOL
__attribute__((visibility("default"))) const rm_cuda_module *rm_cuda_module_v1(void) { return &table; }
#else
__attribute__((visibility("default"))) const rm_cuda_module *rm_cuda_module_v0(void) { return &table; }
#endif
