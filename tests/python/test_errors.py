"""Bad paths and bad input raise the RewardError subclass of their rm_status, with a message naming
the cause, and the model keeps working after them."""
import os
import pickle

import pytest
from conftest import FIX, model_path

import nimreward
from nimreward import errors

CONVERSATION = [{"role": "user", "content": "Is 17 prime?"}, {"role": "assistant", "content": "Yes."}]


def test_one_subclass_per_status():
    statuses = sorted(errors.BY_STATUS)
    assert statuses == list(range(1, 13))   # every rm_status but RM_OK in include/nimreward.h
    for status, cls in errors.BY_STATUS.items():
        assert issubclass(cls, nimreward.RewardError) and cls.status == status
        e = errors.error_for(status, "why")
        assert type(e) is cls and e.status == status and e.message == "why" and str(e).startswith("why (")
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is cls and again.status == status and str(again) == str(e)
    assert type(errors.error_for(99, "new")) is nimreward.RewardError


def test_missing_model_is_a_file_error():
    with pytest.raises(nimreward.FileAccessError) as e:
        nimreward.RewardModel("/nonexistent/model")
    assert e.value.status == 2 and "/nonexistent/model" in str(e.value)
    assert isinstance(e.value, OSError) and isinstance(e.value, nimreward.RewardError)


def test_malformed_config_is_a_format_error(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], ')
    with pytest.raises(nimreward.FormatError) as e:
        nimreward.RewardModel(tmp_path)   # os.PathLike accepted
    assert e.value.status == 3 and "config.json" in str(e.value)


def test_missing_weights_is_a_file_error(tmp_path):
    with open(os.path.join(model_path("tiny-qwen3-seqcls"), "config.json")) as f:
        (tmp_path / "config.json").write_text(f.read())
    with pytest.raises(nimreward.FileAccessError) as e:
        nimreward.RewardModel(str(tmp_path), device="cpu")
    assert "safetensors" in str(e.value)


def test_bad_template_is_a_template_error():
    with pytest.raises(nimreward.TemplateError) as e:
        nimreward.RewardModel(model_path("tiny-qwen3-seqcls"), device="cpu", chat_template="{% if %}")
    assert e.value.status == 6


@pytest.mark.parametrize("kwargs, what", [
    ({"device": "gpu"}, "device"), ({"dtype": "fp16"}, "dtype"), ({"head": "regression"}, "head"),
    ({"threads": -1}, "threads"), ({"gpu": -1}, "gpu"), ({"max_tokens": 1.5}, "max_tokens"),
    ({"logits_range": (3, 3)}, "logits_range"), ({"names": 5}, "names"),
])
def test_bad_load_arguments_are_invalid_argument(kwargs, what):
    with pytest.raises(nimreward.InvalidArgumentError) as e:
        nimreward.RewardModel(model_path("tiny-qwen3-seqcls"), **kwargs)
    assert what in str(e.value) and isinstance(e.value, ValueError)


def test_dtype_the_cpu_cannot_run_is_refused():
    with pytest.raises(nimreward.RewardError) as e:
        nimreward.RewardModel(model_path("tiny-qwen3-seqcls"), device="cpu", dtype="fp8")
    assert "fp8" in str(e.value).lower()


def test_bf16_on_the_cpu(seqcls):
    with nimreward.RewardModel(model_path("tiny-llama3-seqcls"), device="cpu", dtype="bf16") as rm:
        assert rm.dtype == "bf16"
        got, want = rm.score_messages(CONVERSATION), seqcls.score_messages(CONVERSATION)
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) <= 3e-2 for k in got)   # the fixtures' bf16 tolerance


def test_principles_on_a_classification_model(seqcls):
    with pytest.raises(nimreward.InvalidArgumentError) as e:
        seqcls.score_messages(CONVERSATION, principles=["is correct"])
    assert e.value.status == 1 and "classification" in str(e.value)


@pytest.mark.parametrize("messages, cls, what", [
    ([{"role": "user"}], nimreward.InvalidArgumentError, "message 0"),
    ("hello", nimreward.InvalidArgumentError, "list"),
    ([{"role": "user", "content": 3}], nimreward.InvalidArgumentError, "content must be a str"),
    ([{"role": "user", "content": "a\0b"}], nimreward.InvalidArgumentError, "NUL"),
    ([{"role": "user", "content": "bad \udcff"}], nimreward.InvalidUTF8Error, "UTF-8"),
])
def test_bad_messages(seqcls, messages, cls, what):
    with pytest.raises(cls) as e:
        seqcls.score_messages(messages)
    assert what in str(e.value)
    with pytest.raises(cls):
        seqcls.render(messages)


def test_bad_items(seqcls):
    with pytest.raises(nimreward.InvalidArgumentError, match="item 1 has neither"):
        seqcls.score_batch([{"prompt": "a", "response": "b"}, {"prompt": "a"}])
    with pytest.raises(nimreward.InvalidArgumentError, match="not one string"):
        seqcls.score_batch([{"prompt": "a", "response": "b", "principles": "is correct"}])
    with pytest.raises(nimreward.InvalidUTF8Error):
        seqcls.tokenize("\ud800")


def test_too_long_fails_its_item_only():
    with nimreward.RewardModel(model_path("tiny-qwen3-seqcls"), device="cpu", max_tokens=64) as rm:
        long = "word " * 100
        with pytest.raises(nimreward.TooLongError) as e:
            rm.score("hi", long)
        assert e.value.status == 8 and "item 0" in str(e.value)
        out = rm.score_batch([{"prompt": "hi", "response": "ok"}, {"prompt": "hi", "response": long}],
                             return_errors=True)
        assert isinstance(out[0], dict) and isinstance(out[1], nimreward.TooLongError)
        assert "item 1" in str(out[1])
        with pytest.raises(nimreward.TooLongError):
            rm.score_batch([{"prompt": "hi", "response": "ok"}, {"prompt": "hi", "response": long}])
        assert rm.score("hi", "ok") == out[0]   # still serving


def test_fixture_still_scores_after_errors(seqcls):
    assert list(seqcls.score("Is 17 prime?", "Yes.")) == seqcls.names
    assert os.path.isdir(FIX)
