#!/usr/bin/env python3
"""test_template_tool - the nimreward-template command line: one output line per
input line in order, error lines for bad lines (the tool goes on), exit codes
(0 all rendered, 3 some refused, 2 template syntax error or usage, 1 missing
template file), UTF-8 written unescaped, --mask, --bench.
BUILD (default "build") locates the tool. Last line: "test_template_tool: N passed, N failed".
"""

import json
import os
import subprocess
import sys
import tempfile

from testlib import check, summary

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO_ROOT, os.environ.get("BUILD", "build"), "bin", "nimreward-template")


def run(template_text, stdin, *extra):
    with tempfile.NamedTemporaryFile("w", suffix=".jinja", delete=False, encoding="utf-8") as f:
        f.write(template_text)
        path = f.name
    try:
        p = subprocess.run([TOOL, "--template", path, *extra], input=stdin.encode("utf-8"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.unlink(path)
    # split on "\n" only: rendered text may hold U+2028, which str.splitlines() would split on
    lines = [json.loads(x) for x in p.stdout.decode("utf-8").split("\n") if x]
    return p.returncode, lines, p.stderr.decode("utf-8", "replace")


def main():
    if not os.path.exists(TOOL):
        print("test_template_tool: %s missing (make)" % TOOL)
        print("test_template_tool: 0 passed, 1 failed")
        return 1
    tpl = ("{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
           "{% if add_generation_prompt %}<assistant>{% endif %}{{ strftime_now('%d %b %Y') }}")
    good = {"messages": [{"role": "user", "content": "héllo \u2028 😀"}], "add_generation_prompt": True,
            "bos_token": "<s>", "eos_token": "</s>", "now": "2026-11-26T09:30:00"}
    rc, out, err = run(tpl, json.dumps(good, ensure_ascii=False) + "\n")
    check(rc == 0, "all rendered: exit %d (%s)" % (rc, err))
    check(out == [{"rendered": "<s><user>héllo \u2028 😀<assistant>26 Nov 2026"}], "rendered line: %r" % out)

    # order kept, bad lines give error lines and the tool goes on
    raise_tpl = "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}{{ messages[0].content }}"
    lines = [json.dumps({"messages": [{"role": "user", "content": "one"}]}), "{not json", "[1, 2]",
             json.dumps({"messages": [{"role": "system", "content": "x"}]}), json.dumps({"no": "messages"}),
             json.dumps({"messages": [{"role": "user", "content": "six"}]})]
    rc, out, err = run(raise_tpl, "\n".join(lines) + "\n")
    check(rc == 3, "some failed: exit %d" % rc)
    check(len(out) == 6, "one output line per input line: %d" % len(out))
    if len(out) == 6:
        check(out[0] == {"rendered": "one"} and out[5] == {"rendered": "six"}, "order: %r" % out)
        check(all("error" in out[i] for i in (1, 2, 3, 4)), "error lines: %r" % out)
        check(out[3].get("error") == "line 4: no system", "raise_exception message: %r" % out[3])
    raw = subprocess.run([TOOL, "--template", "/nonexistent/x.jinja"], input=b"", capture_output=True)
    check(raw.returncode == 1 and b"x.jinja" in raw.stderr, "missing template: exit %d" % raw.returncode)
    rc, out, err = run("{% for x in %}", "{}\n")
    check(rc == 2 and "line 1" in err and out == [], "syntax error: exit %d, stderr %r" % (rc, err))
    rc, out, err = run("x", "", "--bogus")
    check(rc == 2, "usage: exit %d" % rc)

    # --mask: one digit per byte of the UTF-8 text
    rc, out, err = run("[{{ messages[0].content }}]", json.dumps({"messages": [{"role": "user", "content": "é<|x|>"}]}) + "\n",
                       "--mask")
    if out:
        text = out[0].get("rendered", "")
        check(out[0].get("mask") == "0" + "1" * len("é<|x|>".encode("utf-8")) + "0", "mask: %r" % out[0])
        check(len(out[0].get("mask", "")) == len(text.encode("utf-8")), "mask length")
    else:
        check(False, "mask: no output (%s)" % err)

    # --bench prints microseconds per render
    rc, out, err = run(tpl, json.dumps(good) + "\n", "--bench", "50")
    check(rc == 0 and "us per render" in err, "bench: %r" % err)
    return summary("test_template_tool")


if __name__ == "__main__":
    sys.exit(main())
