"""Data parallelism over tasks on PyTorch's own stack (torch.distributed; NCCL on GPUs, gloo on CPU).

    torchrun --nproc-per-node N -m promptgd train PRESET --out DIR

Every rank runs the same command on the same data in the same order; what differs is only which tasks of an
outer batch (and which rows of the LM and task-B batches) each rank differentiates, and which validation and
evaluation triples it answers. The trainable gradients are then summed over ranks in one flat all-reduce, so
the update equals one process's on the whole batch. No DistributedDataParallel: its reducer does not support
the double backward of second-order meta-learning (pytorch issue 63929). Rank 0 alone writes files.

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for a single process.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

# A rank that fails leaves the others waiting in a collective; this bounds the wait, after which they fail too
# (torchrun then stops the job and reports the first failure with its rank).
TIMEOUT = datetime.timedelta(minutes=int(os.environ.get("PROMPTGD_DIST_TIMEOUT_MIN", "30")))


def init() -> None:
    """Join the process group torchrun describes (a no-op without one, or when already joined)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend, timeout=TIMEOUT)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def share(items: list) -> list:
    """This rank's part of `items`: every world()-th one, starting at rank() (balanced for any length)."""
    return items[rank() :: world()]


def sum_gradients(params: list[torch.Tensor]) -> None:
    """Sum `.grad` over ranks in place, as one flat buffer (one collective, not one per tensor). A parameter with
    no gradient on this rank (no task of the batch landed here) contributes zeros."""
    if not active():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()


def main_decides(value: bool) -> bool:
    """Rank 0's `value` on every rank, for a decision read from files that rank 0 alone writes: a rank that reads
    them late could find rank 0's finished file and skip the collective rank 0 waits in (a hang)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_floats(values: list[float]) -> list[float]:
    """Sum plain numbers over ranks (loss terms, token counts) for the logs."""
    return _reduced(values, dist.ReduceOp.SUM) if active() else values


def max_int(value: int) -> int:
    """The largest of the ranks' `value`s."""
    return int(_reduced([value], dist.ReduceOp.MAX)[0]) if active() else value


def _reduced(values: list[float], op) -> list[float]:
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def gather(items: list) -> list:
    """Every rank's `items`, concatenated in rank order, on every rank."""
    if not active():
        return items
    parts: list = [None] * world()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def barrier() -> None:
    if active():
        dist.barrier()
