#!/usr/bin/env bash
# tests/test_kernels_emu.sh - tests/test_kernels.c against the kernels of
# kernels/ run by a CPU emulator (tests/cuda_emu/), so that a machine with no
# GPU and no nvcc (CI) still checks their logic: index arithmetic, masking,
# bounds, barriers (a divergent __syncthreads or warp collective aborts;
# warps drift apart at random, so a missing barrier shows), cp.async groups
# (a copy's destination is garbage from the issue until the wait that retires
# it) and the mma / ldmatrix fragment layouts as the PTX ISA documents them.
# It cannot check what only the hardware decides: the instructions' real
# behaviour, timing, the device's math functions (CUDA's expf, sincos).
#
# Emulated: the files kernels/kernels.h names. The quick suite (RM_QUICK=1) runs every op but only three attention cases
# (the fast path, a generic head_dim, the forced generic path); the full
# suite runs all. Skipped under the sanitizers: the fibers switch stacks,
# which ASan does not follow.
set -u
cd "$(dirname "$0")/.."
NAME=test_kernels_emu
BUILD=${BUILD:-build}
OUT=$BUILD/emu
LIB=$BUILD/lib/libnimreward.a
CXX=${CXX:-c++}
CC=${CC:-cc}
fail() { echo "$NAME: $1" >&2; echo "$NAME: 0 passed, 1 failed"; exit 1; }

if [ "${RM_SANITIZED:-0}" = 1 ]; then
    echo "$NAME: 0 passed, 0 failed, 1 skipped (the emulator's fibers switch stacks, which ASan does not follow)"
    exit 0
fi
[ -f "$LIB" ] || fail "$LIB is missing (run make first)"
command -v "$CXX" >/dev/null || fail "no C++ compiler ($CXX)"
# The libraries the Makefile links (read from it, so a new dependency follows).
LIBS=$(printf '_rm_print_ldlibs:\n\t@echo $(LDLIBS)\n' |
       make -s --no-print-directory -f Makefile -f - _rm_print_ldlibs SANFLAGS= 2>/dev/null)
[ -n "$LIBS" ] || LIBS="-ljansson -lpcre2-8 -lutf8proc -lopenblas -lm -lpthread -fopenmp"

# Rebuild what is older than its sources or than anything shared.
mkdir -p "$OUT/src"
shared_newest=$(ls -t kernels/*.cuh kernels/*.h lib/random.h tests/cuda_emu/* "$0" | head -n 1)
stale() { [ ! -f "$1" ] || [ "$2" -nt "$1" ] || [ "$shared_newest" -nt "$1" ]; }
CXXFLAGS="-std=c++20 -O2 -g -fno-strict-aliasing -Wall -Wno-unused-function -Wno-unknown-pragmas -Itests/cuda_emu -Ikernels -Ilib"
objs=()
pids=()
# The files that implement kernels.h (its comments name them: "/* rope.cu: ..."),
# which is what test_kernels calls; other kernels/*.cu are not emulated.
kernel_files=$(sed -n 's|^/\* \([a-z0-9_]*\.cu\):.*|kernels/\1|p' kernels/kernels.h)
[ -n "$kernel_files" ] || fail "no kernel file named in kernels/kernels.h"
for cu in $kernel_files; do
    [ -f "$cu" ] || fail "$cu (named in kernels/kernels.h) is missing"
    b=$(basename "$cu" .cu)
    obj=$OUT/src/$b.o
    objs+=("$obj")
    if stale "$obj" "$cu"; then
        rm -f "$obj"
        python3 tests/cuda_emu/translate.py "$cu" "$OUT/src/$b.cpp" || fail "cannot translate $cu"
        $CXX $CXXFLAGS -c "$OUT/src/$b.cpp" -o "$obj" &
        pids+=($!)
        [ ${#pids[@]} -ge 2 ] && { wait "${pids[0]}"; pids=("${pids[@]:1}"); }
    fi
done
for p in "${pids[@]}"; do wait "$p"; done
for o in "${objs[@]}"; do [ -f "$o" ] || fail "a kernel did not compile for the emulator (see above)"; done
stale "$OUT/emu.o" tests/cuda_emu/emu.cpp && { $CXX $CXXFLAGS -c tests/cuda_emu/emu.cpp -o "$OUT/emu.o" || fail "emu.cpp"; }
if stale "$OUT/test_kernels.o" tests/test_kernels.c || [ tests/test.h -nt "$OUT/test_kernels.o" ] ||
   [ lib/cpu_ops.h -nt "$OUT/test_kernels.o" ]; then
    $CC -std=gnu11 -O1 -g -fopenmp -Itests/cuda_emu -Ikernels -Ilib -Iinclude -Itests \
        -c tests/test_kernels.c -o "$OUT/test_kernels.o" || fail "test_kernels.c"
fi
$CXX -o "$OUT/test_kernels" "$OUT/test_kernels.o" "${objs[@]}" "$OUT/emu.o" "$LIB" $LIBS || fail "link"

if [ "${RM_QUICK:-0}" = 1 ]; then
    export RM_KERNEL_OPS=${RM_KERNEL_OPS:-embedding,add_rmsnorm,head_rmsnorm,add_bias,rope,silu_mul,quantize_fp8_rows,gather_rows,random_bf16,contract,attention#0,attention#6,attention#10}
fi
"$OUT/test_kernels" | sed "s/^test_kernels:/$NAME:/"
exit "${PIPESTATUS[0]}"
