#!/usr/bin/env bash
# tests/fuzz/run.sh - what `make fuzz` runs: builds every libFuzzer harness
# (tests/fuzz/fuzz_NAME.c) with clang, ASan and UBSan into build-fuzz/, runs
# each for FUZZ_SECONDS from a scratch copy of its seed corpus, and keeps a
# log of the executions in build-fuzz/fuzz-log.tsv.
#
#   FUZZ_SECONDS=N   seconds per harness (default 8)
#   FUZZ_SEED=N      libFuzzer's -seed (default fixed, printed; a run replays)
#   FUZZ_ONLY="a b"  only these harnesses (names without fuzz_)
#   FUZZ_TIMEOUT=N   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_CC=clang    the compiler (clang 14 with libclang-rt-14-dev)
#   tests/fuzz/run.sh --totals   prints the executions accumulated in the log
#
# A crash, leak, hang or out-of-memory is copied into
# tests/fuzz/regressions/NAME/ (replayed by tests/test_fuzz_regressions.sh in
# the normal test suite) and fails the run. The last line is
# "fuzz: N passed, N failed", one count per harness.
set -u
cd "$(dirname "$0")/../.."

OUT=build-fuzz
LOG_TSV=$OUT/fuzz-log.tsv

if [ "${1:-}" = "--totals" ]; then
    [ -f "$LOG_TSV" ] || { echo "no log yet: $LOG_TSV"; exit 0; }
    printf '%-16s %6s %8s %14s %7s  %s\n' harness runs seconds executions failed dates
    # executions and seconds of passing runs only: a run that crashed found something, it proves nothing
    awk -F'\t' 'NR > 1 { r[$2]++; if ($6 == "pass") { n[$2] += $5; s[$2] += $3 } else bad[$2]++;
                         if (!($2 in first)) first[$2] = substr($1, 1, 10); last[$2] = substr($1, 1, 10) }
                END { for (h in n) printf "%-16s %6d %8d %14d %7d  %s .. %s\n", h, r[h], s[h], n[h], bad[h], first[h], last[h] }' \
        "$LOG_TSV" | sort
    exit 0
fi

FUZZ_SECONDS=${FUZZ_SECONDS:-8}
FUZZ_SEED=${FUZZ_SEED:-20261126}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_CC=${FUZZ_CC:-clang}
JOBS=${FUZZ_JOBS:-2}

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-g -O1 -std=gnu11 -fopenmp -Iinclude -Ilib -w $SAN"
# The libraries the Makefile links (read from it, so a new dependency follows).
LIBS=$(printf '_rm_print_ldlibs:\n\t@echo $(LDLIBS)\n' |
       make -s --no-print-directory -f Makefile -f - _rm_print_ldlibs SANFLAGS= GPU=0 2>/dev/null)
[ -n "$LIBS" ] || LIBS="-ljansson -lpcre2-8 -lutf8proc -lopenblas -lmvec -lm -lpthread -fopenmp"

echo "fuzz: seed $FUZZ_SEED (FUZZ_SEED=$FUZZ_SEED replays), $FUZZ_SECONDS s per harness, compiler $FUZZ_CC"
if ! command -v "$FUZZ_CC" >/dev/null; then
    echo "fuzz: $FUZZ_CC not found (scripts/install-deps.sh installs clang and libclang-rt-14-dev)" >&2
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi
mkdir -p "$OUT/obj" "$OUT/logs" "$OUT/work" "$OUT/artifacts"

# ---------------------------------------------------------------- the library
# Every library source plus the tools' shared helpers, instrumented for
# coverage (fuzzer-no-link) and the sanitizers; the linker takes what a
# harness needs from the archive. A file someone is still writing may fail:
# the harnesses that need it then fail to link, and say so.
# The server's request parsing and answers (fuzz_request) need no HTTP library.
srcs=(lib/*.c lib/jinja/*.c lib/cpu/*.c lib/parallel/*.c lib/pack/*.c lib/cli/cli_common.c lib/server/request.c
      lib/server/response.c)
newest_header=$(ls -t include/*.h lib/*.h lib/*/*.h 2>/dev/null | head -n 1)
todo=()
for s in "${srcs[@]}"; do
    o=$OUT/obj/${s%.c}.o
    if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ "$newest_header" -nt "$o" ] || [ "$0" -nt "$o" ]; then
        todo+=("$s")
    fi
done
export OUT FUZZ_CC CFLAGS
compile_one() {
    local s=$1 o=$OUT/obj/${1%.c}.o
    mkdir -p "$(dirname "$o")"
    rm -f "$o"
    if ! $FUZZ_CC $CFLAGS -fsanitize=fuzzer-no-link -c "$s" -o "$o" 2> "$o.err"; then
        echo "fuzz: cannot compile $s:" >&2
        head -n 20 "$o.err" >&2
        return 1
    fi
    rm -f "$o.err"
}
export -f compile_one
if [ ${#todo[@]} -gt 0 ]; then
    echo "fuzz: compiling ${#todo[@]} library sources"
    printf '%s\n' "${todo[@]}" | xargs -P "$JOBS" -I{} bash -c 'compile_one "$1"' _ {}
fi
objs=()
for s in "${srcs[@]}"; do
    o=$OUT/obj/${s%.c}.o
    [ -f "$o" ] && objs+=("$o")
done
rm -f "$OUT/libnimreward-fuzz.a"
ar rcs "$OUT/libnimreward-fuzz.a" "${objs[@]}"

# ---------------------------------------------------------------- each harness
[ -f "$LOG_TSV" ] || printf 'date\tharness\tseconds\tseed\texecutions\tresult\n' > "$LOG_TSV"
passed=0; failed=0; summary=()
for src in tests/fuzz/fuzz_*.c; do
    h=$(basename "$src" .c); h=${h#fuzz_}
    if [ -n "${FUZZ_ONLY:-}" ] && [[ " $FUZZ_ONLY " != *" $h "* ]]; then continue; fi
    bin=$OUT/fuzz_$h
    log=$OUT/logs/$h.log
    result=pass; execs=0
    if ! $FUZZ_CC $CFLAGS -fsanitize=fuzzer "$src" "$OUT/libnimreward-fuzz.a" $LIBS -o "$bin" 2> "$log"; then
        echo "fuzz: $h: build failed:" >&2
        head -n 20 "$log" >&2
        result=build-failed
    else
        work=$(mktemp -d "$OUT/work/$h.XXXXXX")
        [ -d "tests/fuzz/corpus/$h" ] && cp -p "tests/fuzz/corpus/$h"/* "$work"/ 2>/dev/null
        dict=tests/fuzz/$h.dict
        [ -f "$dict" ] || dict=tests/fuzz/json.dict
        art=$OUT/artifacts/$h/$(date -u +%Y%m%dT%H%M%S)
        mkdir -p "$art"
        dirs=("$work")
        [ -d "tests/fuzz/regressions/$h" ] && dirs+=("tests/fuzz/regressions/$h")   # read, never written
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
            "$bin" -seed="$FUZZ_SEED" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" \
            -print_final_stats=1 -dict="$dict" -artifact_prefix="$art/" "${dirs[@]}" > "$log" 2>&1
        rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
        [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
        [ -n "$execs" ] || execs=0
        found=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
                     -o -name 'oom-*' \) | sort)
        if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
            result=crash
            mkdir -p "tests/fuzz/regressions/$h"
            for f in $found; do
                known=
                for r in "tests/fuzz/regressions/$h"/*; do
                    [ -f "$r" ] && cmp -s "$f" "$r" && known=$r && break
                done
                if [ -n "$known" ]; then
                    echo "fuzz: $h: fails on a known regression: $known (not fixed yet)" >&2
                    echo "fuzz:   replay: $bin $known" >&2
                    continue
                fi
                cp "$f" "tests/fuzz/regressions/$h/"
                echo "fuzz: $h: reproducer saved: tests/fuzz/regressions/$h/$(basename "$f")" >&2
                echo "fuzz:   replay: $bin tests/fuzz/regressions/$h/$(basename "$f")" >&2
            done
            [ -n "$found" ] || echo "fuzz: $h: exited $rc without a reproducer" >&2
            grep -m 1 -A 30 -E '^==[0-9]+==ERROR|runtime error|Test unit written|^INFO: Seed|deadly signal' "$log" \
                | sed "s/^/  [$h] /" >&2
        fi
        rm -rf "$work"
        rmdir "$art" 2>/dev/null
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$h" "$FUZZ_SECONDS" "$FUZZ_SEED" "$execs" \
        "$result" >> "$LOG_TSV"
    printf 'fuzz: %-16s %10s executions  %s\n' "$h" "$execs" "$result"
    if [ "$result" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "fuzz: log appended to $LOG_TSV (tests/fuzz/run.sh --totals sums it)"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
