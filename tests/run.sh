#!/usr/bin/env bash
# Runs the test programs and scripts, adds up their "N passed, N failed"
# lines (and ", N skipped (why)" where a program could not run here), and
# prints the total last.
#   tests/run.sh           the suite on $BUILD (default build)
#   tests/run.sh --quick   the same, slow parts cut down (RM_QUICK=1)
#   tests/run.sh --all     the suite, then again under ASan+UBSan (build-san, quick), then make fuzz
set -u
cd "$(dirname "$0")/.."
MODE=${1:-}
# Python tests run in the project's virtual environment, .venv, made by
# scripts/install-deps.sh (jinja2 at the pinned version, pytest, openai);
# without it they report skipped rather than run with whatever python3 has.
PY=.venv/bin/python
[ -x "$PY" ] || echo "== no .venv: the Python tests will report skipped (scripts/install-deps.sh creates it)" >&2
passed=0; failed=0; skipped=0; broken=()
# The fixtures (tiny real checkpoints and transformers' outputs) are read in
# place; without them the tests that need them report skips, said once here.
fixtures=${RM_FIXTURES:-$(cd .. && pwd)/shared/fixtures}
if [ ! -d "$fixtures/models" ] || [ ! -d "$fixtures/reference" ]; then
    echo "== no fixtures at $fixtures: they are expected in ../shared/fixtures beside the repository," >&2
    echo "   or wherever RM_FIXTURES=DIR points. The tests that need them will report skipped." >&2
fi

run() {   # run NAME CMD...: one program, its summary line added to the totals
    local name=$1; shift
    local out rc line p f k
    out=$("$@" 2> >(sed "s/^/  [$name] /" >&2))
    rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: exited $rc without a summary line" >&2
        failed=$((failed + 1)); broken+=("$name"); return
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    k=0
    case "$line" in *" skipped"*) k=$(echo "$line" | sed -E 's/.*failed, ([0-9]+) skipped.*/\1/') ;; esac
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); broken+=("$name(rc=$rc)"); fi
    [ "$f" -ne 0 ] && broken+=("$name")
}

suite() {   # suite BUILD_DIR QUICK SANITIZED
    export BUILD=$1 RM_QUICK=$2 RM_SANITIZED=$3
    local tag=""
    [ "$3" = 1 ] && tag="san:"
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        run "$tag$(basename "$t")" "$t"
    done
    for s in tests/test_*.sh tests/test_*.py; do
        [ -e "$s" ] || continue
        case "$s" in
            *.py) if [ -x "$PY" ]; then run "$tag$(basename "$s")" "$PY" "$s"
                  else run "$tag$(basename "$s")" echo "$(basename "$s" .py): 0 passed, 0 failed, 1 skipped (no .venv: scripts/install-deps.sh creates it)"; fi ;;
            *) run "$tag$(basename "$s")" bash "$s" ;;
        esac
    done
}

case "$MODE" in
    --quick) suite "${BUILD:-build}" 1 0 ;;
    --san) suite build-san 1 1 ;;
    --all)
        suite "${BUILD:-build}" 0 0
        echo "== the suite again under AddressSanitizer + UndefinedBehaviorSanitizer" >&2
        if ${MAKE:-make} -s san-build >/dev/null; then suite build-san 1 1; else failed=$((failed + 1)); broken+=("san-build"); fi
        echo "== fuzzing, a short fixed budget per harness" >&2
        run fuzz tests/fuzz/run.sh
        ;;
    *) suite "${BUILD:-build}" 0 0 ;;
esac
[ ${#broken[@]} -gt 0 ] && echo "failing: ${broken[*]}" >&2
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
