#!/usr/bin/env bash
# scripts/gpu-check.sh - everything the CUDA engine needs a GPU for, in one
# call on the GPU test machine (one H200, nvcc 13.0, driver 580, Python 3.12
# with torch and transformers; not Debian, nothing installable, no network).
# Prepare here first (scripts/gpu-prepare.sh fills gpu-deps/ and gpu-fixtures/),
# then, from the repository root there:
#     run(carry=["gpu-deps", "gpu-fixtures"], command="scripts/gpu-check.sh", timeout_s=600)
# Steps, each timed, each going on after another's failure:
#   1. versions and library paths: GPU, driver, nvcc, cuBLAS(Lt), cuDNN, NCCL, torch, transformers
#   2. build (GPU=1, CUDA_ARCH=sm_90a) against the Debian packages of gpu-deps/, unpacked with dpkg -x
#   3. test_kernels, test_cuda_plan, test_cuda_engine (fixtures, real shape), test_cuda_module
#   4. nimreward-bench --device cuda: bf16; FP8 within --max-device-gib 79 (fast accumulation off and on);
#      load throughput from a >= 10 GB file written here, cold page cache
#   5. scripts/bench-transformers.py at the same shapes
#   6. a short table last: tokens/s, the ratios the issue resolves on, pass/fail
# Logs and JSON go to $OUT (the device tool brings them back) or /tmp/gpu-check.
# Knobs: GPU_CHECK_QUICK=1 skips the real-shape test and the load benchmark;
# GPU_CHECK_REPEAT (default 2) timed passes per batch; CUDA_ARCH.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
OUTDIR=${OUT:-/tmp/gpu-check}
mkdir -p "$OUTDIR"
: > "$OUTDIR/bench.jsonl"
REPEAT=${GPU_CHECK_REPEAT:-2}
QUICK=${GPU_CHECK_QUICK:-0}
CUDA_ARCH=${CUDA_ARCH:-sm_90a}
JOBS=$(nproc 2>/dev/null || echo 8)
declare -A RESULT
step() { echo; echo "== $* [$(($(date +%s) - T0)) s]"; }
# The whole run stays inside DEADLINE seconds (the device tool's limit is 600),
# so the table is always printed: a step gets what is left, less a reserve.
DEADLINE=${GPU_CHECK_DEADLINE:-550}
# run_step NAME TIMEOUT CMD...: the step's output to the log and the screen's tail, its status remembered
run_step() {
    local name=$1 limit=$2; shift 2
    local left=$((DEADLINE - ($(date +%s) - T0) - 15))
    if [ "$left" -lt 20 ]; then
        echo "$name: skipped, the run's deadline is near"
        RESULT[$name]=skipped
        return 1
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    timeout "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUTDIR/$name.log"
    RESULT[$name]=$rc
    [ "$rc" -eq 124 ] && echo "$name: timed out after $limit s"
    return $rc
}

# ---------------------------------------------------------------- 1. versions
step "versions and libraries"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -n 2
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$NVCC" ] && "$NVCC" --version | tail -n 2
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "${NVCC:-/usr/local/cuda/bin/nvcc}")")}
PY=$(command -v python3)
command -v cc >/dev/null || export CC=gcc
SITE=$($PY -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
find_lib() {   # find_lib PATTERN: the first match in the toolkit, the system, then Python wheels
    for d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" /usr/lib/x86_64-linux-gnu /usr/local/lib $SITE; do
        f=$(find "$d" -maxdepth 4 -name "$1" 2>/dev/null | sort | head -n 1)
        [ -n "$f" ] && { echo "$f"; return; }
    done
}
CUBLASLT=$(find_lib 'libcublasLt.so.13*')
CUDART_STATIC=$(find_lib 'libcudart_static.a')
CUDNN=$(find_lib 'libcudnn.so.9*')
NCCL=$(find_lib 'libnccl.so.2*')
CUBLASLT_H=$(find "$CUDA_HOME/include" $SITE -maxdepth 5 -name cublasLt.h 2>/dev/null | head -n 1)
echo "CUDA_HOME $CUDA_HOME"
echo "cuBLASLt  $CUBLASLT (header $CUBLASLT_H)"
echo "cudart    $CUDART_STATIC"
echo "cuDNN     ${CUDNN:-not found}"
echo "NCCL      ${NCCL:-not found}"
$PY - <<'PY' 2>&1
import torch, transformers
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}")
print(f"torch's cuDNN {torch.backends.cudnn.version()}, NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}")
print(f"GPU {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).multi_processor_count} SMs")
PY

# ---------------------------------------------------------------- 2. build
step "build: GPU=1 CUDA_ARCH=$CUDA_ARCH against gpu-deps/"
DEPS=/tmp/gpu-deps-root
rm -rf "$DEPS" && mkdir -p "$DEPS"
for deb in gpu-deps/*.deb; do
    if command -v dpkg-deb >/dev/null; then
        dpkg-deb -x "$deb" "$DEPS"
    else   # a .deb is an ar archive holding data.tar.xz (or .zst)
        member=$(ar t "$deb" | grep '^data.tar')
        ar p "$deb" "$member" | tar -C "$DEPS" -x -f - $([ "${member##*.}" = zst ] && echo --zstd || echo -J)
    fi
done
ML=$DEPS/usr/lib/x86_64-linux-gnu
BLAS_INC=$(dirname "$(find "$DEPS/usr/include" -name cblas.h | head -n 1)")
BLAS_LIB=$(dirname "$(find "$ML" -name 'libopenblas.so' | head -n 1)")
export CFLAGS="-O2 -g -I$DEPS/usr/include -I$DEPS/usr/include/x86_64-linux-gnu -I$BLAS_INC ${CUBLASLT_H:+-I$(dirname "$CUBLASLT_H")}"
export LDLIBS="-L$ML -L$BLAS_LIB"
export LDFLAGS="-L$ML -L$BLAS_LIB"
export LD_LIBRARY_PATH="$ML:$BLAS_LIB:$(dirname "${CUBLASLT:-/x/x}"):${LD_LIBRARY_PATH:-}"
MAKEVARS=(GPU=1 BUILD=build-gpu CUDA_HOME="$CUDA_HOME" CUDA_ARCH="$CUDA_ARCH" CUDA_LIBDIR="$(dirname "${CUDART_STATIC:-$CUDA_HOME/lib64/x}")")
[ -n "$CUBLASLT" ] && MAKEVARS+=(CUBLASLT_LIB="-L$(dirname "$CUBLASLT") -l:$(basename "$CUBLASLT")")
tb=$(date +%s)
run_step build 300 make -j"$JOBS" "${MAKEVARS[@]}" all tests
echo "build: $(($(date +%s) - tb)) s on $JOBS cores"
ldd build-gpu/lib/nimreward/libnimreward-cuda.so 2>&1 | grep -E 'cublas|not found' | sed 's/^/module needs: /'

# ---------------------------------------------------------------- 3. tests
step "fixtures"
FX=/tmp/gpu-fixtures
rm -rf "$FX" && mkdir -p "$FX"
if tar -C "$FX" -xJf gpu-fixtures/fixtures.tar.xz 2>/dev/null ||
   $PY -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' gpu-fixtures/fixtures.tar.xz "$FX"; then
    for m in "$FX"/models/*/; do cp "$FX/tokenizer/llama3/tokenizer.json" "$m"; done
    echo "fixtures in $FX: $(ls "$FX/models" | tr '\n' ' ')"
fi
export RM_FIXTURES=$FX
step "tests"
[ -x build-gpu/tests/test_kernels ] && run_step test_kernels 120 build-gpu/tests/test_kernels
run_step test_cuda_plan 30 build-gpu/tests/test_cuda_plan
run_step test_cuda_engine 240 env RM_CUDA_REAL_SHAPE="$([ "$QUICK" = 1 ] && echo 0 || echo 1)" build-gpu/tests/test_cuda_engine
run_step test_cuda_module 60 env BUILD=build-gpu bash tests/test_cuda_module.sh
grep -h -E '^(real shape|bf16|fp8|memory of)' "$OUTDIR/test_cuda_engine.log" | head -n 40

# ---------------------------------------------------------------- 4-5. benchmarks
step "nimreward-bench --device cuda --dtype bf16"
LOADARGS=()
[ "$QUICK" = 1 ] || LOADARGS=(--load-gb 10.5 --load-dir "$PWD")
run_step bench_bf16 240 build-gpu/bin/nimreward-bench --device cuda --dtype bf16 --repeat "$REPEAT" \
    --json "$OUTDIR/bench.jsonl" "${LOADARGS[@]}"
step "nimreward-bench --device cuda --dtype fp8 --max-device-gib 79"
run_step bench_fp8 240 build-gpu/bin/nimreward-bench --device cuda --dtype fp8 --max-device-gib 79 --repeat "$REPEAT" \
    --fast-accum both --json "$OUTDIR/bench.jsonl"
step "transformers (bf16, sdpa, no compile), a few layers scaled to 80"
run_step bench_transformers 180 env PYTHONUNBUFFERED=1 $PY scripts/bench-transformers.py --layers 2 --repeat "$REPEAT" \
    --json "$OUTDIR/bench.jsonl"

# ---------------------------------------------------------------- 6. the table
step "summary"
for k in build test_kernels test_cuda_plan test_cuda_engine test_cuda_module bench_bf16 bench_fp8 bench_transformers; do
    [ -n "${RESULT[$k]+x}" ] && printf '%-20s %s\n' "$k" "$(case "${RESULT[$k]}" in 0) echo ok ;; skipped) echo skipped ;;
                                                          *) echo "FAILED (exit ${RESULT[$k]})" ;; esac)"
done
grep -h -E '^test_[a-z_]+: [0-9]+ passed' "$OUTDIR"/test_*.log
$PY - "$OUTDIR/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tf = {r["batch"]: r for r in rows if r.get("engine") == "transformers" and "batch" in r}
ours = [r for r in rows if r.get("engine") == "nimreward" and "batch" in r]
def pick(dtype, fast, batch):
    for r in ours:
        if r["dtype"] == dtype and r["batch"] == batch and (dtype == "bf16" or r["fast_accum"] == fast):
            return r
for r in rows:
    if "memory" in r:
        print(f"memory {r['memory']}: weights {r['weights']/2**30:.1f} GiB, activations {r['activations']/2**30:.1f} GiB "
              f"({r['tokens_per_pass']} tokens/pass), peak {r['peak']/2**30:.1f} GiB of budget {r['budget']/2**30:.1f} GiB")
    if "load" in r:
        cache = "tmpfs" if r["tmpfs"] else "%.0f%% of the file cached before" % (100 * r["resident_before"])
        print(f"load {r['load']}: {r['gb']:.1f} GB at {r['gb_per_s']:.2f} GB/s ({cache})")
print()
print(f"{'batch':<18}{'hf tok/s':>10}{'bf16 tok/s':>11}{'x hf':>6}{'fp8 tok/s':>11}{'x hf':>6}{'fp8 fast':>11}{'x hf':>6}"
      f"{'bf16/ceil':>10}{'attn TF':>9}{'sdpa TF':>9}{'ratio':>7}  verdict (1.0x, 1.5x, 60%)")
for b in [r["batch"] for r in ours if r["dtype"] == "bf16"] or [r["batch"] for r in ours]:
    t, bf, f8, f8f = tf.get(b), pick("bf16", 0, b), pick("fp8", 0, b), pick("fp8", 1, b)
    hf = t["tokens_per_s"] if t else float("nan")
    x = lambda r: r["tokens_per_s"] / hf if r and t else float("nan")
    v = lambda r: f"{r['tokens_per_s']:>11.0f}{x(r):>6.2f}" if r else f"{'-':>11}{'-':>6}"
    ceil = bf["gemm_tflops"] / bf["gemm_ceiling_tflops"] if bf and bf["gemm_ceiling_tflops"] else float("nan")
    attn = bf["attention_tflops"] if bf else float("nan")
    sdpa = t["sdpa_tflops"] if t else float("nan")
    best8 = max([x(r) for r in (f8, f8f) if r] or [float("nan")])
    ok = [x(bf) >= 1.0, best8 >= 1.5, attn / sdpa >= 0.6]
    print(f"{b:<18}{hf:>10.0f}{v(bf)}{v(f8)}{v(f8f)}{ceil:>10.2f}{attn:>9.0f}{sdpa:>9.0f}{attn / sdpa:>7.2f}  "
          + " ".join("pass" if k else "FAIL" for k in ok))
if tf:
    print(f"SDPA backend: {next(iter(tf.values())).get('sdpa_backend', '?')}")
PY
echo "gpu-check: $(($(date +%s) - T0)) s; logs in $OUTDIR"
