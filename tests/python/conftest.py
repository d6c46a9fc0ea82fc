"""Shared set-up of the nimreward package tests: the package from python/ in
this checkout, the library from $BUILD/lib (unless NIMREWARD_LIB says
otherwise), the fixtures from ../shared/fixtures (RM_FIXTURES overrides), and
each fixture model loaded once per session."""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
FIX = os.environ.get("RM_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures")
MODELS = os.path.join(FIX, "models")
os.environ.setdefault("NIMREWARD_LIB", os.path.join(BUILD, "lib", "libnimreward.so.0"))
sys.path.insert(0, os.path.join(ROOT, "python"))

import nimreward  # noqa: E402  (after the path and NIMREWARD_LIB are set)

SEQCLS = ["tiny-llama3-seqcls", "tiny-qwen2-seqcls", "tiny-qwen3-seqcls"]
CAUSAL = "tiny-llama3-causal"


def close_enough(got, want):
    """The fixtures' tolerance for the fp32 CPU engine: 1e-4 absolute plus 1e-4 relative."""
    return abs(got - want) <= 1e-4 + 1e-4 * abs(want)


def reference(name):
    with open(os.path.join(FIX, "reference", f"{name}.jsonl")) as f:
        return [json.loads(line) for line in f]


def model_path(name):
    return os.path.join(MODELS, name)


_loaded = {}


def shared_model(name, **kwargs):
    """One model per (name, kwargs) for the whole session (loading takes a moment)."""
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _loaded:
        _loaded[key] = nimreward.RewardModel(model_path(name), device="cpu", **kwargs)
    return _loaded[key]


@pytest.fixture(scope="session")
def seqcls():
    return shared_model("tiny-llama3-seqcls")


@pytest.fixture(scope="session")
def causal():
    return shared_model(CAUSAL)


def pytest_sessionfinish(session, exitstatus):
    for m in _loaded.values():
        m.close()
