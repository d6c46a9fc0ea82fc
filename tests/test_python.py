#!/usr/bin/env python3
"""The nimreward Python package (python/nimreward): runs the pytest suite in
tests/python/ against this build's library ($BUILD/lib, or NIMREWARD_LIB) and
prints the summary line tests/run.sh adds up. Extra arguments go to pytest
(e.g. -k threads, -x). Under the sanitizers (RM_SANITIZED=1) only the C++
example runs, the rest is the skip line."""
import os
import re
import subprocess
import sys

from testlib import no_fixtures, sanitizer_preload, skip

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "python")


class Outcomes:
    """Counts test outcomes as pytest reports them (setup errors and teardown failures count as failed)."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.skip_reasons = set()

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed += 1
        elif report.skipped:
            self.skipped += 1
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skip_reasons.add(reason.replace("Skipped: ", ""))
        elif report.passed and report.when == "call":
            self.passed += 1

    def pytest_collectreport(self, report):
        if report.failed:
            self.failed += 1


def count_tests():
    """Test functions in the suite, for the skip line (without importing the package)."""
    n = 0
    for name in sorted(os.listdir(SUITE)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(SUITE, name)) as f:
                n += len(re.findall(r"^def test_", f.read(), re.M))
    return n


def sanitized_cpp_example():
    """Under the sanitizers python cannot load the library, but the C++ example runs: its handles freed
    by unique_ptr, checked by AddressSanitizer's leak check and UBSan. Returns the summary line's status."""
    root = os.path.dirname(HERE)
    exe = os.path.join(root, os.environ.get("BUILD", "build"), "examples", "score_cpp")
    model = os.path.join(os.environ.get("RM_FIXTURES") or os.path.join(root, "..", "shared", "fixtures"),
                         "models", "tiny-llama3-seqcls")
    try:
        p = subprocess.run([exe, model, "Is 17 prime?", "Yes.", "No."], capture_output=True, text=True)
        ok, why = p.returncode == 0 and len(p.stdout.splitlines()) == 2, f"exit {p.returncode}\n{p.stderr[-3000:]}"
    except OSError as e:
        ok, why = False, str(e)
    if not ok:
        print(f"FAIL: {exe} under the sanitizers: {why}", file=sys.stderr)
    print(f"test_python: {int(ok)} passed, {int(not ok)} failed, {count_tests() - 1} skipped "
          "(an ASan build of the library cannot be loaded into python)")
    return 0 if ok else 1


def main():
    if no_fixtures():
        return skip("test_python", count_tests(), no_fixtures())
    if os.environ.get("RM_SANITIZED") == "1":
        # The whole suite with libasan preloaded (re-executes this script);
        # where that cannot be done, the C++ example alone.
        if sanitizer_preload("test_python", count_tests()) is not None:
            return sanitized_cpp_example()
    import pytest
    outcomes = Outcomes()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", SUITE, SUITE, *sys.argv[1:]],
                       plugins=[outcomes])
    if code not in (0, 1) and not outcomes.failed:   # usage error, nothing collected, interrupted
        outcomes.failed += 1
        print(f"pytest exited {int(code)}", file=sys.stderr)
    line = f"test_python: {outcomes.passed} passed, {outcomes.failed} failed"
    if outcomes.skipped:
        line += f", {outcomes.skipped} skipped ({'; '.join(sorted(outcomes.skip_reasons))})"
    print(line)
    return 1 if outcomes.failed else 0


if __name__ == "__main__":
    sys.exit(main())
