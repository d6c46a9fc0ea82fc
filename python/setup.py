"""Builds the nimreward wheel: `make` in the repository, then the library
(and the CUDA module, when built) copied into the package, in the layout the
library expects (the module in nimreward/ beside libnimreward.so.0).

The repository is found, in order, from NIMREWARD_SOURCE_DIR, from the folders
above this file (pip builds a local directory in place), or from the
SOURCE_DIR file an sdist made here carries (`python -m build` builds the wheel
from an unpacked sdist in a temporary folder). NIMREWARD_MAKE_ARGS adds
arguments to make (e.g. "GPU=0").
"""
import os
import re
import shlex
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:   # setuptools < 70.1 (pip install --no-build-isolation), with the wheel package
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
SONAME = "libnimreward.so.0"
CUDA_MODULE = os.path.join("nimreward", "libnimreward-cuda.so")   # relative to build/lib, and in the wheel


def is_repository(path):
    return os.path.isfile(os.path.join(path, "include", "nimreward.h")) and \
        os.path.isfile(os.path.join(path, "Makefile"))


def repository():
    explicit = os.environ.get("NIMREWARD_SOURCE_DIR")
    if explicit:
        if not is_repository(explicit):
            raise SystemExit(f"NIMREWARD_SOURCE_DIR={explicit} is not the libnimreward repository "
                             "(no include/nimreward.h and Makefile)")
        return os.path.abspath(explicit)
    path = HERE
    while True:
        if is_repository(path):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    recorded = os.path.join(HERE, "SOURCE_DIR")
    if os.path.isfile(recorded):
        with open(recorded) as f:
            path = f.read().strip()
        if is_repository(path):
            return path
    raise SystemExit(f"{HERE}: the libnimreward repository is not above this folder; "
                     "set NIMREWARD_SOURCE_DIR to its root")


def version():
    header = os.path.join(repository(), "include", "nimreward.h")
    with open(header) as f:
        found = re.search(r'^#define RM_VERSION_STRING "([^"]+)"', f.read(), re.M)
    if not found:
        raise SystemExit(f"{header}: no RM_VERSION_STRING")
    return found.group(1)


class build_py_with_library(build_py):
    """The package's Python files, then `make` and the library beside them."""

    def run(self):
        super().run()
        root = repository()
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        # BUILD=build: the folder copied from below, whatever BUILD the caller's environment holds.
        command = ["make", "-C", root, f"-j{jobs}", "BUILD=build"] + \
            shlex.split(os.environ.get("NIMREWARD_MAKE_ARGS", ""))
        print("nimreward:", " ".join(command), flush=True)
        try:
            subprocess.run(command, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SystemExit(f"nimreward: `{' '.join(command)}` failed ({e}); the build needs the packages of "
                             "scripts/install-deps.sh") from None
        built = os.path.join(root, "build", "lib")
        target = os.path.join(self.build_lib, "nimreward", "lib")
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(os.path.join(built, SONAME), os.path.join(target, SONAME))   # the file, not the link
        if os.path.isfile(os.path.join(built, CUDA_MODULE)):
            os.makedirs(os.path.join(target, "nimreward"), exist_ok=True)
            shutil.copyfile(os.path.join(built, CUDA_MODULE), os.path.join(target, CUDA_MODULE))


class sdist_with_source_dir(sdist):
    """An sdist remembers the repository it came from, for the wheel built from it elsewhere."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        with open(os.path.join(base_dir, "SOURCE_DIR"), "w") as f:
            f.write(repository() + "\n")


class with_native_library(Distribution):
    """The package holds a native library: installed as platform code (platlib)."""

    def has_ext_modules(self):
        return True


class platform_wheel(bdist_wheel):
    """Tagged for the platform, any Python 3: the library is loaded with ctypes, not as an extension."""

    def get_tag(self):
        return ("py3", "none", super().get_tag()[2])


setup(version=version(), distclass=with_native_library,
      cmdclass={"build_py": build_py_with_library, "sdist": sdist_with_source_dir, "bdist_wheel": platform_wheel})
