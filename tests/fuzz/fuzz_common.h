/*
 * fuzz_common.h - what every libFuzzer harness in tests/fuzz/ starts with:
 * the library's one-time set-up and invariant(). Header-only: each harness
 * is one translation unit (run.sh builds it alone; test_fuzz_regressions.sh
 * links it with replay_main.c), so the LLVMFuzzerInitialize defined here
 * exists once per binary. A harness with more to set up defines
 * FUZZ_OWN_INITIALIZE before including this and writes its own, which must
 * call rm_global_init() first.
 */
#ifndef RM_FUZZ_COMMON_H
#define RM_FUZZ_COMMON_H

#include "common.h"

#ifndef FUZZ_OWN_INITIALIZE
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    rm_global_init();   /* jansson's allocations go through rm_malloc from here on */
    return 0;
}
#endif

/* Stops the run in a way libFuzzer records as a crash, with the input saved. */
static inline void invariant(int ok) {
    if (!ok) __builtin_trap();
}

#endif
