#!/usr/bin/env bash
# Installs what libnimreward needs to build and test, from Debian's packages
# and PyPI. Run as root (or with sudo) on Debian 12 / Ubuntu 22.04+.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config binutils clang libclang-rt-14-dev llvm \
    libjansson-dev libpcre2-dev libutf8proc-dev libopenblas-dev libzstd-dev \
    python3 python3-pip >/dev/null
# Only the tests need this: the differential template test renders with Jinja itself.
python3 -c 'import jinja2' 2>/dev/null ||
    python3 -m pip install -q 'jinja2==3.1.6' 2>/dev/null ||
    python3 -m pip install -q --break-system-packages 'jinja2==3.1.6'
echo "dependencies installed" >&2
