"""testlib - the counting the Python test scripts in tests/ share: check()
counts one condition and names a failed one on stderr; summary() prints the
line tests/run.sh reads last, "NAME: N passed, N failed", and gives the
script's exit status; skip() prints the skip line
"NAME: 0 passed, 0 failed, N skipped (why)" for a script that cannot run here.
fixtures() / no_fixtures() locate the fixtures and say why a script skips
without them; sanitizer_preload() runs a script that loads the library into
Python with libasan preloaded under the sanitizer suite.
Imported as `from testlib import check, summary` (a script's own folder is
on sys.path). The suite runs these scripts with the project's .venv python."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


def summary(name, skipped=0, why=None):
    """Prints the summary line for test `name` (with ", N skipped (why)" when
    some checks could not run here); returns 1 if any check failed, else 0."""
    tail = f", {skipped} skipped ({why})" if skipped else ""
    print(f"{name}: {passed} passed, {failed} failed{tail}")
    return 1 if failed else 0


def skip(name, n, why):
    """Prints the skip line for test `name` (n checks not run, and why); returns 0."""
    print(f"{name}: 0 passed, 0 failed, {n} skipped ({why})")
    return 0


def fixtures():
    """The fixtures folder: RM_FIXTURES, else ../shared/fixtures beside the repository."""
    return os.environ.get("RM_FIXTURES") or os.path.normpath(os.path.join(ROOT, "..", "shared", "fixtures"))


def no_fixtures():
    """None when the fixtures are there, else the reason a script skips (for skip())."""
    f = fixtures()
    if os.path.isdir(os.path.join(f, "models")) and os.path.isdir(os.path.join(f, "reference")):
        return None
    return f"no fixtures at {f}: set RM_FIXTURES"


def sanitizer_preload(name, n):
    """Under the sanitizer suite (RM_SANITIZED=1) a library built with ASan can
    be loaded into Python only when libasan is the process's first library:
    this re-executes the script with LD_PRELOAD set to it (LeakSanitizer off:
    it would report CPython's own allocations at exit; the C tests check the
    library for leaks). Returns None to go on, or, when libasan cannot be
    preloaded, prints the skip line with the reason and returns its status."""
    if os.environ.get("RM_SANITIZED") != "1" or "libasan" in os.environ.get("LD_PRELOAD", ""):
        return None
    try:
        lib = subprocess.run([os.environ.get("CC", "cc"), "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    except OSError as e:
        return skip(name, n, f"sanitizer build: no C compiler to find libasan.so ({e})")
    if not os.path.isabs(lib):
        return skip(name, n, "sanitizer build: libasan.so not found to preload into Python")
    options = os.environ.get("ASAN_OPTIONS", "")
    env = dict(os.environ, LD_PRELOAD=lib, ASAN_OPTIONS=(options + ":" if options else "") + "detect_leaks=0")
    probe = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return skip(name, n, f"sanitizer build: Python does not start with {lib} preloaded: {why}")
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)
