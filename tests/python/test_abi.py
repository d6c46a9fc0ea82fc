"""The ctypes structs mirror include/nimreward.h exactly (sizes and every field's offset, from a C
program compiled against the header), and the library is looked up in the documented order."""
import ctypes
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import BUILD, ROOT

from nimreward import _lib

STRUCTS = {"rm_params": _lib.Params, "rm_message": _lib.Message, "rm_item": _lib.Item,
           "rm_scores": _lib.Scores, "rm_counters": _lib.Counters}


def c_layout(tmp_path):
    """{struct: {"size": n, field: offset}} as the C compiler lays them out."""
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "nimreward.h"', "int main(void) {",
             '    printf("{");']
    for k, (name, cls) in enumerate(STRUCTS.items()):
        sep = "," if k else ""
        lines.append(f'    printf("{sep}\\"{name}\\": {{\\"size\\": %zu", sizeof({name}));')
        for field, _ in cls._fields_:
            lines.append(f'    printf(", \\"{field}\\": %zu", offsetof({name}, {field}));')
        lines.append('    printf("}");')
    lines += ['    printf("}\\n");', "    return 0;", "}"]
    src, exe = tmp_path / "layout.c", tmp_path / "layout"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-I", os.path.join(ROOT, "include"), str(src), "-o",
                    str(exe)], check=True)
    return json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_structs_mirror_the_header(tmp_path):
    layout = c_layout(tmp_path)
    for name, cls in STRUCTS.items():
        assert ctypes.sizeof(cls) == layout[name]["size"], name
        for field, _ in cls._fields_:
            assert getattr(cls, field).offset == layout[name][field], f"{name}.{field}"
    # rm_params_init reports the same size the header gives (the library and header agree too).
    assert _lib.default_params().struct_size == layout["rm_params"]["size"]


def test_defaults_come_from_the_library():
    p = _lib.default_params()
    assert (p.device, p.dtype, p.head, p.gpu, p.max_device_bytes, p.n_threads) == (0, 0, 0, 0, 0, 0)
    assert (p.logits_begin, p.logits_end) == (-1, -1)


def probe(env_changes, cwd=None, package_dir=os.path.join(ROOT, "python")):
    """Imports nimreward in a fresh interpreter; its library_path, or the ImportError's text."""
    env = {k: v for k, v in os.environ.items() if k != "NIMREWARD_LIB"}
    env.update(env_changes)
    code = (f"import sys; sys.path.insert(0, {package_dir!r})\n"
            "try:\n    import nimreward; print('loaded', nimreward.library_path)\n"
            "except ImportError as e:\n    print('refused', e)\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=cwd).stdout.strip()


def test_lookup_order(tmp_path):
    built = os.path.join(BUILD, "lib", "libnimreward.so.0")
    repo_build = os.path.join(ROOT, "build", "lib", "libnimreward.so.0")
    # 1. NIMREWARD_LIB wins, and a bad one is an error naming it (never a silent fallback).
    assert probe({"NIMREWARD_LIB": built}) == f"loaded {built}"
    out = probe({"NIMREWARD_LIB": str(tmp_path / "nope.so")})
    assert out.startswith("refused NIMREWARD_LIB=") and "nope.so" in out
    # 3. From the source tree, the repository's build/lib (2, the bundled copy, is tested by
    #    test_python_install.py, which installs the package).
    if os.path.exists(repo_build):
        assert probe({}) == f"loaded {repo_build}"
    # 4. A copy of the package with neither: the loader path (here LD_LIBRARY_PATH).
    shutil.copytree(os.path.join(ROOT, "python", "nimreward"), tmp_path / "pkg" / "nimreward",
                    ignore=shutil.ignore_patterns("__pycache__", "lib"))
    pkg = str(tmp_path / "pkg")
    assert probe({"LD_LIBRARY_PATH": os.path.dirname(built)}, package_dir=pkg) == "loaded libnimreward.so.0"
    out = probe({"LD_LIBRARY_PATH": str(tmp_path)}, package_dir=pkg)
    assert out.startswith("refused libnimreward not found") and "NIMREWARD_LIB" in out


def test_older_library_is_refused(tmp_path):
    # A library reporting 0.1 would silently ignore dtype= and the device parameters.
    fake = tmp_path / "old.c"
    fake.write_text('unsigned rm_version_number(void) { return 100; }\n'
                    'const char *rm_version_string(void) { return "0.1.0"; }\n')
    names = ["rm_params_init", "rm_params_init_size", "rm_load", "rm_free", "rm_score_batch", "rm_scores_free", "rm_render",
             "rm_tokenize_messages", "rm_model_tokenizer", "rm_tokenize", "rm_ids_free", "rm_string_free",
             "rm_model_head", "rm_model_n_scores", "rm_model_score_name", "rm_model_architecture",
             "rm_model_n_ctx", "rm_model_n_layers", "rm_model_device", "rm_model_dtype", "rm_model_counters",
             "rm_model_counters_reset", "rm_errmsg", "rm_status_string"]
    with fake.open("a") as f:
        for n in names:
            f.write(f"void {n}(void) {{}}\n")
    so = tmp_path / "libold.so"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", str(fake), "-o", str(so)], check=True)
    out = probe({"NIMREWARD_LIB": str(so)})
    assert out.startswith("refused") and "0.1.0" in out and "needs 0.2" in out
