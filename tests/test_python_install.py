#!/usr/bin/env python3
"""`pip install ./python` into a throwaway virtual environment, as a user on a
fresh machine does after scripts/install-deps.sh: pip fetches the build backend
(setuptools) from the package index, the build runs `make` in this repository
and bundles the library into the wheel, and the installed package, run from
outside the repository, loads that bundled copy and scores a fixture. Prints
the skip line when the package index cannot be reached."""
import json
import os
import subprocess
import sys
import tempfile

from testlib import check, skip, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.environ.get("RM_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures")
CHECKS = 10

PROBE = r"""
import json, os, sys, nimreward
rows = [json.loads(line) for line in open(sys.argv[1])]
with nimreward.RewardModel(sys.argv[2], device="cpu") as rm:
    got = rm.score_batch([{"messages": r["messages"]} for r in rows])
print(json.dumps({"library": nimreward.library_path, "package": os.path.dirname(nimreward.__file__),
                  "version": nimreward.__version__,
                  "close": all(abs(a - b) <= 1e-4 + 1e-4 * abs(b)
                               for g, r in zip(got, rows) for a, b in zip(g.values(), r["scores_fp32"]))}))
"""


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def main():
    if os.environ.get("RM_SANITIZED") == "1":
        return skip("test_python_install", CHECKS, "an ASan build of the library cannot be loaded into python")
    with tempfile.TemporaryDirectory(prefix="nimreward-venv-") as tmp:
        venv = os.path.join(tmp, "venv")
        python = os.path.join(venv, "bin", "python")
        # A bare environment, filled by this interpreter's pip (--python, pip >= 22.3): seconds faster
        # than installing pip into it first, and the same install. An older pip installs its own copy.
        p = run([sys.executable, "-m", "venv", "--without-pip", venv])
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]
        if p.returncode == 0 and run(pip + ["--version"]).returncode:
            p = run([sys.executable, "-m", "venv", "--clear", venv])
            pip = [python, "-m", "pip", "--disable-pip-version-check"]
        if p.returncode:
            return skip("test_python_install", CHECKS, f"python -m venv failed: {p.stderr.strip()[-200:]}")
        # The build backend comes from the package index: without it (offline) there is nothing to test.
        p = run(pip + ["download", "--no-deps", "--retries", "1", "--timeout", "20", "-d",
                       os.path.join(tmp, "probe"), "setuptools>=77"])
        if p.returncode:
            return skip("test_python_install", CHECKS, "offline: the package index cannot provide setuptools")
        env = {k: v for k, v in os.environ.items() if k not in ("NIMREWARD_LIB", "PYTHONPATH", "BUILD")}
        p = run(pip + ["install", "-v", "./python"], cwd=ROOT, env=env, timeout=1200)
        check(p.returncode == 0, f"pip install ./python: {p.stdout[-1500:]}{p.stderr[-1500:]}")
        if p.returncode:
            return summary("test_python_install")
        check(f"nimreward: make -C {ROOT} " in p.stdout + p.stderr, "the build ran make in the repository")

        model = os.path.join(FIX, "models", "tiny-llama3-seqcls")
        ref = os.path.join(FIX, "reference", "tiny-llama3-seqcls.reference.jsonl")
        p = run([python, "-c", PROBE, ref, model], cwd=tmp, env=env)   # outside the repository
        check(p.returncode == 0, f"the installed package runs: {p.stderr[-1500:]}")
        if p.returncode:
            return summary("test_python_install")
        out = json.loads(p.stdout)
        package = out["package"]
        check(package.startswith(venv), f"imported from the virtual environment ({package})")
        check(out["library"] == os.path.join(package, "lib", "libnimreward.so.0"),
              f"the bundled library is used ({out['library']})")
        check(out["close"], "the installed package scores within 1e-4 of transformers")
        check(os.path.isfile(os.path.join(package, "py.typed")), "py.typed is installed")
        dist = [d for d in os.listdir(os.path.dirname(package)) if d.startswith("nimreward-")]
        wheel = open(os.path.join(os.path.dirname(package), dist[0], "WHEEL")).read() if dist else ""
        check("Root-Is-Purelib: false" in wheel and "Tag: py3-none-linux_" in wheel,
              f"a platform wheel for any Python 3 ({wheel!r})")

        # NIMREWARD_LIB comes before the bundled copy.
        build_lib = os.path.join(ROOT, "build", "lib", "libnimreward.so.0")
        p = run([python, "-c", "import nimreward; print(nimreward.library_path)"], cwd=tmp,
                env=dict(env, NIMREWARD_LIB=build_lib))
        check(p.stdout.strip() == build_lib, f"NIMREWARD_LIB wins over the bundled copy ({p.stdout}{p.stderr})")

        # The CUDA module, when built, is bundled where the library looks for it (nimreward/ beside it).
        module = os.path.join(ROOT, "build", "lib", "nimreward", "libnimreward-cuda.so")
        bundled_module = os.path.join(package, "lib", "nimreward", "libnimreward-cuda.so")
        if os.path.isfile(module):
            check(os.path.isfile(bundled_module), "the CUDA module is bundled beside the library")
        else:
            check(not os.path.exists(bundled_module), "no CUDA module bundled when none was built")
    return summary("test_python_install")


if __name__ == "__main__":
    sys.exit(main())
