#!/usr/bin/env bash
# Re-takes the CPU numbers of docs/performance.md in one go (about 12 minutes
# on a quiet 2-core machine; the 8B-shaped memory check needs ~16 GB free):
#   1. the Llama-3.2-1B shape in fp32 (weights in place, resident copy, per
#      pass) and bf16 at 512 and 2048 tokens: load time, peak memory, rates;
#   2. the RLHF batch, 64 sequences x (128 shared prompt + 256 response
#      tokens), in fp32 and bf16;
#   3. an 8B-shaped random model (hidden 4096, 32 layers, 32/8 heads, FFN
#      14336) in bf16 at 512 tokens: peak resident memory (goal: <= 17 GB).
# Run it with nothing else busy: the tool warns when the load average says
# otherwise. THREADS=N (default: every online core) and OUT=file (default
# build/bench-cpu.log) are the knobs; `make bench-cpu` runs it after `make`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
OUT=${OUT:-$BUILD/bench-cpu.log}
BENCH=$BUILD/bin/nimreward-bench
[ -x "$BENCH" ] || { echo "error: $BENCH is missing: run make first" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
{
    echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) cores"
    echo "== 1. Llama-3.2-1B shape, 512 and 2048 tokens, every weights mode"
    "$BENCH" --device cpu --threads "$THREADS" --dtype both --weights all --tokens 512,2048 --batch none
    echo "== 2. the RLHF batch: 64 x (128 shared + 256) tokens"
    "$BENCH" --device cpu --threads "$THREADS" --dtype both --weights inplace --tokens none --batch 64x128+256
    avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
    if [ "$avail_kb" -gt 17000000 ]; then
        echo "== 3. 8B shape in bf16, 512 tokens: peak resident memory"
        "$BENCH" --device cpu --threads "$THREADS" --dtype bf16 --hidden 4096 --layers 32 --heads 32 --kv-heads 8 \
            --ffn 14336 --tokens 512 --batch none
    else
        echo "== 3. skipped: the 8B shape needs ~16 GB and only $((avail_kb / 1024)) MB are available"
    fi
} 2>&1 | tee "$OUT"
echo "written to $OUT" >&2
