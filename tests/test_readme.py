#!/usr/bin/env python3
"""test_readme - the README runs as pasted. Every ```sh, ```c and ```python
block of README.md is run, with a fixture model in place of each /models/...
path (a Nemotron name gets the causal fixture, any other the classification
one); a block preceded by "<!-- not run: why -->" is left alone, and must say
why. sh blocks run with bash -e from the repository root (HOME is a scratch
folder, so `make install PREFIX=$HOME/.local` installs there); a c block is
the body of a main() including <stdio.h> and "nimreward.h", built against
build/lib; python blocks run with PYTHONPATH=python. Also: the README links
every docs/*.md, and neither the README nor the docs use dated or
forward-looking wording ("as of", "not yet", "next:", "CUDA next", "next session").
Last line: "test_readme: N passed, N failed"."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from testlib import check, fixtures, no_fixtures, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"(?:^<!--\s*(not run:[^>]*?)\s*-->\n)?^```(\w*)\n(.*?)^```\s*$", re.M | re.S)


def blocks():
    """(language, code, not-run reason or None, line number) for each fenced block."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    for m in FENCE.finditer(text):
        yield m.group(2), m.group(3), m.group(1), text.count("\n", 0, m.start()) + 1


def with_fixtures(code):
    models = os.path.join(fixtures(), "models")
    return re.sub(r"/models/([\w.-]+)", lambda m: os.path.join(
        models, "tiny-llama3-causal" if "Nemotron" in m.group(1) else "tiny-llama3-seqcls"), code)


def run_block(lang, code, where, home):
    env = dict(os.environ, HOME=home, PYTHONPATH=os.path.join(ROOT, "python"))
    env.pop("MAKEFLAGS", None)   # the README's make runs as a user's would
    if lang == "sh":
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    elif lang == "python":
        cmd = [sys.executable, "-c", code]
    elif lang == "c":
        src, exe = os.path.join(home, "snippet.c"), os.path.join(home, "snippet")
        with open(src, "w") as f:
            f.write('#include <stdio.h>\n#include "nimreward.h"\nint main(void) {\n' + code + "return 0;\n}\n")
        lib = os.path.join(ROOT, "build", "lib")
        cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-I" + os.path.join(ROOT, "include"), src, "-o", exe,
                             "-L" + lib, "-lnimreward", "-Wl,-rpath," + lib], capture_output=True, text=True)
        check(cc.returncode == 0, f"{where}: the C snippet compiles as the body of main(): {cc.stderr[-600:]}")
        if cc.returncode != 0:
            return None
        cmd = [exe]
    else:
        check(False, f"{where}: a ```{lang} block is neither run nor marked <!-- not run: why -->")
        return None
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, f"{where}: the {lang} block exits {p.returncode}: {p.stderr[-800:]}")
    return p


def check_blocks():
    ran = {"sh": 0, "c": 0, "python": 0}
    made = not os.path.exists(os.path.join(ROOT, "score"))   # the install example builds ./score
    with tempfile.TemporaryDirectory() as home:
        try:
            for lang, code, not_run, line in blocks():
                where = f"README.md:{line}"
                if not_run:
                    check(len(not_run) > len("not run: ") + 10, f"{where}: a block not run says why ({not_run})")
                    continue
                p = run_block(lang, with_fixtures(code), where, home)
                ran[lang] = ran.get(lang, 0) + 1
                if p is None or p.returncode != 0:
                    continue
                if "nimreward-score" in code and "-o" not in code.split():
                    check('{"scores":' in p.stdout, f"{where}: scores on stdout ({p.stdout[:200]!r})")
                if lang in ("c", "python") or "./score" in code:
                    check("helpfulness" in p.stdout, f"{where}: the example prints the fixture's scores "
                          f"({p.stdout[:200]!r})")
        finally:
            if made and os.path.exists(os.path.join(ROOT, "score")):
                os.remove(os.path.join(ROOT, "score"))
    check(ran["sh"] >= 3 and ran["c"] == 1 and ran["python"] >= 1, f"the README's runnable blocks ran: {ran}")


def check_docs():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    docs = sorted(d for d in os.listdir(os.path.join(ROOT, "docs")) if d.endswith(".md"))
    for d in docs:
        check(f"(docs/{d})" in readme, f"README links docs/{d}")
    dated = re.compile(r"\b(as of|not open yet|not yet|yet to|run yet)\b|\bnext (session|issue|release|step|version)s?\b"
                       r"|\b(cuda|gpu|tp) next\b|(^|[(\s])next:|\(next\)", re.I)
    for name in ["README.md"] + [os.path.join("docs", d) for d in docs]:
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            found = [f"{i}: {m.group(0)!r} in {line.strip()[:100]}" for i, line in enumerate(f, 1)
                     for m in [dated.search(line)] if m]
        check(not found, f"{name}: dated or forward-looking wording, line " + "; line ".join(found))


def main():
    check_docs()
    if os.environ.get("RM_SANITIZED") == "1":
        return summary("test_readme", 1, "the sanitizer suite: the README's commands use the plain build")
    if no_fixtures():
        return summary("test_readme", 1, no_fixtures())
    if not shutil.which("pkg-config"):
        return summary("test_readme", 1, "pkg-config missing (scripts/install-deps.sh installs it)")
    check_blocks()
    return summary("test_readme")


if __name__ == "__main__":
    sys.exit(main())
