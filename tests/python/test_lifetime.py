"""No leaked handles: close(), `with` and garbage collection each free the model exactly once
(rm_free runs: its file descriptors and weight mappings are gone), and a closed model refuses calls."""
import gc
import os
import threading
import time

import pytest
from conftest import model_path

import nimreward
from nimreward import _lib

MODEL = model_path("tiny-qwen3-seqcls")
WEIGHTS = os.path.realpath(os.path.join(MODEL, "model.safetensors"))


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def weights_mapped():
    with open("/proc/self/maps") as f:
        return sum(WEIGHTS in line for line in f)


@pytest.fixture
def freed(monkeypatch):
    """The handles rm_free is called with, in order (the real rm_free still runs)."""
    calls = []
    real = _lib.lib.rm_free

    def spy(handle):
        calls.append(handle)
        real(handle)

    monkeypatch.setattr(_lib.lib, "rm_free", spy)
    return calls


def test_close_frees_once(freed):
    assert weights_mapped() == 0
    rm = nimreward.RewardModel(MODEL, device="cpu")
    handle = rm._handle
    assert weights_mapped() > 0, "the weights are mapped while the model is open"
    rm.close()
    rm.close()
    assert freed == [handle] and rm.closed
    assert weights_mapped() == 0
    with pytest.raises(nimreward.InvalidArgumentError, match="closed"):
        rm.score("a", "b")
    with pytest.raises(nimreward.InvalidArgumentError, match="closed"):
        rm.tokenize("a")
    assert "closed" in repr(rm)
    del rm
    gc.collect()
    assert len(freed) == 1


def test_garbage_collection_frees(freed):
    rm = nimreward.RewardModel(MODEL, device="cpu")
    handle = rm._handle
    rm.score("a", "b")
    del rm
    gc.collect()
    assert freed == [handle] and weights_mapped() == 0


def test_context_manager_frees_even_on_error(freed):
    with pytest.raises(nimreward.InvalidArgumentError):
        with nimreward.RewardModel(MODEL, device="cpu") as rm:
            rm.score_messages([{"role": "user"}])
    assert len(freed) == 1 and rm.closed and weights_mapped() == 0


def test_no_descriptor_or_mapping_leaks():
    nimreward.RewardModel(MODEL, device="cpu").close()   # warm: OpenMP and BLAS start their threads once
    fds = open_fds()
    for _ in range(3):
        with nimreward.RewardModel(MODEL, device="cpu") as rm:
            rm.score_batch([{"prompt": "a", "response": "b"}] * 3)
            rm.tokenize_messages([{"role": "user", "content": "a"}])
            rm.render([{"role": "user", "content": "a"}])
        for bad in ("/nonexistent", os.path.dirname(MODEL)):
            with pytest.raises(nimreward.RewardError):
                nimreward.RewardModel(bad)
    assert open_fds() == fds and weights_mapped() == 0


def test_close_waits_for_calls_in_flight(monkeypatch):
    events = []   # (what, time), in the order they happened
    real_score, real_free = _lib.lib.rm_score_batch, _lib.lib.rm_free

    def score_spy(*args):
        events.append(("score enters", time.monotonic()))
        status = real_score(*args)
        events.append(("score returns", time.monotonic()))
        return status

    def free_spy(handle):
        events.append(("rm_free", time.monotonic()))
        real_free(handle)

    monkeypatch.setattr(_lib.lib, "rm_score_batch", score_spy)
    monkeypatch.setattr(_lib.lib, "rm_free", free_spy)
    rm = nimreward.RewardModel(MODEL, device="cpu", threads=1)
    items = [{"prompt": f"question {i} " * 20, "response": f"answer {i} " * 40} for i in range(600)]
    results = []
    t = threading.Thread(target=lambda: results.append(rm.score_batch(items)))
    t.start()
    while not events:   # wait until the batch is inside the library
        time.sleep(0.001)
    events.append(("close called", time.monotonic()))
    rm.close()
    events.append(("close returns", time.monotonic()))
    t.join()
    order = [what for what, _ in events]
    assert order == ["score enters", "close called", "score returns", "rm_free", "close returns"], order
    assert len(results[0]) == len(items) and all(len(r) == 1 for r in results[0])
