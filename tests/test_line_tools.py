#!/usr/bin/env python3
"""test_line_tools - what a newcomer meets in nimreward-score, -tokenize and
-template (issue 7, item 4), on the demo model (no fixtures needed; the
fixture models add the principle and template checks when present):
  * the progress bar never shares a terminal with the output;
  * -i DIR is an error, while pipes and /dev/stdin work;
  * one output line per input line: empty and blank lines get an error line,
    a final newline adds none, CRLF endings and a leading UTF-8 BOM are fine;
  * errors name the line and the field: "missing" vs "must be a string";
  * run-wide mistakes are refused once, at start-up, with exit 2, in the
    tool's own words (--now, --names, --principle on a classifier);
  * no arguments says --model is required; --help names stdin / stdout;
  * every score is the shortest text that reads back to the same double;
  * nimreward-template --model renders with the model's own template;
  * the demo previews each conversation on stderr, stdout unchanged, and make
    prints no `rm build/obj/...` lines.
Last line: "test_line_tools: N passed, N failed"."""
import json
import os
import pty
import re
import subprocess
import sys
import tempfile

from testlib import check, fixtures, no_fixtures, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
GOOD = json.dumps({"prompt": "Is 17 prime?", "response": "Yes."})


def tool(name):
    return os.path.join(BUILD, "bin", name)


def run(args, stdin="", env=None):
    """Runs a tool; returns (exit status, stdout lines as JSON or text, stderr)."""
    p = subprocess.run(args, input=stdin.encode(), capture_output=True, env=dict(os.environ, **(env or {})),
                       timeout=300)
    lines = []
    for line in p.stdout.decode().split("\n")[:-1] if p.stdout else []:
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append(line)
    return p.returncode, lines, p.stderr.decode()


def on_terminal(args, stdin_path, stdout_too):
    """Runs args with stderr (and stdout when stdout_too) on a pseudo-terminal;
    returns (what the terminal showed, what the pipe got)."""
    master, slave = pty.openpty()
    with open(stdin_path, "rb") as f:
        p = subprocess.Popen(args, stdin=f, stdout=slave if stdout_too else subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:   # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        shown += chunk
    piped = p.stdout.read() if p.stdout else b""
    p.wait(timeout=300)
    os.close(master)
    return shown.decode(errors="replace"), piped.decode()


def check_progress(model, tmp):
    inp = os.path.join(tmp, "many.jsonl")
    with open(inp, "w") as f:
        f.write((GOOD + "\n") * 40)
    args = [tool("nimreward-score"), "--model", model, "-i", inp, "--batch", "4"]
    shown, _ = on_terminal(args, inp, stdout_too=True)
    check(shown.count('{"scores"') == 40, f"all 40 results on the terminal ({shown[:200]!r})")
    check("lines/s" not in shown and "\r{" not in shown, f"no progress bar on the terminal the output goes to "
          f"({shown[:300]!r})")
    check(all(l.startswith('{"scores"') for l in shown.replace("\r\n", "\n").split("\n")
              if l and not l.startswith("nimreward-score: ")),   # the start-up line (device, dtype) comes first
          "every terminal line is a whole result")
    shown, piped = on_terminal(args, inp, stdout_too=False)
    check("lines/s" in shown and "40/40 lines" in shown, f"the bar shows on stderr when the output is piped "
          f"({shown[-200:]!r})")
    check(piped.count("\n") == 40 and "lines/s" not in piped, "the piped output has only the results")


def check_inputs(model, tmp):
    score = [tool("nimreward-score"), "--model", model]
    for args, what in ((score, "score"), ([tool("nimreward-tokenize"), "--model", model], "tokenize"),
                       ([tool("nimreward-template"), "--model", model], "template")):
        rc, out, err = run(args + ["-i", tmp])
        check(rc == 1 and "is a directory" in err and not out, f"{what}: -i DIR refused ({rc}, {err.strip()})")
        rc, out, err = run(args, stdin=" ")   # a directory on stdin is rare; an empty-looking one is not
        check(rc == 3 and len(out) == 1, f"{what}: a blank stdin line gives one error line ({rc}, {out})")
    rc, out, _ = run(score + ["-i", "/dev/stdin"], stdin=GOOD + "\n")
    check(rc == 0 and len(out) == 1 and "scores" in out[0], f"-i /dev/stdin reads the pipe ({rc}, {out})")
    rc, out, _ = run(score + ["-i", "-"], stdin=GOOD)
    check(rc == 0 and len(out) == 1, "-i - and no final newline: one line")

    # Empty and blank lines keep the output aligned with the input; CRLF and a BOM are fine.
    text = "\ufeff" + GOOD + "\r\n" + "\n" + "  \t \n" + GOOD + "\n"
    rc, out, _ = run(score, stdin=text)
    check(rc == 3 and len(out) == 4, f"4 input lines, 4 output lines ({out})")
    if len(out) == 4:
        check("scores" in out[0], f"a BOM and CRLF on line 1 are accepted ({out[0]})")
        check(out[1] == {"error": "line 2: empty line"}, f"an empty line says so ({out[1]})")
        check(out[2] == {"error": "line 3: the line holds only whitespace"}, f"a blank line says so ({out[2]})")
        check("scores" in out[3], "the line after them is scored")
    rc, out, _ = run([tool("nimreward-tokenize"), "--model", model],
                     stdin='\ufeff{"text": "hi"}\r\n\n{"text": "there"}\n')
    check(rc == 3 and len(out) == 3 and "ids" in out[0] and out[1] == {"error": "line 2: empty line"} and
          "ids" in out[2], f"tokenize: BOM, CRLF, empty line ({out})")
    rc, out, _ = run([tool("nimreward-template"), "--model", model],
                     stdin='\ufeff{"messages": []}\r\n\n')
    check(rc == 3 and len(out) == 2 and "rendered" in out[0] and out[1] == {"error": "line 2: empty line"},
          f"template: BOM, CRLF, empty line ({out})")


def check_wording(model):
    lines = [json.dumps({"prompt": "p"}), json.dumps({"prompt": 1, "response": "r"}),
             json.dumps({"messages": [{"role": "user"}]}), json.dumps({"messages": [{"role": "user", "content": 5}]}),
             json.dumps({"messages": "hi"}), json.dumps({"prompt": "p", "response": "r", "principles": [1]}), "[1]",
             "{bad"]
    rc, out, _ = run([tool("nimreward-score"), "--model", model], stdin="\n".join(lines) + "\n")
    want = ['line 1: "response" is missing', 'line 2: "prompt" must be a string',
            'line 3: "messages[0].content" is missing', 'line 4: "messages[0].content" must be a string',
            'line 5: "messages" must be a non-empty array', 'line 6: "principles[0]" must be a string',
            "line 7: each line must be a JSON object", "line 8: invalid JSON"]
    check(rc == 3 and len(out) == len(want), f"one error line per bad line ({rc}, {out})")
    for o, w in zip(out, want):
        check(isinstance(o, dict) and o.get("error", "").startswith(w), f"error {o} begins {w!r}")
    rc, out, _ = run([tool("nimreward-tokenize"), "--model", model], stdin='{"txt": "a"}\n{"text": 3}\n')
    check([o.get("error") for o in out] == ['line 1: "text" is missing', 'line 2: "text" must be a string'],
          f"tokenize: missing vs must be a string ({out})")
    rc, out, _ = run([tool("nimreward-template"), "--model", model],
                     stdin='{"msgs": []}\n{"messages": {}}\n{"messages": [], "now": "2021-02-29T00:00:00"}\n')
    want = ['line 1: "messages" is missing', 'line 2: "messages" must be an array',
            'line 3: "now" "2021-02-29T00:00:00": that month has no such day']
    check(rc == 3 and [o.get("error") for o in out] == want, f"template: missing, must be an array, an impossible "
          f"date ({out})")


def check_run_wide(model):
    score = [tool("nimreward-score"), "--model", model]
    many = (GOOD + "\n") * 5
    for flags, words in ((["--now", "2020-13-45T99:99:99"], ['--now "2020-13-45T99:99:99"', "month"]),
                         (["--now", "2020-02-30T10:00:00"], ["--now", "no such day"]),
                         (["--now", "yesterday"], ["--now", "YYYY-MM-DDTHH:MM:SS"]),
                         (["--names", "a,b"], ["--names gives 2 names, the model has 5 scores"]),
                         (["--names", "a,,b,c,d"], ["--names: name 2 is empty"]),
                         (["--names", "a,b,a,c,d"], ['--names: "a" stands twice']),
                         (["--logits-range", "3,1"], ["--logits-range 3,1"]),
                         (["--principle", "is kind"], ["--principle", "classification model"])):
        rc, out, err = run(score + flags, stdin=many)
        check(rc == 2 and not out and err.count("error:") == 1 and all(w in err for w in words),
              f"{flags} refused once with exit 2 in the tool's words ({rc}, {len(out)} lines, {err.strip()!r})")
    rc, out, _ = run(score + ["--names", "a, b,c ,d,e", "--now", "2024-02-29T23:59:59"], stdin=GOOD)
    check(rc == 0 and list(out[0]["scores"]) == ["a", "b", "c", "d", "e"], f"--names renames the scores ({out})")
    rc, out, _ = run(score + ["--names", "a,b,c,d,e"], stdin=GOOD, env={"NIM_REWARD_MODEL_STRING": "x,y"})
    check(rc == 0 and list(out[0]["scores"]) == ["a", "b", "c", "d", "e"], "--names wins over NIM_REWARD_MODEL_STRING")
    rc, out, err = run(score, stdin=GOOD, env={"NIM_REWARD_MODEL_STRING": "x,y"})
    check(rc == 2 and not out and "NIM_REWARD_MODEL_STRING gives 2 names" in err,
          f"a NIM_REWARD_MODEL_STRING that does not fit is refused at start-up ({rc}, {err.strip()})")

    rc, _, err = run([tool("nimreward-score")])
    check(rc == 2 and "--model is required" in err, f"no arguments: --model is required ({err[:80]!r})")
    for name in ("nimreward-score", "nimreward-tokenize", "nimreward-template"):
        rc, out, _ = run([tool(name), "--help"])
        text = "\n".join(map(str, out))
        check(rc == 0 and "stdin" in text and "stdout" in text, f"{name} --help: -i / -o default to stdin / stdout")


def check_numbers(model):
    """Each score as printed is Python's repr of the same double (the shortest that reads back)."""
    text = "\n".join(json.dumps({"prompt": f"Question {i}?", "response": "An answer " * i}) for i in range(12))
    p = subprocess.run([tool("nimreward-score"), "--model", model], input=text.encode(), capture_output=True)
    numbers = re.findall(r'":(-?[0-9][^,}]*)', p.stdout.decode())
    check(p.returncode == 0 and len(numbers) == 60, f"60 scores printed ({len(numbers)})")
    bad = [n for n in numbers if repr(float(n)) != n]
    check(not bad, f"every score is the shortest round-trip text (not: {bad[:3]})")
    check(any(len(n.lstrip("-").replace("0.", "")) > 9 for n in numbers), "more than 9 digits where a double needs them")


def check_templates():
    """--model renders as rm_load would: chat_template.jinja (seqcls) or tokenizer_config.json (causal), with the
    model's bos_token; a line's own bos_token wins."""
    fx = fixtures()
    for name in ("tiny-llama3-seqcls", "tiny-llama3-causal"):
        with open(os.path.join(fx, "reference", name + ".reference.jsonl")) as f:
            rows = [json.loads(l) for l in f][:3]
        stdin = "".join(json.dumps({"messages": r["messages"]}) + "\n" for r in rows)
        rc, out, err = run([tool("nimreward-template"), "--model", os.path.join(fx, "models", name)], stdin=stdin)
        check(rc == 0 and [o.get("rendered") for o in out] == [r["rendered"] for r in rows],
              f"{name}: --model renders as transformers did ({rc}, {err.strip()})")
    rc, out, _ = run([tool("nimreward-template"), "--model", os.path.join(fx, "models", "tiny-llama3-seqcls")],
                     stdin=json.dumps({"messages": rows[0]["messages"], "bos_token": "<BOS>"}) + "\n")
    check(rc == 0 and out[0]["rendered"].startswith("<BOS>"), "a line's bos_token wins over the model's")
    rc, _, err = run([tool("nimreward-template"), "--model", fx])
    check(rc == 1 and "no chat template" in err, f"a directory without a template is named ({err.strip()})")

    causal = os.path.join(fx, "models", "tiny-llama3-causal")
    rc, out, err = run([tool("nimreward-score"), "--model", causal, "--principle", "is correct",
                        "--yes-token", "NotAToken"], stdin=GOOD)
    check(rc == 2 and not out and "--yes-token" in err, f"a --yes-token not in the vocabulary: exit 2 ({err.strip()})")


def check_demo(tmp):
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], capture_output=True,
                       env=dict(os.environ, BUILD=os.environ.get("BUILD", "build")), cwd=ROOT, timeout=300)
    out, err = p.stdout.decode(), p.stderr.decode()
    lines = out.splitlines()
    check(p.returncode == 0 and len(lines) == 5 and all(json.loads(l).keys() == {"scores"} for l in lines),
          "demo: stdout is the five JSON result lines, nothing else")
    check("[1] 'I am going to Paris, what should I see?' -> 'The Louvre" in err and "    helpfulness " in err
          and "[5] 'Say hi.'" in err, f"demo: each conversation previewed beside its scores on stderr ({err[-400:]})")
    dry = subprocess.run(["make", "-n", "BUILD=" + os.path.join(tmp, "fresh-build"), "all"], capture_output=True,
                         cwd=ROOT, env=dict(os.environ, MAKEFLAGS=""))
    rm_lines = [l for l in dry.stdout.decode().splitlines() if re.match(r"rm [^-].*/obj/", l)]
    check(dry.returncode == 0 and not rm_lines, f"a fresh build deletes no intermediates ({rm_lines[:1]})")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "demo")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_demo_model.py"), model], check=True,
                       capture_output=True)
        check_progress(model, tmp)
        check_inputs(model, tmp)
        check_wording(model)
        check_run_wide(model)
        check_numbers(model)
        if not no_fixtures():
            check_templates()
        check_demo(tmp)
    return summary("test_line_tools", 5 if no_fixtures() else 0, no_fixtures())


if __name__ == "__main__":
    sys.exit(main())
