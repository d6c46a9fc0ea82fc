#!/usr/bin/env bash
# scripts/gpu-prepare.sh - fills the git-ignored gpu-deps/ and gpu-fixtures/
# that scripts/gpu-check.sh needs on the GPU test machine, where nothing can be
# installed or downloaded and only the repository travels (64 MiB at most):
#   gpu-deps/      the Debian packages libnimreward builds and runs against
#                  (runtime and -dev), fetched with `apt-get download`, to be
#                  unpacked there with dpkg -x;
#   gpu-fixtures/  fixtures.tar.xz: ../shared/fixtures' models and reference
#                  files, one tokenizer.json for every model (they are the same).
# Run it here (Debian 12, apt), then on the device machine:
#   run(carry=["gpu-deps", "gpu-fixtures"], command="scripts/gpu-check.sh", timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(libjansson4 libjansson-dev libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev
      libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0
      libzstd1 libzstd-dev libxxhash0 libxxhash-dev libmicrohttpd12 libmicrohttpd-dev)
FIXTURES=${RM_FIXTURES:-../shared/fixtures}

rm -rf gpu-deps
mkdir -p gpu-deps gpu-fixtures
(cd gpu-deps && { apt-get download "${PKGS[@]}" 2>/dev/null || { apt-get update -qq && apt-get download "${PKGS[@]}"; }; })

archive=gpu-fixtures/fixtures.tar.xz
newest=$(find "$FIXTURES/models" "$FIXTURES/reference" -type f -newer "$archive" 2>/dev/null | head -n 1 || true)
if [ ! -s "$archive" ] || [ -n "$newest" ]; then
    echo "gpu-prepare: compressing the fixtures (a few minutes on 2 cores)" >&2
    tar -C "$FIXTURES" --exclude='models/*/tokenizer.json' -cf - models reference tokenizer/llama3/tokenizer.json |
        xz -6 -T2 > "$archive.tmp"
    mv "$archive.tmp" "$archive"
fi

deps=$(du -cb gpu-deps | tail -n 1 | cut -f1)
fix=$(du -cb gpu-fixtures | tail -n 1 | cut -f1)
tree=$(git ls-files -co --exclude-standard | xargs -d '\n' du -cb 2>/dev/null | tail -n 1 | cut -f1)
total=$((deps + fix + tree))
awk -v d="$deps" -v f="$fix" -v t="$tree" -v n="$(ls gpu-deps/*.deb | wc -l)" 'BEGIN {
    m = 1048576; printf "gpu-prepare: gpu-deps %.1f MiB (%d packages), gpu-fixtures %.1f MiB, working tree %.1f MiB: " \
        "%.1f MiB of the 64 MiB that travel\n", d / m, n, f / m, t / m, (d + f + t) / m }'
[ "$total" -lt $((64 * 1048576)) ] || { echo "gpu-prepare: over 64 MiB" >&2; exit 1; }
