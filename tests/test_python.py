#!/usr/bin/env python3
"""The ctypes bindings (python/nimreward.py) against the fixtures."""
import json
import os
import sys

from testlib import check, no_fixtures, sanitizer_preload, skip, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
FIX = os.environ.get("RM_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures")


def main():
    if no_fixtures():
        return skip("test_python", 10, no_fixtures())
    preload = sanitizer_preload("test_python", 10)   # returns only when it cannot preload libasan
    if preload is not None:
        return preload
    import nimreward
    with open(os.path.join(FIX, "reference", "tiny-llama3-seqcls.reference.jsonl")) as f:
        rows = [json.loads(l) for l in f][:3]
    with nimreward.RewardModel(os.path.join(FIX, "models", "tiny-llama3-seqcls"), device="cpu") as rm:
        out = rm.score_batch([{"messages": r["messages"]} for r in rows])
        for o, r in zip(out, rows):
            check(list(o) == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"], "names")
            check(all(abs(a - b) <= 1e-4 + 1e-4 * abs(b) for a, b in zip(o.values(), r["scores_fp32"])), "values")
        check(rm.render(rows[0]["messages"]) == rows[0]["rendered"], "render")
        one = rm.score("Is 17 prime?", "Yes.")
        check(one == rm.score_batch([{"prompt": "Is 17 prime?", "response": "Yes."}])[0], "score = a batch of one")
        try:
            rm.score_messages([{"role": "user", "content": "hi"}], principles=["p"])
            check(False, "principle on a classification model raises")
        except nimreward.RewardError as e:
            check(e.status == 1 and "classification" in str(e), f"error names why: {e}")
    try:
        nimreward.RewardModel("/nonexistent")
        check(False, "missing model raises")
    except nimreward.RewardError as e:
        check(e.status == 2 and "/nonexistent" in str(e), "missing model: RM_ERR_IO naming the path")
    return summary("test_python")


if __name__ == "__main__":
    sys.exit(main())
