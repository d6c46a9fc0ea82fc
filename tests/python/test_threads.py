"""Several Python threads share one model: each gets the scores it would get alone, and the GIL is
released while the library works (other Python threads keep running)."""
import threading
import time

from conftest import close_enough, model_path

import nimreward
from nimreward import _lib


def conversations(seed, n):
    return [{"prompt": f"Question {seed}.{i}: what is {i} + {seed}?", "response": f"It is {i + seed}." * (1 + i % 3)}
            for i in range(n)]


def test_threads_get_their_own_scores(seqcls):
    batches = [conversations(seed, 6) for seed in range(8)]
    alone = [seqcls.score_batch(b) for b in batches]
    together = [None] * len(batches)
    errors = []

    def work(k):
        try:
            for _ in range(3):
                together[k] = seqcls.score_batch(batches[k])
                assert seqcls.tokenize(f"thread {k}") == seqcls.tokenize(f"thread {k}")
        except Exception as e:   # reported below, in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, (a, b) in enumerate(zip(alone, together)):
        for x, y in zip(a, b):
            assert list(x) == list(y) and all(close_enough(x[n], y[n]) for n in x), f"thread {k}"


def test_errors_stay_with_their_thread(seqcls):
    # rm_errmsg is per thread: a thread's failure never shows up as another's message.
    messages = {}

    def fail(k):
        try:
            seqcls.score_messages([{"role": "user", "content": f"thread {k}"}], principles=[f"principle {k}"])
        except nimreward.InvalidArgumentError as e:
            messages[k] = str(e)

    threads = [threading.Thread(target=fail, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(messages) == 6 and all("classification" in m for m in messages.values())


def test_gil_is_released_during_a_call(monkeypatch):
    window = []   # when the worker's rm_score_batch entered and left the library
    real = _lib.lib.rm_score_batch

    def timed(*args):
        window.append(time.monotonic())
        status = real(*args)
        window.append(time.monotonic())
        return status

    monkeypatch.setattr(_lib.lib, "rm_score_batch", timed)
    with nimreward.RewardModel(model_path("tiny-llama3-seqcls"), device="cpu", threads=1) as rm:
        items = [{"prompt": f"question {i} " * 20, "response": f"answer {i} " * 40} for i in range(800)]
        done = threading.Event()
        worker = threading.Thread(target=lambda: (rm.score_batch(items), done.set()))
        ticks = []   # the main thread's loop, timestamped, while the worker scores
        worker.start()
        while not done.is_set():
            ticks.append(time.monotonic())
        worker.join()
    enter, leave = window
    inside = [t for t in ticks if enter <= t <= leave]
    assert leave - enter > 0.1, "the call should be long enough to measure"
    # With the GIL held through the call the main thread could not run inside it (a few ms at most,
    # before the switch); released, it runs all the way through.
    assert inside and inside[-1] - inside[0] >= 0.8 * (leave - enter), (len(inside), leave - enter)
