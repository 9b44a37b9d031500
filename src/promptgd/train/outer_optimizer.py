"""The outer loop's optimiser, its learning-rate schedule and the order tasks are met in."""

from __future__ import annotations

import math

import torch

from promptgd.config import TrainConfig
from promptgd.models.parameterization import LR_SCALES, Parameterization


def outer_optimizer(param: Parameterization, t: TrainConfig, total_steps: int):
    """AdamW over `param.trainable` and its schedule: a linear warm-up over `t.warmup_steps`, then constant or cosine
    to 0 at `total_steps`. Learned step sizes train at their own rate and without decay (decay would pull η back to
    inner.lr); their names come last in `trainable`, so the optimiser's parameter order is the checkpoint's."""
    weights = [p for name, p in param.trainable.items() if not name.startswith(LR_SCALES)]
    scales = [p for name, p in param.trainable.items() if name.startswith(LR_SCALES)]
    groups = [{"params": weights}] if weights else []
    groups += [{"params": scales, "lr": t.lr_scales_lr, "weight_decay": 0.0}] if scales else []
    optimizer = torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)

    def factor(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        if t.lr_schedule == "constant":
            return 1.0
        progress = (step - t.warmup_steps) / max(1, total_steps - t.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def data_order(n: int, epochs: int, seed: int) -> list[int]:
    """The task indices of every epoch, each epoch a fresh permutation drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return [i for _ in range(epochs) for i in torch.randperm(n, generator=generator).tolist()]
