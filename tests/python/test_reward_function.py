"""nimreward.reward_function has the reward-function contract of TRL's GRPOTrainer, checked as TRL
calls it (without TRL): f(prompts=..., completions=..., **columns) -> list[float], named by __name__,
with standard (string) and conversational (message list) inputs, one batched call for all."""
import inspect

import pytest
from conftest import CAUSAL, close_enough, reference, shared_model

import nimreward
from nimreward import _lib

QUESTIONS = ["I am going to Paris, what should I see?", "Is 17 prime?", "Write a haiku."]
ANSWERS = ["The Louvre and the Eiffel Tower.", "Yes.", "Leaves fall / the wind hums / the year sleeps"]


def direct(rm, name, questions, answers, principle=None):
    items = [{"prompt": q, "response": a, "principles": [principle] if principle else None}
             for q, a in zip(questions, answers)]
    return [s[principle or name] for s in rm.score_batch(items)]


@pytest.fixture
def calls(monkeypatch):
    """How many rm_score_batch calls were made, and with how many items each."""
    sizes = []
    real = _lib.lib.rm_score_batch

    def spy(model, items, n, out):
        sizes.append(n)
        return real(model, items, n, out)

    monkeypatch.setattr(_lib.lib, "rm_score_batch", spy)
    return sizes


def test_standard_format(seqcls, calls):
    f = nimreward.reward_function(seqcls, name="correctness")
    assert f.__name__ == "nimreward_correctness" and f.__qualname__ == f.__name__
    assert list(inspect.signature(f).parameters) == ["prompts", "completions", "kwargs"]
    want = direct(seqcls, "correctness", QUESTIONS, ANSWERS)
    calls.clear()
    got = f(prompts=QUESTIONS, completions=ANSWERS, completion_ids=[[1, 2]] * 3, trainer_state=object(),
            ground_truth=["x"] * 3)   # TRL's extra keyword arguments are ignored
    assert calls == [3], "one batched call scores them all"
    assert type(got) is list and all(type(v) is float for v in got)
    assert all(close_enough(a, b) for a, b in zip(got, want))


def test_conversational_format(seqcls, calls):
    f = nimreward.reward_function(seqcls, name="helpfulness")
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}] for q in QUESTIONS]
    completions = [[{"role": "assistant", "content": a}] for a in ANSWERS]
    calls.clear()
    got = f(prompts, completions)
    assert calls == [3]
    want = [s["helpfulness"] for s in seqcls.score_batch([{"messages": p + c} for p, c in zip(prompts, completions)])]
    assert all(close_enough(a, b) for a, b in zip(got, want))
    # A conversational prompt of one user turn scores as the string prompt does.
    one_turn = f([[{"role": "user", "content": q}] for q in QUESTIONS], completions)
    assert all(close_enough(a, b) for a, b in zip(one_turn, f(QUESTIONS, ANSWERS)))


def test_scores_match_transformers_through_the_function():
    rm = shared_model("tiny-qwen3-seqcls")
    rows = reference("tiny-qwen3-seqcls.reference")
    f = nimreward.reward_function(rm)   # one score: the name may be omitted
    assert f.__name__ == "nimreward_LABEL_0"
    prompts = [r["messages"][:-1] for r in rows]
    completions = [r["messages"][-1:] for r in rows]
    assert all(close_enough(a, r["scores_fp32"][0]) for a, r in zip(f(prompts, completions), rows))


def test_name_required_with_several_scores(seqcls):
    with pytest.raises(nimreward.InvalidArgumentError, match="pick one with name=.*helpfulness"):
        nimreward.reward_function(seqcls)
    with pytest.raises(nimreward.InvalidArgumentError, match="not a score"):
        nimreward.reward_function(seqcls, name="harmlessness")


def test_principles(causal, calls):
    every = reference(f"{CAUSAL}.principle.reference")
    principle = every[0]["principle"]
    rows = [r for r in every if r["principle"] == principle]   # each conversation, this principle
    f = nimreward.reward_function(causal, principles=[principle])
    assert f.__name__ == f"nimreward_{principle}"
    prompts = [r["messages"][:-1] for r in rows]
    completions = [r["messages"][-1:] for r in rows]
    calls.clear()
    got = f(prompts, completions)
    assert calls == [len(rows)] and len(rows) > 1
    assert all(close_enough(g, r["reward_fp32"]) for g, r in zip(got, rows))
    # Named principles: the name is the function's; only the chosen one is computed.
    named = nimreward.reward_function(causal, "correct", principles={"correct": principle, "brief": "is brief"})
    assert named.__name__ == "nimreward_correct"
    causal.reset_counters()
    assert all(close_enough(a, b) for a, b in zip(named(prompts, completions), got))
    assert causal.counters()["sequences"] == len(rows)
    with pytest.raises(nimreward.InvalidArgumentError, match="pick one"):
        nimreward.reward_function(causal, principles=["a", "b"])


def test_principles_refused_on_a_classification_model(seqcls):
    with pytest.raises(nimreward.InvalidArgumentError, match="classification"):
        nimreward.reward_function(seqcls, "helpfulness", principles=["is correct"])


@pytest.mark.parametrize("prompts, completions, match", [
    (["a", "b"], ["x"], "2 prompts but 1 completions"),
    ([3], ["x"], "prompt 0 must be a str or a list"),
    (["a"], [[{"role": "assistant"}]], "message 1 must be a mapping"),
])
def test_bad_input(seqcls, prompts, completions, match):
    f = nimreward.reward_function(seqcls, "verbosity")
    with pytest.raises(nimreward.InvalidArgumentError, match=match):
        f(prompts, completions)


def test_a_failing_rollout(seqcls):
    with nimreward.RewardModel(seqcls.path, device="cpu", max_tokens=80) as rm:
        long = "very " * 200
        strict = nimreward.reward_function(rm, "coherence")
        with pytest.raises(nimreward.TooLongError, match="item 1"):
            strict(["q", "q", "q"], ["short", long, "short"])
        lenient = nimreward.reward_function(rm, "coherence", on_error="none")
        got = lenient(["q", "q", "q"], ["short", long, "short"])
        assert got[1] is None and got[0] == got[2] and isinstance(got[0], float)
    with pytest.raises(nimreward.InvalidArgumentError, match="on_error"):
        nimreward.reward_function(seqcls, "coherence", on_error="ignore")


def test_empty_batch(seqcls):
    assert nimreward.reward_function(seqcls, "complexity")([], []) == []
