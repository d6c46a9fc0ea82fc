"""RewardModel against what transformers wrote: scores, names, rendered prompts and token ids, on
every fixture model."""
import json
import os

import pytest
from conftest import CAUSAL, FIX, SEQCLS, close_enough, reference, shared_model

import nimreward


def label_names(name):
    with open(os.path.join(FIX, "models", name, "config.json")) as f:
        id2label = json.load(f).get("id2label", {})
    return [id2label[k] for k in sorted(id2label, key=int)]


@pytest.mark.parametrize("name", SEQCLS)
def test_classification_scores_match_transformers(name):
    rm = shared_model(name)
    rows = reference(f"{name}.reference")
    assert rm.names == label_names(name) and rm.head == "classifier"
    out = rm.score_batch([{"messages": r["messages"]} for r in rows])
    for i, (got, row) in enumerate(zip(out, rows)):
        assert list(got) == rm.names, f"row {i}"
        for (label, value), want in zip(got.items(), row["scores_fp32"]):
            assert close_enough(value, want), f"{name} row {i} {label}: {value} vs transformers {want}"


@pytest.mark.parametrize("name", SEQCLS + [CAUSAL])
def test_rendered_prompt_and_ids_are_exact(name):
    rm = shared_model(name)
    for i, row in enumerate(reference(f"{name}.reference")):
        assert rm.render(row["messages"]) == row["rendered"], f"{name} row {i}"
        assert rm.tokenize_messages(row["messages"]) == row["ids"], f"{name} row {i}"


def test_causal_logits_match_transformers():
    rm = shared_model(CAUSAL, logits_range=(0, 8))
    assert rm.head == "logits" and rm.names == [f"logit_{i}" for i in range(8)]
    rows = reference(f"{CAUSAL}.reference")
    for i, (got, row) in enumerate(zip(rm.score_batch([{"messages": r["messages"]} for r in rows]), rows)):
        assert all(close_enough(a, b) for a, b in zip(got.values(), row["scores_fp32"])), f"row {i}"


def test_default_logits_head_is_nim_reward(causal):
    # NIM's convention for Nemotron-Reward: the score is logit 0, named "reward".
    row = reference(f"{CAUSAL}.reference")[0]
    assert causal.names == ["reward"]
    assert close_enough(causal.score_messages(row["messages"])["reward"], row["scores_fp32"][0])


def test_principles_match_transformers(causal):
    rows = reference(f"{CAUSAL}.principle.reference")
    out = causal.score_batch([{"messages": r["messages"], "principles": [r["principle"]]} for r in rows])
    for i, (got, row) in enumerate(zip(out, rows)):
        assert list(got) == [row["principle"]], f"row {i}: a principle's score is named after it"
        assert close_enough(got[row["principle"]], row["reward_fp32"]), f"row {i}"


def test_several_principles_equal_one_at_a_time(causal):
    row = reference(f"{CAUSAL}.principle.reference")[0]
    ps = ["the response is factually correct", "the response is concise", "the response is polite"]
    together = causal.score_messages(row["messages"], principles=ps)
    assert list(together) == ps
    for p in ps:
        assert close_enough(together[p], causal.score_messages(row["messages"], principles=[p])[p])


def test_tokenize_is_plain_text():
    rm = shared_model("tiny-llama3-seqcls")
    with open(os.path.join(FIX, "tokenizer", "llama3", "cases.jsonl")) as f:
        cases = [json.loads(line) for line in f]
    for case in cases:
        assert rm.tokenize(case["text"]) == case["ids"], repr(case["text"][:60])
    # A NUL travels (tokenize takes a length), and a special-token string is plain text.
    assert rm.tokenize("a\0b") == rm.tokenize("a") + rm.tokenize("\0") + rm.tokenize("b")
    assert 128009 not in rm.tokenize("<|eot_id|>")


def test_score_is_a_batch_of_one(seqcls):
    one = seqcls.score("Is 17 prime?", "Yes.")
    assert one == seqcls.score_batch([{"prompt": "Is 17 prime?", "response": "Yes."}])[0]
    assert one == seqcls.score_messages([{"role": "user", "content": "Is 17 prime?"},
                                         {"role": "assistant", "content": "Yes."}])
    assert seqcls.score_batch([]) == []


def test_introspection(seqcls, causal):
    assert seqcls.device == "cpu" and seqcls.dtype == "fp32"
    assert seqcls.architecture == "LlamaForSequenceClassification" and causal.architecture == "LlamaForCausalLM"
    assert seqcls.n_ctx > 0 and causal.n_layers == 3
    assert nimreward.__version__.count(".") == 2


def test_one_batch_is_one_forward_pass(seqcls):
    seqcls.reset_counters()
    seqcls.score_batch([{"prompt": "Is 17 prime?", "response": r} for r in ("Yes.", "No.", "Maybe.")])
    c = seqcls.counters()
    assert c["forward_passes"] == 1 and c["sequences"] == 3 and c["tokens_input"] > 0


def test_load_options_reach_the_library():
    names = ["a", "b", "c", "d", "e"]
    rm = nimreward.RewardModel(os.path.join(FIX, "models", "tiny-llama3-seqcls"), device="cpu", threads=1,
                               names=names, max_tokens=64)
    try:
        assert rm.names == names
        assert list(rm.score("hi", "hello")) == names
        assert rm.n_ctx == 64
    finally:
        rm.close()
    template = "{{ strftime_now('%d %b %Y') }}|{{ messages[0]['content'] }}|{{ messages[1]['content'] }}"
    with nimreward.RewardModel(os.path.join(FIX, "models", "tiny-qwen3-seqcls"), device="cpu",
                               chat_template=template, now="2025-01-02T03:04:05") as rm:
        conversation = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        assert rm.render(conversation) == "02 Jan 2025|x|y"
        assert rm.tokenize_messages(conversation) == rm.tokenize("02 Jan 2025|x|y")
