#!/usr/bin/env bash
# The shared library exports only rm_* symbols and carries the soname
# libnimreward.so.MAJOR; nimreward.pc names the header's version.
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
so=$(ls "$BUILD"/lib/libnimreward.so.*.*.* 2>/dev/null | head -n 1)
check "shared library built" '[ -n "$so" ]'
if [ -n "$so" ]; then
    others=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^rm_' | grep -v '^$')
    check "only rm_* exported (others: $others)" '[ -z "$others" ]'
    count=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -c '^rm_')
    check "rm_load, rm_score, rm_free exported" 'nm -D --defined-only "$so" | grep -qw rm_load && nm -D --defined-only "$so" | grep -qw rm_score && nm -D --defined-only "$so" | grep -qw rm_free'
    major=$(sed -n 's/^#define RM_VERSION_MAJOR \([0-9]*\).*/\1/p' include/nimreward.h)
    check "soname libnimreward.so.$major" 'readelf -d "$so" | grep -q "SONAME.*libnimreward.so.$major\]"'
    echo "exported rm_* symbols: $count"
fi
ver=$(sed -n 's/^#define RM_VERSION_STRING "\(.*\)"/\1/p' include/nimreward.h)
check "nimreward.pc version $ver" 'grep -q "^Version: $ver" "$BUILD/lib/nimreward.pc"'
# The header stands alone and compiles as C and C++.
check "header compiles as C" 'echo "#include \"nimreward.h\"" | cc -std=c99 -Wall -Werror -Iinclude -x c -c - -o /dev/null'
check "header compiles as C++" 'echo "#include \"nimreward.h\"" | c++ -Wall -Werror -Iinclude -x c++ -c - -o /dev/null'
if [ "${RM_SANITIZED:-0}" != 1 ]; then   # install runs make, which would relink the sanitized build plainly
tmp=$(mktemp -d)
check "make install honours DESTDIR and PREFIX" '${MAKE:-make} -s install DESTDIR="$tmp" PREFIX=/opt/rm BUILD="$BUILD" >/dev/null && [ -f "$tmp/opt/rm/include/nimreward.h" ] && [ -e "$tmp/opt/rm/lib/libnimreward.so.$major" ] && [ -f "$tmp/opt/rm/lib/pkgconfig/nimreward.pc" ]'
check "nimreward.pc names no CUDA library" '! grep -Eiq "cuda|cublas|nccl|cudnn" "$tmp/opt/rm/lib/pkgconfig/nimreward.pc"'
if [ -f "$BUILD/lib/nimreward/libnimreward-cuda.so" ]; then
    check "make install puts the CUDA module in LIBDIR/nimreward" '[ -f "$tmp/opt/rm/lib/nimreward/libnimreward-cuda.so" ]'
fi
check "make uninstall removes it" '${MAKE:-make} -s uninstall DESTDIR="$tmp" PREFIX=/opt/rm BUILD="$BUILD" >/dev/null && [ ! -e "$tmp/opt/rm/include/nimreward.h" ] && [ ! -e "$tmp/opt/rm/lib/nimreward/libnimreward-cuda.so" ]'
rm -rf "$tmp"
fi
echo "test_exports: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
