"""What the outer optimiser trains and how it becomes the parameter dict the inner step updates.

The meta-step only ever sees `fast()` and `forward`; full-rank and LoRA meta-learning differ only here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from promptgd.lm import Params, functional_forward
from promptgd.update.implicit import LowRankUpdate, UnsupportedModule
from promptgd.update.implicit_lora import LoraTaskUpdate


def _identity(params: Params) -> Params:
    return params


@dataclass
class Parameterization:
    model: torch.nn.Module
    trainable: dict[str, torch.nn.Parameter]  # what Adam updates and checkpoints hold
    fast: Callable[[], Params]  # the inner step's parameter dict, rebuilt (with a fresh graph) per task
    to_model: Callable[[Params], Params] = field(
        default=_identity
    )  # the model's own parameter dict for a dict shaped like fast()'s
    lora_inner_scale: float | None = None  # LoRA-inner: s = alpha / r of the factors fast() returns; else None
    sharded: bool = False  # the model is FSDP2-sharded (train/fsdp.py): it runs only on its own parameters

    def forward(self, params: Params, **kwargs):
        """Run the model on a dict shaped like fast()'s."""
        if self.sharded:
            # FSDP2 gathers a layer's weights inside the layer's own call, where functional_call would hand it the
            # shards: the model runs as itself, and only on its own parameters (the implicit update's hooks add θ').
            if params is not self.trainable:
                raise RuntimeError("a sharded model runs only on its own parameters (the implicit inner update)")
            return self.model(**kwargs)
        return functional_forward(self.model)(self.to_model(params), **kwargs)


def full_rank(model: torch.nn.Module, sharded: bool = False) -> Parameterization:
    """Meta-learn every weight; the inner step updates every weight. Tied weights appear once."""
    params = dict(model.named_parameters())
    return Parameterization(model=model, trainable=params, fast=lambda: params, sharded=sharded)


def implicit_update(param: Parameterization, implementation: str) -> LowRankUpdate | LoraTaskUpdate | None:
    """The implicit inner update for `param` (inner.implementation=implicit), or None for the explicit one.

    Full rank and LoRA-outer update the model's weights (update/implicit.py); LoRA-inner updates its factors
    (update/implicit_lora.py). A model with a module the implicit form does not cover falls back to the explicit
    update, saying which."""
    if implementation == "explicit":
        return None
    try:
        if param.lora_inner_scale is not None:
            return LoraTaskUpdate(param.model, list(param.fast()), param.lora_inner_scale)
        if param.to_model is not _identity:
            return None
        return LowRankUpdate(param.model, list(param.fast()))
    except UnsupportedModule as e:
        warnings.warn(f"inner.implementation=implicit: {e}; using the explicit update", stacklevel=2)
        return None
