"""What the outer optimiser trains and how it becomes the parameter dict the inner step updates.

The meta-step only ever sees `fast()` and `forward`; full-rank and LoRA meta-learning differ only here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from promptgd.config import InnerConfig
from promptgd.lm import Params, functional_forward
from promptgd.update.implicit import LowRankUpdate, UnsupportedModule
from promptgd.update.implicit_lora import LoraTaskUpdate
from promptgd.update.step_sizes import Kind, StepSizes, init_log_scales

LR_SCALES = "lr_scales/"  # prefix of the learned step sizes' names among the trainable tensors (and in checkpoints)


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
    lr_scales: dict[str, torch.nn.Parameter] = field(
        default_factory=dict
    )  # meta-learned log step sizes of the inner update (update/step_sizes.py), keyed by fast()'s names; {}: one η

    def step_size(self, inner: InnerConfig, detach: bool = False) -> float | StepSizes:
        """What the inner update multiplies gradients by: inner.lr, times the learned scales unless there are none or
        inner.lr_scales=none asks for the plain step (`detach`: the scales as constants, for evaluation)."""
        if not self.lr_scales or inner.lr_scales == "none":
            return inner.lr
        return StepSizes(inner.lr, {k: v.detach() if detach else v for k, v in self.lr_scales.items()})

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


def with_lr_scales(
    param: Parameterization, kind: Kind, freeze_weights: bool, log_scales: dict[str, torch.Tensor] | None = None
) -> Parameterization:
    """`param` whose inner step also has meta-learned step sizes (zero log-scales: the plain step, unless
    `log_scales` gives trained ones); with `freeze_weights` they are all the outer optimiser trains."""
    scales = init_log_scales(param.fast(), kind)
    if log_scales is not None:
        if missing := set(scales) ^ set(log_scales):
            raise ValueError(f"learned step sizes do not match the model's parameters: {sorted(missing)[:3]}")
        with torch.no_grad():
            for name, value in log_scales.items():
                scales[name].copy_(value)
    trainable = {} if freeze_weights else dict(param.trainable)
    return replace(param, trainable={**trainable, **{LR_SCALES + k: v for k, v in scales.items()}}, lr_scales=scales)


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
