"""What the outer optimiser trains and how it becomes the parameter dict the inner step updates.

The meta-step only ever sees `fast()` and `forward`; full-rank and LoRA meta-learning differ only here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from promptgd.lm import Params, functional_forward


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

    def forward(self, params: Params, **kwargs):
        """Run the model on a dict shaped like fast()'s."""
        return functional_forward(self.model)(self.to_model(params), **kwargs)


def full_rank(model: torch.nn.Module) -> Parameterization:
    """Meta-learn every weight; the inner step updates every weight. Tied weights appear once."""
    params = dict(model.named_parameters())
    return Parameterization(model=model, trainable=params, fast=lambda: params)
