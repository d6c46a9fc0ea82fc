#!/usr/bin/env bash
# The tensor-parallel and pack checks that need a GPU, called by
# scripts/gpu-check.sh after it has built with GPU=1 (or run alone:
# BUILD=build scripts/gpu-check-tp.sh). One GPU is enough: several ranks
# share it. Prints "gpu-check-tp: N passed, N failed" last; exit 1 if any failed.
#   1. TP=1 through a one-rank NCCL communicator: bitwise the plain engine
#   2. TP=2 as two ranks on GPU 0 through the in-process collective: within
#      3e-2 of the fp32 references and 1e-2 of TP=1
#   3. WORLD_SIZE=1 through the environment: the scores of 1
#   4. two processes on GPU 0 as ranks 0 and 1 of 2: both report NCCL's
#      refusal as an error within the timeout, neither hangs
#   5. an FP8 pack: bitwise the checkpoint quantised on the GPU
#   + the same as 1 and a bf16 pack with nimreward-score, end to end
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
FIX=${RM_FIXTURES:-../shared/fixtures}
passed=0; failed=0
check() {   # check WHAT CMD...: one check, counted
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL gpu-check-tp: $what" >&2; fi
}

# 1-5 through the public API (tests/test_tp_gpu.c), a GPU required.
out=$(RM_REQUIRE_GPU=1 BUILD=$BUILD timeout 600 "$BUILD/tests/test_tp_gpu" 2> >(sed 's/^/  [test_tp_gpu] /' >&2))
echo "$out"
line=$(printf '%s\n' "$out" | grep -E '^test_tp_gpu: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
if [ -n "$line" ]; then
    passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
else
    failed=$((failed + 1)); echo "FAIL gpu-check-tp: test_tp_gpu ended without a summary line" >&2
fi

# The tools, end to end: --tp 1 (NCCL, one rank) against --tp 0, and a bf16 pack against its checkpoint.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$FIX/models/tiny-llama3-causal
conv=$FIX/reference/tiny-llama3-causal.reference.jsonl
score() { timeout 300 "$BUILD/bin/nimreward-score" --device cuda --now 2024-07-26T12:00:00 -i "$conv" "$@"; }
check "nimreward-score --tp 0" score --model "$model" --tp 0 -o "$tmp/tp0.jsonl"
check "nimreward-score --tp 1" score --model "$model" --tp 1 -o "$tmp/tp1.jsonl"
check "--tp 1 over NCCL = --tp 0, bitwise" cmp -s "$tmp/tp0.jsonl" "$tmp/tp1.jsonl"
check "nimreward-pack --tp 1" timeout 300 "$BUILD/bin/nimreward-pack" "$model" "$tmp/pack" --tp 1
check "score the bf16 pack" score --model "$tmp/pack" -o "$tmp/pack.jsonl"
check "bf16 pack = checkpoint, bitwise, on the GPU" cmp -s "$tmp/tp0.jsonl" "$tmp/pack.jsonl"

echo "gpu-check-tp: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
