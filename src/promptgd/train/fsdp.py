"""Sharded meta-training (train.fsdp): weights, gradients and Adam state split over the torchrun processes (FSDP2).

    torchrun --nproc-per-node N -m promptgd train PRESET train.fsdp=true --out DIR

Each decoder layer (the classes the model's `_no_split_modules` names) and the root are `fully_shard`ed. The
second-order meta-step runs on it unchanged because the implicit inner update (update/implicit.py) never builds θ':
the model is called as itself, FSDP2 gathers each layer's weights inside that call, and the update's hooks add the
per-task terms. Measured on CPU with 2 gloo processes (tests/test_distributed.py): the meta-gradients equal one
process's. Two FSDP2 settings matter for a create_graph step:
- `reshard_after_backward=False`: the inner step's autograd.grad is a backward, and resharding after it frees
  storage that the graph of θ' still reads in the outer backward (pytorch issue 172543; here a segfault).
- a gradient divide factor of 1 and a plain sum: every rank's loss is already its tasks' share of the global mean,
  so the reduce-scatter must sum, as distributed.sum_gradients does for unsharded data parallelism.
Every FSDP2 forward and backward is a collective, so every rank must run the same number of them: the trainer
gives all ranks the same number of passes and has each rank compute the LM and task-B terms on the whole batch.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from promptgd import distributed
from promptgd.config import ConfigError


def check_shardable(implicit: bool, batch_size: int) -> None:
    """What train.fsdp needs beyond the config: a model the implicit update covers (a sharded model cannot run on a
    materialised θ'), and outer batches that give every rank as many tasks (each forward and backward is a collective)."""
    if not implicit:
        raise ConfigError("train.fsdp=true: the implicit inner update does not cover this model (see the warning)")
    if batch_size % distributed.world():
        raise ConfigError(
            f"train.fsdp=true: train.batch_size={batch_size} must be a multiple of the {distributed.world()} processes"
        )


def shard(model: torch.nn.Module) -> None:
    """Shard `model` in place over every process (its parameters become DTensors)."""
    mesh = init_device_mesh(next(model.parameters()).device.type, (distributed.world(),))
    layer_classes = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    if not layers:
        warnings.warn(
            f"train.fsdp: {type(model).__name__} names no decoder-layer class (_no_split_modules), so the model is "
            "sharded as one unit: each forward gathers every weight at once",
            stacklevel=2,
        )
    for module in [*layers, model]:
        fully_shard(module, mesh=mesh, reshard_after_forward=True)
        module.set_reshard_after_backward(False)
        module.set_gradient_divide_factor(1.0)
        module.set_force_sum_reduction_for_comms(True)  # a plain sum: gloo has no pre-multiplied one (PREMUL_SUM)


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor on every rank (a collective for a shard; other tensors as they are)."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def like(whole: torch.Tensor, shard_of: torch.Tensor) -> torch.Tensor:
    """`whole` split as `shard_of` is (this rank's part as a DTensor), or `whole` itself for a plain tensor."""
    if not isinstance(shard_of, DTensor):
        return whole
    return distribute_tensor(whole.to(shard_of.device, shard_of.dtype), shard_of.device_mesh, shard_of.placements)


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The sharded model's weights whole, on every rank (a collective per tensor)."""
    return {name: full(value).detach() for name, value in model.state_dict().items()}


class WholeModel:
    """A plain copy of a model that is about to be sharded, into which its weights are gathered whole for what reads
    whole weights (validation, saving). It holds storage only while gathered (the meta device has none), so
    sharding saves what it should in between."""

    def __init__(self, model: torch.nn.Module):
        self.copy = copy.deepcopy(model).requires_grad_(False).to("meta")

    @contextmanager
    def gathered(self, sharded: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
        """The copy with `sharded`'s current weights (a collective on every rank), freed again on exit."""
        self.copy.to_empty(device=device)
        self.copy.tie_weights()  # to_empty gave each module its own tensor
        self.copy.load_state_dict(full_state_dict(sharded))
        # Buffers are not sharded, and the non-persistent ones (rotary frequencies) are in no state dict.
        with torch.no_grad():
            for name, buffer in sharded.named_buffers():
                self.copy.get_buffer(name).copy_(buffer)
        try:
            yield self.copy
        finally:
            self.copy.to("meta")
