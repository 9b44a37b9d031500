"""The inner update θ' = θ − η ∇θ L_LM(c; θ), applied functionally so the model object is never mutated.

A `Forward` maps (parameter dict, model keyword arguments) to the model's output. Full-rank meta-learning
passes the model's own parameters; LoRA variants pass a dict whose tensors are built from LoRA factors.
"""

from __future__ import annotations

from typing import Literal

import torch

from promptgd.lm import Forward, Params, TokenBatch, lm_loss
from promptgd.update.step_sizes import StepSizes


def inner_update(
    forward: Forward,
    params: Params,
    contexts: list[TokenBatch],
    lr: float | StepSizes,
    steps: int = 1,
    mode: Literal["batched", "sequential"] = "batched",
    create_graph: bool = False,
    out: Params | None = None,
) -> Params:
    """Plain SGD on the contexts' LM loss, over every tensor in `params` (all must require grad).

    `lr`: one η for every tensor, or meta-learned step sizes (update/step_sizes.py), η per entry.
    `batched`: `steps` steps on the mean loss over all contexts; `sequential`: `steps` steps on each
    context in turn. With `create_graph` the result stays a differentiable function of `params` through
    the gradient too (second order); without it the gradient is a constant, so dθ'/dθ = I (first order).
    `out` (evaluation only, no graph): leaf tensors shaped like `params` that receive θ' in place; on CPU,
    reusing them instead of allocating a fresh copy of the weights per call halves the cost of FT evaluation.
    """
    if out is not None and create_graph:
        raise ValueError("inner_update: `out` buffers hold no graph; they cannot be combined with create_graph")
    schedule = [contexts] * steps if mode == "batched" else [[c] for c in contexts for _ in range(steps)]
    adapted = params
    for group in schedule:
        loss = sum(lm_loss(forward, adapted, c) for c in group) / len(group)
        grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=create_graph)
        if out is None:
            adapted = {name: p - _eta(lr, name) * g for (name, p), g in zip(adapted.items(), grads)}
            continue
        with torch.no_grad():
            for (name, p), g in zip(adapted.items(), grads):
                if isinstance(lr, StepSizes):
                    torch.sub(p, g * lr.dense(name), out=out[name])
                else:
                    torch.add(p, g, alpha=-lr, out=out[name])
        adapted = out
    return adapted


def _eta(lr: float | StepSizes, name: str) -> float | torch.Tensor:
    return lr.dense(name) if isinstance(lr, StepSizes) else lr
