#!/usr/bin/env bash
# The GEMM libraries side by side on the engine's shapes (scripts/gemm_candidates.c):
# our kernels, OpenBLAS (two ways), oneDNN (fp32 and bf16) and BLIS, each in
# its own binary (OpenBLAS and BLIS both define the BLAS symbols).
# Needs `make` first and, besides scripts/install-deps.sh's packages,
# libdnnl-dev and libblis-dev (apt-get install -y libdnnl-dev libblis-dev).
#   scripts/gemm-candidates.sh [--threads 2] [--repeat 3] [--rows 512,2048,64,1]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
out=$BUILD/bench
mkdir -p "$out"
flags=(-O2 -g -std=gnu11 -fopenmp -Iinclude -Ilib)
libs=(-ljansson -lpcre2-8 -lutf8proc -lmvec -lm -lpthread)
$CC "${flags[@]}" -DCAND_OPENBLAS -o "$out/gemm-openblas" scripts/gemm_candidates.c "$BUILD/lib/libnimreward.a" -lopenblas "${libs[@]}"
built=("$out/gemm-openblas")
if [ -e /usr/include/oneapi/dnnl/dnnl.h ]; then
    $CC "${flags[@]}" -DCAND_DNNL -o "$out/gemm-dnnl" scripts/gemm_candidates.c "$BUILD/lib/libnimreward.a" -ldnnl -lopenblas "${libs[@]}"
    built+=("$out/gemm-dnnl")
else
    echo "(no libdnnl-dev: oneDNN skipped)" >&2
fi
blis_inc=$(dirname "$(find /usr/include -name blis.h -path '*x86_64*' 2>/dev/null | head -n 1)" 2>/dev/null || true)
if [ -n "$blis_inc" ] && [ -e "$blis_inc/blis.h" ]; then
    $CC "${flags[@]}" -I"$blis_inc" -DCAND_BLIS -o "$out/gemm-blis" scripts/gemm_candidates.c "$BUILD/lib/libnimreward.a" -lblis -lopenblas "${libs[@]}"
    built+=("$out/gemm-blis")
else
    echo "(no libblis-dev: BLIS skipped)" >&2
fi
for b in "${built[@]}"; do
    echo "== $(basename "$b")"
    "$b" "$@"
done
