"""testlib - the counting the Python test scripts in tests/ share: check()
counts one condition and names a failed one on stderr; summary() prints the
line tests/run.sh reads last, "NAME: N passed, N failed", and gives the
script's exit status; skip() prints the skip line
"NAME: 0 passed, 0 failed, N skipped (why)" for a script that cannot run here. Imported as `from testlib import check, summary`
(a script's own folder is on sys.path)."""
import sys

passed = 0
failed = 0


def check(cond, what):
    """Counts cond as passed or failed; a failure prints `what` to stderr."""
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def summary(name):
    """Prints the summary line for test `name`; returns 1 if any check failed, else 0."""
    print(f"{name}: {passed} passed, {failed} failed")
    return 1 if failed else 0


def skip(name, n, why):
    """Prints the skip line for test `name` (n checks not run, and why); returns 0."""
    print(f"{name}: 0 passed, 0 failed, {n} skipped ({why})")
    return 0
