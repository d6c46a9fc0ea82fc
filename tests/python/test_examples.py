"""The examples run on fixture models: examples/rlhf_loop.py (Python, through reward_function) and
examples/score.cpp (C++17, built by the Makefile as build/examples/score_cpp)."""
import json
import os
import subprocess
import sys

import pytest
from conftest import BUILD, CAUSAL, ROOT, close_enough, model_path

import nimreward

LOOP = os.path.join(ROOT, "examples", "rlhf_loop.py")


def run_loop(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))   # this checkout's package, not an installed one
    p = subprocess.run([sys.executable, LOOP, "--json", "--threads", "2", *args], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


@pytest.mark.parametrize("model, args, name", [
    ("tiny-llama3-seqcls", ["--name", "helpfulness"], "nimreward_helpfulness"),
    (CAUSAL, ["--principle", "the response is factually correct"], "nimreward_the response is factually correct"),
])
def test_rlhf_loop_learns_from_the_rewards(model, args, name):
    steps = run_loop("--model", model_path(model), "--steps", "6", "--group", "4", "--seed", "3", *args)
    *per_step, last = steps
    assert len(per_step) == 6 and last["reward_function"] == name
    assert all(len(s["rewards"]) == len(s["completions"]) == 12 for s in per_step)   # 3 prompts x 4 rollouts
    # The rewards the loop got are the model's scores for those rollouts.
    principle = args[1] if args[0] == "--principle" else None
    with nimreward.RewardModel(model_path(model), device="cpu") as rm:
        first = per_step[0]
        items = [{"prompt": p, "response": c, "principles": [principle] if principle else None}
                 for p, c in zip(first["prompts"], first["completions"])]
        want = [s[principle or args[1]] for s in rm.score_batch(items)]
    assert all(close_enough(a, b) for a, b in zip(first["rewards"], want))
    # GRPO on these rewards moves the policy towards what the model prefers.
    assert last["expected_reward_after"] > last["expected_reward_before"]


def test_cpp_example_scores_as_the_c_one():
    cpp, c = os.path.join(BUILD, "examples", "score_cpp"), os.path.join(BUILD, "examples", "score")
    assert os.access(cpp, os.X_OK), "make builds examples/score.cpp (-std=c++17 -pedantic -Werror)"
    model = model_path("tiny-llama3-seqcls")
    p = subprocess.run([cpp, model, "Is 17 prime?", "Yes.", "No."], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == ["response 1", "response 2"]
    batch = [dict((k, float(v)) for k, v in (pair.split(":") for pair in line.split(": ", 1)[1].split(",")))
             for line in lines]
    for i, response in enumerate(["Yes.", "No."]):
        q = subprocess.run([c, model, "Is 17 prime?", response], capture_output=True, text=True)
        assert q.returncode == 0, q.stderr
        alone = dict((k, float(v)) for k, v in (line.split(":") for line in q.stdout.split()))
        assert list(batch[i]) == list(alone) == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
        assert all(close_enough(batch[i][k], alone[k]) for k in alone), (batch[i], alone)
    # Errors: a bad model directory exits 1 naming it.
    p = subprocess.run([cpp, "/nonexistent", "q", "r"], capture_output=True, text=True)
    assert p.returncode == 1 and "/nonexistent" in p.stderr
