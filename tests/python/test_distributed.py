"""One process per GPU under torch.distributed: rank 0's NCCL unique id is broadcast over the
job's process group and reaches rm_params.nccl_id (nimreward/_distributed.py). torch is not a
test dependency: a stand-in torch.distributed plays the job, ranks 0 and 1 of 2."""
import sys
import types

import pytest
from conftest import model_path

import nimreward
from nimreward import _distributed

ID = bytes(range(128))


def fake_torch(monkeypatch, rank, world, initialised=True):
    """A torch whose process group has `world` ranks; rank 0's broadcast is recorded and rank 1
    receives ID, as broadcast_object_list would deliver it."""
    calls = {"unique_id": 0, "broadcast": []}
    dist = types.ModuleType("torch.distributed")
    dist.is_available = lambda: True
    dist.is_initialized = lambda: initialised
    dist.get_world_size = lambda: world
    dist.get_rank = lambda: rank

    def broadcast_object_list(box, src):
        calls["broadcast"].append((list(box), src))
        box[0] = ID
    dist.broadcast_object_list = broadcast_object_list

    def unique_id():
        calls["unique_id"] += 1
        return ID
    torch = types.ModuleType("torch")
    torch.distributed = dist
    torch.cuda = types.SimpleNamespace(nccl=types.SimpleNamespace(unique_id=unique_id))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.distributed", dist)
    return calls


def test_no_torch_no_id(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch.distributed", raising=False)
    assert _distributed.nccl_id_from_torch(2, "cuda") is None


def test_rank0_makes_and_broadcasts_the_id(monkeypatch):
    calls = fake_torch(monkeypatch, rank=0, world=2)
    assert _distributed.nccl_id_from_torch(2, "auto") == ID
    assert calls["unique_id"] == 1 and calls["broadcast"] == [([ID], 0)]


def test_other_ranks_receive_it(monkeypatch):
    calls = fake_torch(monkeypatch, rank=1, world=2)
    assert _distributed.nccl_id_from_torch(2, "cuda") == ID
    assert calls["unique_id"] == 0 and calls["broadcast"] == [([None], 0)]


@pytest.mark.parametrize("tp, device, world, initialised", [
    (1, "cuda", 2, True),      # nothing to split
    (2, "cpu", 2, True),       # CPU ranks are threads of one process: no NCCL
    (2, "cuda", 4, True),      # the job is larger than the tensor-parallel group: the caller's to arrange
    (2, "cuda", 2, False),     # torch imported, no process group
])
def test_no_broadcast_when_it_does_not_apply(monkeypatch, tp, device, world, initialised):
    calls = fake_torch(monkeypatch, rank=0, world=world, initialised=initialised)
    assert _distributed.nccl_id_from_torch(tp, device) is None
    assert calls["broadcast"] == [] and calls["unique_id"] == 0


def test_a_wrong_id_is_refused(monkeypatch):
    fake_torch(monkeypatch, rank=1, world=2)
    sys.modules["torch.distributed"].broadcast_object_list = lambda box, src: box.__setitem__(0, b"short")
    with pytest.raises(RuntimeError, match="5 bytes"):
        _distributed.nccl_id_from_torch(2, "cuda")
    with pytest.raises(nimreward.InvalidArgumentError, match="128 bytes"):
        nimreward.RewardModel(model_path("tiny-llama3-seqcls"), device="cpu", tp=2, nccl_id=b"short")


def test_a_given_id_loads_cpu_ranks(monkeypatch):
    """The id is only NCCL's business: CPU ranks (threads) load and score with it set."""
    monkeypatch.delitem(sys.modules, "torch.distributed", raising=False)
    with nimreward.RewardModel(model_path("tiny-llama3-seqcls"), device="cpu", tp=2, nccl_id=ID) as rm:
        assert len(rm.score("Is 17 prime?", "Yes.")) == 5
