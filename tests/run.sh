#!/usr/bin/env bash
# Runs every test program and script, adds up their "N passed, N failed"
# lines, and prints the total last. --quick skips the slow parts.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
export RM_QUICK=$QUICK
passed=0; failed=0; broken=()
run() {
    local name=$1; shift
    local out
    out=$("$@" 2> >(sed "s/^/  [$name] /" >&2))
    local rc=$?
    printf '%s\n' "$out"
    local line
    line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: exited $rc without a summary line" >&2
        failed=$((failed + 1)); broken+=("$name"); return
    fi
    local p f
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); broken+=("$name(rc=$rc)"); fi
    [ "$f" -ne 0 ] && broken+=("$name")
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")" "$t"
done
for s in tests/test_*.sh tests/test_*.py; do
    [ -e "$s" ] || continue
    case "$s" in
        *.py) run "$(basename "$s")" python3 "$s" ;;
        *) run "$(basename "$s")" bash "$s" ;;
    esac
done
[ ${#broken[@]} -gt 0 ] && echo "failing: ${broken[*]}" >&2
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
