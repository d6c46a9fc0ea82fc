#!/usr/bin/env python3
"""What the demo scored: each conversation of IN.jsonl, cut short, beside its
scores from the nimreward-score output read on stdin. Written for a person
(the demo prints it on stderr; the JSON lines on stdout stay as they are).

    nimreward-score ... -i IN.jsonl | python3 scripts/demo_preview.py IN.jsonl

Only the Python standard library is used."""
import json
import sys

WIDTH = 44   # characters of each turn shown


def short(text):
    text = " ".join(text.split())   # newlines and runs of spaces as one space
    return text if len(text) <= WIDTH else text[:WIDTH - 1] + "\u2026"


def turns(line):
    """The prompt and the response a line scores: the last user turn and the last assistant turn."""
    if "messages" in line:
        msgs = [m for m in line["messages"] if isinstance(m, dict)]
        user = [m.get("content", "") for m in msgs if m.get("role") == "user"]
        reply = [m.get("content", "") for m in msgs if m.get("role") == "assistant"]
        return (user or [""])[-1], (reply or [""])[-1]
    return line.get("prompt", ""), line.get("response", "")


def main():
    with open(sys.argv[1], encoding="utf-8-sig") as f:
        inputs = [l for l in f.read().split("\n") if l.strip()]
    results = [l for l in sys.stdin.read().split("\n") if l]
    for i, (src, out) in enumerate(zip(inputs, results), 1):
        try:
            prompt, response = turns(json.loads(src))
        except (ValueError, AttributeError):
            prompt, response = src, ""
        print(f"[{i}] {short(str(prompt))!r} -> {short(str(response))!r}")
        res = json.loads(out)
        if "scores" in res:
            print("    " + "  ".join(f"{k} {v:.4g}" for k, v in res["scores"].items()))
        else:
            print("    error: " + res.get("error", "?"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
