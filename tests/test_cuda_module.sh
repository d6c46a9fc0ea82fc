#!/usr/bin/env bash
# The CUDA module seen from libnimreward, on any machine (CI has no GPU):
#  - libnimreward.so links no CUDA library;
#  - module absent: --device cuda fails naming where it looked, auto scores on the CPU;
#  - stand-in modules (tests/cuda_fake_module.c): another interface or library
#    version refused with a message, a missing library named with dlerror's
#    text, a module without the entry point refused, a probe that finds no GPU
#    (cuda fails with its words, auto falls back), the search order;
#  - the real module, when built, on a machine without a driver (CI's own
#    case): --device cuda names the missing driver, auto scores on the CPU.
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
pass=0; fail=0; skip=0; why=()
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$(realpath -m "${RM_FIXTURES:-../shared/fixtures}/models/tiny-llama3-seqcls")
score=$BUILD/bin/nimreward-score
echo '{"prompt": "What is 2+2?", "response": "4"}' > "$tmp/in.jsonl"

so=$(ls "$BUILD"/lib/libnimreward.so.*.*.* 2>/dev/null | head -n 1)
check "libnimreward.so built" '[ -n "$so" ]'
needed=$(readelf -d "$so" 2>/dev/null | grep NEEDED)
check "libnimreward.so needs no CUDA library ($(echo "$needed" | grep -Eio 'lib(cuda|cudart|cublas|nccl|cudnn|nvidia)[^]]*' | tr '\n' ' '))" \
    '! echo "$needed" | grep -Eiq "lib(cuda|cudart|cublas|nccl|cudnn|nvidia)"'
check "ldd libnimreward.so shows no CUDA library" '! ldd "$so" | grep -Eiq "lib(cuda|cudart|cublas|nccl|cudnn)"'

run_score() {   # run_score MODULE_DIR DEVICE [extra args]: sets rc, out, err
    local dir=$1 dev=$2; shift 2
    out=$(NIMREWARD_MODULE_DIR=$dir "$score" --model "$model" --device "$dev" "$@" -i "$tmp/in.jsonl" 2> "$tmp/err")
    rc=$?; err=$(cat "$tmp/err")
}

if [ ! -d "$model" ] || [ ! -x "$score" ]; then
    skip=$((skip + 12)); why+=("no fixture model or nimreward-score")
else
    # Module absent.
    mkdir -p "$tmp/empty"
    run_score "$tmp/empty" cuda
    check "module absent: --device cuda fails naming the module and where it looked ($err)" \
        '[ $rc -eq 1 ] && echo "$err" | grep -q "no CUDA module" && echo "$err" | grep -q "$tmp/empty"'
    run_score "$tmp/empty" auto
    check "module absent: --device auto scores on the CPU ($err)" \
        '[ $rc -eq 0 ] && echo "$out" | grep -q "\"scores\"" && echo "$err" | grep -q "device cpu, dtype fp32"'
    run_score "$tmp/empty" auto --dtype bf16
    check "module absent: --device auto --dtype bf16 scores in bf16 on the CPU ($err)" \
        '[ $rc -eq 0 ] && echo "$out" | grep -q "\"scores\"" && echo "$err" | grep -q "device cpu, dtype bf16"'
    run_score "$tmp/empty" auto --dtype fp8
    check "module absent: --device auto --dtype fp8 fails saying CUDA is missing ($err)" \
        '[ $rc -eq 1 ] && echo "$err" | grep -q "needs the CUDA engine" && echo "$err" | grep -q "no CUDA module"'

    # Stand-in modules.
    fake() {   # fake NAME CFLAGS...: builds $tmp/NAME/libnimreward-cuda.so
        local name=$1; shift
        mkdir -p "$tmp/$name"
        $CC -shared -fPIC -fvisibility=hidden -Iinclude -Ilib "$@" -o "$tmp/$name/libnimreward-cuda.so" \
            tests/cuda_fake_module.c 2> "$tmp/$name.log" || cat "$tmp/$name.log" >&2
    }
    fake abi -DFAKE_ABI=999
    run_score "$tmp/abi" cuda
    check "another interface version is refused ($err)" '[ $rc -eq 1 ] && echo "$err" | grep -q "interface version 999"'
    fake version -DFAKE_VERSION='"0.0.1"'
    run_score "$tmp/version" cuda
    check "another library version is refused ($err)" '[ $rc -eq 1 ] && echo "$err" | grep -q "built with libnimreward 0.0.1"'
    fake nosym -DFAKE_NO_SYMBOL
    run_score "$tmp/nosym" cuda
    check "a module without the entry point is refused ($err)" '[ $rc -eq 1 ] && echo "$err" | grep -q "does not export rm_cuda_module_v1"'
    mkdir -p "$tmp/deplib"
    echo 'int rm_fake_dep(void) { return 1; }' > "$tmp/dep.c"
    $CC -shared -fPIC -o "$tmp/deplib/libnimreward-fake-dep.so" "$tmp/dep.c"
    fake missing "-L$tmp/deplib" -Wl,--no-as-needed -lnimreward-fake-dep
    rm -f "$tmp/deplib/libnimreward-fake-dep.so"
    run_score "$tmp/missing" cuda
    check "a library of the module missing is named with dlerror's text ($err)" \
        '[ $rc -eq 1 ] && echo "$err" | grep -q "cannot be loaded" && echo "$err" | grep -q "libnimreward-fake-dep.so: cannot open shared object file"'
    run_score "$tmp/missing" auto
    check "a module that cannot load: auto scores on the CPU" '[ $rc -eq 0 ] && echo "$out" | grep -q "\"scores\""'
    fake nogpu -DFAKE_PROBE_MSG='"no CUDA GPU (fake module)"'
    run_score "$tmp/nogpu" cuda --gpu 3
    check "the probe's reason is the message of --device cuda ($err)" \
        '[ $rc -eq 1 ] && echo "$err" | grep -q "device cuda: no CUDA GPU (fake module), gpu 3"'
    run_score "$tmp/nogpu" auto
    check "a probe that finds no GPU: auto scores on the CPU" '[ $rc -eq 0 ] && echo "$err" | grep -q "device cpu"'

    # Search order without NIMREWARD_MODULE_DIR: the loaded libnimreward.so's
    # directory + nimreward/ comes before the executable's ../lib/nimreward/.
    mkdir -p "$tmp/order/a/nimreward" "$tmp/order/bin" "$tmp/order/lib/nimreward"
    cp -P "$BUILD"/lib/libnimreward.so* "$tmp/order/a/"
    fake order_a -DFAKE_PROBE_MSG='"FAKE-A"'; mv "$tmp/order_a/libnimreward-cuda.so" "$tmp/order/a/nimreward/"
    fake order_b -DFAKE_PROBE_MSG='"FAKE-B"'; mv "$tmp/order_b/libnimreward-cuda.so" "$tmp/order/lib/nimreward/"
    cat > "$tmp/load.c" <<'C'
#include <stdio.h>
#include "nimreward.h"
int main(int argc, char **argv) {
    rm_params p; rm_params_init(&p); p.device = RM_DEVICE_CUDA;
    rm_model *m; char err[1024];
    rm_status st = rm_load(argv[1], &p, &m, err, sizeof err);
    printf("%d %s\n", (int)st, st ? err : "loaded");
    if (!st) rm_free(m);
    return 0;
}
C
    # Under the sanitizers libnimreward.so needs their runtime first in the program.
    san=$([ "${RM_SANITIZED:-0}" = 1 ] && echo "-fsanitize=address,undefined")
    $CC $san -Iinclude -o "$tmp/order/bin/load" "$tmp/load.c" -L"$tmp/order/a" -lnimreward -Wl,-rpath,"$tmp/order/a" \
        2> "$tmp/load.log" || cat "$tmp/load.log" >&2
    o=$(env -u NIMREWARD_MODULE_DIR "$tmp/order/bin/load" "$model")
    check "search order: beside the loaded libnimreward.so first ($o)" 'echo "$o" | grep -q FAKE-A'
    rm -rf "$tmp/order/a/nimreward"
    o=$(env -u NIMREWARD_MODULE_DIR "$tmp/order/bin/load" "$model")
    check "search order: then the executable's ../lib/nimreward ($o)" 'echo "$o" | grep -q FAKE-B'
    rm -rf "$tmp/order/lib/nimreward"
    o=$(env -u NIMREWARD_MODULE_DIR "$tmp/order/bin/load" "$model")
    check "search order: all places named when none has it ($o)" \
        'echo "$o" | grep -q "order/a/nimreward (beside libnimreward.so), .*order/bin/../lib/nimreward (the executable.s ../lib/nimreward), .*/nimreward (the install LIBDIR)"'

    # The real module, on a machine without a driver.
    module=$BUILD/lib/nimreward/libnimreward-cuda.so
    if [ ! -f "$module" ]; then
        skip=$((skip + 3)); why+=("the CUDA module is not built (GPU=0, no nvcc, or kernels missing)")
    elif python3 -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' 2>/dev/null ||
         ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 '; then
        skip=$((skip + 3)); why+=("an NVIDIA driver is installed: the no-driver case is CI's")
    else
        check "the module exports one symbol" '[ "$(nm -D --defined-only "$module" | awk "{print \$3}")" = rm_cuda_module_v1 ]'
        run_score "$BUILD/lib/nimreward" cuda
        check "module present, no driver: --device cuda names the missing driver ($err)" \
            '[ $rc -eq 1 ] && echo "$err" | grep -q "no NVIDIA driver" && echo "$err" | grep -q "libcuda.so.1"'
        run_score "$BUILD/lib/nimreward" auto
        check "module present, no driver: --device auto scores on the CPU ($err)" \
            '[ $rc -eq 0 ] && echo "$out" | grep -q "\"scores\"" && echo "$err" | grep -q "device cpu"'
    fi
fi
if [ $skip -gt 0 ]; then
    echo "test_cuda_module: $pass passed, $fail failed, $skip skipped ($(IFS=';'; echo "${why[*]}"))"
else
    echo "test_cuda_module: $pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
