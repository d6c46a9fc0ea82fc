#!/usr/bin/env bash
# Installs what libnimreward needs to build and test, from Debian's packages,
# and creates the one Python virtual environment the tests use, .venv at the
# repository root (the tools the Python tests need, from PyPI).
# Run as root (or with sudo) on Debian 12 / Ubuntu 22.04+.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "== apt: the build and test packages" >&2
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
    build-essential pkg-config binutils clang libclang-rt-14-dev llvm \
    libjansson-dev libpcre2-dev libutf8proc-dev libopenblas-dev libzstd-dev libxxhash-dev libmicrohttpd-dev \
    python3 python3-venv
echo "== .venv: the Python test tools" >&2
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --disable-pip-version-check -q -r scripts/requirements-test.txt
echo "dependencies installed" >&2
