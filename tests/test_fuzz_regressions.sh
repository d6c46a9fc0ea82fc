#!/usr/bin/env bash
# test_fuzz_regressions.sh - replays every seed (tests/fuzz/corpus/NAME/) and
# every crash reproducer (tests/fuzz/regressions/NAME/) through each libFuzzer
# harness's entry point, without libFuzzer: each tests/fuzz/fuzz_NAME.c is
# linked with tests/fuzz/replay_main.c and the library of this build
# ($BUILD/lib/libnimreward.a; under `make san` the ASan/UBSan one, so leaks
# and overflows on these inputs are caught there too).
# Prints "test_fuzz_regressions: N passed, N failed" last (one count per input).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
OUT=$BUILD/fuzz-replay
LIB=$BUILD/lib/libnimreward.a
passed=0; failed=0; skipped=0
# The tokenize harness encodes with the fixture tokenizer (fuzz_tokenize.c).
FIX_TOKENIZER=${RM_FUZZ_TOKENIZER:-${RM_FIXTURES:-../shared/fixtures}/tokenizer/llama3/tokenizer.json}

FLAGS="-g -O1 -std=gnu11 -Iinclude -Ilib -fopenmp"
# The sanitizer build's library needs the sanitizer runtimes; match it.
if [ "${RM_SANITIZED:-0}" = 1 ] || [[ "$BUILD" == *san* ]]; then
    FLAGS="$FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
fi
# The libraries the Makefile links (read from it, so a new dependency follows).
LIBS=$(printf '_rm_print_ldlibs:\n\t@echo $(LDLIBS)\n' |
       make -s --no-print-directory -f Makefile -f - _rm_print_ldlibs SANFLAGS= 2>/dev/null)
[ -n "$LIBS" ] || LIBS="-ljansson -lpcre2-8 -lutf8proc -lopenblas -lm -lpthread -fopenmp"

if [ ! -f "$LIB" ]; then
    echo "test_fuzz_regressions: $LIB missing (run make first)" >&2
    echo "test_fuzz_regressions: 0 passed, 1 failed"
    exit 1
fi
mkdir -p "$OUT"
for src in tests/fuzz/fuzz_*.c; do
    h=$(basename "$src" .c); h=${h#fuzz_}
    if [ "$h" = tokenize ] && [ ! -f "$FIX_TOKENIZER" ]; then
        skipped=$((skipped + 1)); continue
    fi
    bin=$OUT/replay_$h
    if ! $CC $FLAGS -o "$bin" tests/fuzz/replay_main.c "$src" lib/cli/cli_common.c lib/server/request.c \
            lib/server/response.c "$LIB" $LIBS 2> "$OUT/$h.build.log"; then
        echo "test_fuzz_regressions: $h: does not build:" >&2
        head -n 20 "$OUT/$h.build.log" >&2
        failed=$((failed + 1))
        continue
    fi
    out=$("$bin" "$h" "tests/fuzz/corpus/$h" "tests/fuzz/regressions/$h" 2> "$OUT/$h.log")
    rc=$?
    line=$(printf '%s\n' "$out" | grep -E "^replay $h: [0-9]+ passed, [0-9]+ failed" | tail -n 1)
    if [ -z "$line" ]; then
        echo "test_fuzz_regressions: $h: replay exited $rc without a summary" >&2
        tail -n 30 "$OUT/$h.log" >&2
        failed=$((failed + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    echo "  $h: $((p + f)) inputs replayed, $f failed"
    if [ "$f" -ne 0 ]; then
        printf '%s\n' "$out" | grep '^FAIL' | sed "s/^/  [$h] /" >&2
        grep -m 3 -A 25 -E '^==[0-9]+==ERROR|runtime error|killed by signal' "$OUT/$h.log" | sed "s/^/  [$h] /" >&2
    fi
done
if [ "$skipped" -gt 0 ]; then
    echo "test_fuzz_regressions: $passed passed, $failed failed, $skipped skipped (no fixture tokenizer at $FIX_TOKENIZER: set RM_FIXTURES)"
else
    echo "test_fuzz_regressions: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
