#!/usr/bin/env bash
# test_install.sh - installing to a prefix of one's own works as the README
# says: after a plain `make`, `make install PREFIX=P` writes a nimreward.pc
# that names P, and examples/score.c then builds with nothing but
# `pkg-config --cflags --libs nimreward` (PKG_CONFIG_PATH=P/lib/pkgconfig)
# and runs with LD_LIBRARY_PATH=P/lib. Also: DESTDIR stages without changing
# the prefix the pc file names, and uninstall removes what install wrote.
# Prints "test_install: N passed, N failed" last.
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
if [ "${RM_SANITIZED:-0}" = 1 ]; then   # install runs make, which would relink the sanitized build plainly
    echo "test_install: 0 passed, 0 failed, 1 skipped (the sanitizer suite: installing is checked on the plain build)"
    exit 0
fi
command -v pkg-config > /dev/null || { echo "test_install: pkg-config missing (scripts/install-deps.sh)" >&2; echo "test_install: 0 passed, 1 failed"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
major=$(sed -n 's/^#define RM_VERSION_MAJOR \([0-9]*\).*/\1/p' include/nimreward.h)

# The build's own pc file names the default prefix; the installed one must name P.
check "make install PREFIX=P" '$MAKE -s install PREFIX="$P" BUILD="$BUILD" > "$tmp/install.log" 2>&1'
check "the installed nimreward.pc names the prefix ($(grep '^prefix=' "$P/lib/pkgconfig/nimreward.pc" 2>/dev/null))" \
      'grep -qx "prefix=$P" "$P/lib/pkgconfig/nimreward.pc" && grep -qx "includedir=$P/include" "$P/lib/pkgconfig/nimreward.pc"'
flags=$(PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config --cflags --libs nimreward 2>&1)
check "pkg-config --cflags --libs nimreward: $flags" '[[ "$flags" == *"-I$P/include"* && "$flags" == *"-L$P/lib"* ]]'
# The user's build: only pkg-config's flags, nothing from this tree.
check "examples/score.c builds with pkg-config's flags alone" \
      'cc examples/score.c $flags -o "$tmp/score" 2> "$tmp/cc.log"'
[ -s "$tmp/cc.log" ] && sed 's/^/  cc: /' "$tmp/cc.log" >&2
model=$tmp/demo-model
python3 scripts/make_demo_model.py "$model" > /dev/null 2>&1
out=$(LD_LIBRARY_PATH=$P/lib "$tmp/score" "$model" "Is 17 prime?" "Yes." 2>&1)
check "score runs against the installed library: $(echo "$out" | head -n 1)" \
      '[ "$(echo "$out" | cut -d: -f1 | tr "\n" " ")" = "helpfulness correctness coherence complexity verbosity " ]'
check "it loaded libnimreward.so.$major from the prefix" \
      'LD_LIBRARY_PATH=$P/lib ldd "$tmp/score" | grep -q "libnimreward.so.$major => $P/lib/"'
check "the tools are installed and run" '"$P/bin/nimreward-score" --help | grep -q stdin'
if [ -e "$BUILD/lib/libnimreward-cuda.so" ]; then   # the CUDA engine module, when this build has one
    check "the CUDA module is installed beside the library" '[ -e "$P/lib/libnimreward-cuda.so" ]'
fi

# DESTDIR stages the files; the pc file still names the prefix they will live under.
check "make install DESTDIR=D PREFIX=/opt/rm" \
      '$MAKE -s install DESTDIR="$tmp/stage" PREFIX=/opt/rm BUILD="$BUILD" > /dev/null 2>&1'
check "staged pc file names /opt/rm" 'grep -qx "prefix=/opt/rm" "$tmp/stage/opt/rm/lib/pkgconfig/nimreward.pc"'
check "make uninstall removes what install wrote" \
      '$MAKE -s uninstall PREFIX="$P" BUILD="$BUILD" > /dev/null 2>&1 && [ -z "$(find "$P" -type f -o -type l)" ]'
echo "test_install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
