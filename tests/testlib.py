"""testlib - the counting the Python test scripts in tests/ share: check()
counts one condition and names a failed one on stderr; summary() prints the
line tests/run.sh reads last, "NAME: N passed, N failed", and gives the
script's exit status. Imported as `from testlib import check, summary`
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
