#!/usr/bin/env python3
"""The command-line contract of nimreward-score and nimreward-tokenize
(scripts outside the project depend on it): one output line per input line,
in order; {"error"} for a bad line and the rest still scored; exit 0 / 3 /
other; --tokens; principles; the demo."""
import json
import os
import subprocess
import sys
import tempfile

from testlib import check, no_fixtures, skip, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
FIX = os.environ.get("RM_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures")


def run(tool, args, lines, env=None):
    # The references are fp32: nimreward-score runs on the CPU unless a test
    # names a device (auto would pick CUDA's bf16 on a machine with a GPU).
    if tool == "nimreward-score" and "--device" not in args:
        args = args + ["--device", "cpu"]
    text = "".join(line + "\n" for line in lines)
    p = subprocess.run([os.path.join(BUILD, "bin", tool)] + args, input=text.encode(), capture_output=True,
                       env=dict(os.environ, **(env or {})))
    out = [json.loads(l) for l in p.stdout.decode().splitlines()]
    return p.returncode, out, p.stderr.decode()


def rows(name):
    with open(os.path.join(FIX, "reference", name)) as f:
        return [json.loads(l) for l in f]


def main():
    if no_fixtures():
        return skip("test_cli", 34, no_fixtures())
    seqcls = os.path.join(FIX, "models", "tiny-llama3-seqcls")
    causal = os.path.join(FIX, "models", "tiny-llama3-causal")
    ref = rows("tiny-llama3-seqcls.reference.jsonl")[:4]

    # Good lines, a bad one in the middle: order kept, exit 3, the rest scored.
    inp = [json.dumps({"messages": r["messages"]}) for r in ref]
    inp.insert(2, "{not json")
    inp.insert(3, json.dumps({"prompt": "only a prompt"}))
    rc, out, err = run("nimreward-score", ["--model", seqcls, "--tokens"], inp)
    check(rc == 3, f"exit 3 when some lines fail (got {rc}: {err})")
    check(len(out) == len(inp), f"{len(out)} output lines for {len(inp)} input lines")
    if len(out) == len(inp):
        check("error" in out[2] and "error" in out[3], "bad lines give {\"error\"}")
        good = [o for o in out if "scores" in o]
        check(len(good) == len(ref), "good lines after a bad one are still scored")
        for o, r in zip(good, ref):
            check(list(o["scores"]) == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"],
                  "score names from id2label, in label order")
            check(o["tokens"] == r["ids"], "--tokens gives the ids the model saw")
            check(all(abs(a - b) <= 1e-4 + 1e-4 * abs(b) for a, b in zip(o["scores"].values(), r["scores_fp32"])),
                  "scores match transformers")

    rc, out, _ = run("nimreward-score", ["--model", seqcls], [json.dumps({"prompt": "Hi", "response": "Hello!"})])
    check(rc == 0 and len(out) == 1 and len(out[0].get("scores", {})) == 5, "prompt/response line scores, exit 0")

    # Principles: flags, a line's own list replacing them, tokens as one list per principle.
    pref = rows("tiny-llama3-causal.principle.reference.jsonl")[0]
    line = {"messages": pref["messages"]}
    rc, out, err = run("nimreward-score", ["--model", causal, "--principle", pref["principle"], "--principle", "is concise",
                                           "--tokens"], [json.dumps(line), json.dumps(dict(line, principles=["is polite"]))])
    check(rc == 0, f"principles score (exit {rc}: {err})")
    if rc == 0 and len(out) == 2:
        check(list(out[0]["scores"]) == [pref["principle"], "is concise"], "scores named after the principles")
        check(abs(out[0]["scores"][pref["principle"]] - pref["reward_fp32"]) <= 1e-4 + 1e-4 * abs(pref["reward_fp32"]),
              "principle reward matches transformers")
        check(isinstance(out[0]["tokens"][0], list) and out[0]["tokens"][0] == pref["ids"], "tokens: a list per principle")
        check(list(out[1]["scores"]) == ["is polite"], "a line's own principles replace the flags")

    # Logits range and names.
    rc, out, _ = run("nimreward-score", ["--model", causal, "--logits-range", "0,3", "--names", "a,b,c"],
                     [json.dumps({"prompt": "Hi", "response": "Hello!"})])
    check(rc == 0 and list(out[0]["scores"]) == ["a", "b", "c"], "--logits-range with --names")
    rc, out, _ = run("nimreward-score", ["--model", causal], [json.dumps({"prompt": "Hi", "response": "Hello!"})])
    check(rc == 0 and list(out[0]["scores"]) == ["reward"], "causal model default: logit 0 named reward")

    # NIM's environment variables as defaults; flags win over them.
    nim = {"NIM_REWARD_LOGITS_RANGE": "3,5", "NIM_REWARD_MODEL_STRING": "x,y"}
    rc, out, err = run("nimreward-score", ["--model", causal], [json.dumps({"prompt": "Hi", "response": "Hello!"})], nim)
    check(rc == 0 and list(out[0]["scores"]) == ["x", "y"], f"NIM_REWARD_LOGITS_RANGE / _MODEL_STRING honoured ({err})")
    rc, out2, _ = run("nimreward-score", ["--model", causal, "--logits-range", "3,5"],
                      [json.dumps({"prompt": "Hi", "response": "Hello!"})])
    if rc == 0 and out and "scores" in out[0]:
        check(list(out2[0]["scores"].values()) == list(out[0]["scores"].values()), "env range = the same rows as the flag")
    rc, _, err = run("nimreward-score", ["--model", causal], [], {"NIM_REWARD_LOGITS_RANGE": "3;5"})
    check(rc not in (0, 3) and "NIM_REWARD_LOGITS_RANGE" in err, "a malformed NIM_REWARD_LOGITS_RANGE is named")

    # Fatal errors: not 0, not 3.
    rc, _, err = run("nimreward-score", ["--model", "/nonexistent"], [])
    check(rc not in (0, 3) and "/nonexistent" in err, f"missing model is fatal and named ({rc}: {err.strip()})")
    rc, _, err = run("nimreward-score", ["--model", seqcls, "--device", "cuda"], [])
    if os.path.exists(os.path.join(BUILD, "lib", "nimreward", "libnimreward-cuda.so")):
        check(rc in (0, 3) or "cuda" in err, f"--device cuda either runs or names why not ({rc})")
    else:
        check(rc not in (0, 3) and "cuda" in err, f"--device cuda without a CUDA build is fatal ({rc})")
    rc, _, _ = run("nimreward-score", ["--model", seqcls, "--bogus"], [])
    check(rc not in (0, 3), "unknown option")

    # -i / -o files.
    with tempfile.TemporaryDirectory() as d:
        i, o = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        with open(i, "w") as f:
            f.write(json.dumps({"prompt": "Hi", "response": "Hello!"}) + "\n")
        p = subprocess.run([os.path.join(BUILD, "bin", "nimreward-score"), "--model", seqcls, "-i", i, "-o", o],
                           capture_output=True)
        check(p.returncode == 0 and len(open(o).read().splitlines()) == 1, "-i and -o files")

    # The examples, linked against the shared library as a user's program is.
    p = subprocess.run([os.path.join(BUILD, "examples", "score"), seqcls, "Is 17 prime?", "Yes."], capture_output=True)
    lines = p.stdout.decode().splitlines()
    check(p.returncode == 0 and [l.split(":")[0] for l in lines] ==
          ["helpfulness", "correctness", "coherence", "complexity", "verbosity"], f"examples/score ({p.stderr.decode()})")
    p = subprocess.run([os.path.join(BUILD, "examples", "batch"), seqcls], capture_output=True)
    check(p.returncode == 0 and p.stdout.decode().count("response ") == 3, f"examples/batch ({p.stderr.decode()})")

    # The demo: the README's first command, on the built-in demo model.
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], capture_output=True,
                       env=dict(os.environ, BUILD=os.environ.get("BUILD", "build")))
    lines = p.stdout.decode().splitlines()
    check(p.returncode == 0 and len(lines) == 5 and all("scores" in json.loads(l) for l in lines),
          f"demo scores the examples (exit {p.returncode}: {p.stderr.decode()[-300:]})")

    return summary("test_cli")


if __name__ == "__main__":
    sys.exit(main())
