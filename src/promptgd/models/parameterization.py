"""What the outer optimiser trains and how it becomes the parameter dict the inner step updates.

The meta-step only ever sees `fast()` and `forward`; full-rank and LoRA meta-learning differ only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from promptgd.update.inner import Forward, Params, functional_forward


@dataclass
class Parameterization:
    trainable: dict[str, torch.nn.Parameter]  # what Adam updates and checkpoints hold
    fast: Callable[[], Params]  # the inner step's parameter dict, rebuilt (with a fresh graph) per task
    forward: Forward  # runs the model on a dict shaped like fast()'s


def full_rank(model: torch.nn.Module) -> Parameterization:
    """Meta-learn every weight; the inner step updates every weight. Tied weights appear once."""
    params = dict(model.named_parameters())
    return Parameterization(trainable=params, fast=lambda: params, forward=functional_forward(model))
