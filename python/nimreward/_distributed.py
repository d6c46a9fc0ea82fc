"""NCCL's unique id for a tensor-parallel model with one process per GPU, handed out over
torch.distributed when the caller's job has initialised it (docs/parallel.md).

Rank 0 makes the id (torch.cuda.nccl.unique_id, 128 bytes) and broadcasts it on the job's
own process group; every rank passes it to rm_load in rm_params.nccl_id. The library never
sets NCCL_COMM_ID, which torch's own communicators in the same process would also read.
torch is never imported here: a job that uses it has imported it already.
"""
import sys
from typing import Any, Optional

NCCL_ID_BYTES = 128


def nccl_id_from_torch(tp: int, device: str) -> Optional[bytes]:
    """Rank 0's NCCL unique id, broadcast to every rank, when torch.distributed is initialised
    with as many processes as tensor-parallel ranks (one per GPU) and the model may run on CUDA;
    else None (one process drives every rank, or NCCL's own bootstrap through NCCL_COMM_ID).
    Every rank of the job must make this call, in the same order (it is a collective)."""
    dist: Any = sys.modules.get("torch.distributed")
    if tp < 2 or device == "cpu" or dist is None:
        return None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() != tp:
        return None
    torch: Any = sys.modules["torch"]
    box = [bytes(torch.cuda.nccl.unique_id()) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    uid = box[0]
    if not isinstance(uid, (bytes, bytearray)) or len(uid) != NCCL_ID_BYTES:
        raise RuntimeError(f"torch.distributed handed out an NCCL id of {len(uid) if uid else 0} bytes, "
                           f"expected {NCCL_ID_BYTES}")
    return bytes(uid)
