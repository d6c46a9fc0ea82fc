#!/usr/bin/env python3
"""The nimreward Python package (python/nimreward): runs the pytest suite in
tests/python/ against this build's library ($BUILD/lib, or NIMREWARD_LIB) and
prints the summary line tests/run.sh adds up. Extra arguments go to pytest
(e.g. -k threads, -x)."""
import os
import re
import sys

from testlib import skip

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


def main():
    if os.environ.get("RM_SANITIZED") == "1":
        return skip("test_python", count_tests(), "an ASan build of the library cannot be loaded into python")
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
