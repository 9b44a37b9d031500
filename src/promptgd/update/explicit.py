"""The inner update θ' = θ − η ∇θ L_LM(c; θ), materialised: a copy of the weights per task. The reference that the
implicit updates (update/implicit.py, update/implicit_lora.py) equal; applied functionally, so the model object is
never mutated.

A `Forward` maps (parameter dict, model keyword arguments) to the model's output. Full-rank meta-learning
passes the model's own parameters; LoRA variants pass a dict whose tensors are built from LoRA factors.

Every inner update, this one and the implicit ones, has the same two methods (`InnerUpdate`):
- `absorb(forward, params, contexts, n_tasks, step, steps, mode, create_graph)` takes the inner step of `n_tasks`
  tasks whose contexts are `contexts` (task-major, k per task) and returns what the update is (here θ' itself);
- `adapted(forward, params, absorbed, row_task)` gives the (forward, parameter dict) that computes row i of a batch
  at θ' of task `row_task[i]`.
With `create_graph` the update stays a differentiable function of `params` through the context's gradient (second
order); without it that gradient is a constant, so dθ'/dθ = I (first order). `tasks_per_pass` is how many tasks
one call can hold (None: as many as fit in memory).
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch

from promptgd.lm import Forward, Params, TokenBatch, lm_loss
from promptgd.update.step_sizes import StepSizes

Mode = Literal["batched", "sequential"]


class InnerUpdate(Protocol):
    tasks_per_pass: int | None

    def absorb(
        self,
        forward: Forward,
        params: Params,
        contexts: list[TokenBatch],
        n_tasks: int,
        step: StepSizes,
        steps: int = 1,
        mode: Mode = "batched",
        create_graph: bool = False,
    ) -> object: ...

    def adapted(
        self, forward: Forward, params: Params, absorbed: object, row_task: torch.Tensor
    ) -> tuple[Forward, Params]: ...


def inner_update(
    forward: Forward,
    params: Params,
    contexts: list[TokenBatch],
    step: StepSizes,
    steps: int = 1,
    mode: Mode = "batched",
    create_graph: bool = False,
    out: Params | None = None,
) -> Params:
    """Plain SGD on the contexts' LM loss, over every tensor in `params` (all must require grad).

    `step`: η per tensor entry (one η everywhere when uniform). `batched`: `steps` steps on the mean loss over all
    contexts; `sequential`: `steps` steps on each context in turn. `out` (evaluation only, no graph): leaf tensors
    shaped like `params` that receive θ' in place; on CPU, reusing them instead of allocating a fresh copy of the
    weights per call halves the cost of FT evaluation.
    """
    if out is not None and create_graph:
        raise ValueError("inner_update: `out` buffers hold no graph; they cannot be combined with create_graph")
    schedule = [contexts] * steps if mode == "batched" else [[c] for c in contexts for _ in range(steps)]
    adapted = params
    for group in schedule:
        loss = sum(lm_loss(forward, adapted, c) for c in group) / len(group)
        grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=create_graph)
        if out is None:
            adapted = {name: p - step.dense(name) * g for (name, p), g in zip(adapted.items(), grads)}
            continue
        with torch.no_grad():
            for (name, p), g in zip(adapted.items(), grads):
                if step.uniform:
                    torch.add(p, g, alpha=-step.lr, out=out[name])
                else:
                    torch.sub(p, g * step.dense(name), out=out[name])
        adapted = out
    return adapted


HALVINGS = 5  # `halve` gives up on a step after this many retakes (at 1/32 of its size) and stops there


def guarded_update(
    forward: Forward, params: Params, contexts: list[TokenBatch], step: StepSizes, steps: int, mode: Mode, guard: str
) -> Params:
    """`inner_update` (no graph) that never keeps a step which raises the loss of the contexts it was taken on:
    `stop` returns the iterate before such a step; `halve` retakes it at half the size (up to HALVINGS times, then
    stops). Each step costs one more forward, for the loss after it, which the next step on the same contexts reuses
    as its loss before; it holds the iterate before the step beside the one after, a copy of the weights more than
    `inner_update` with reused buffers."""
    singles = [[c] for c in contexts]  # one list per context, so a later step on it is recognised as the same
    schedule = [contexts] * steps if mode == "batched" else [single for single in singles for _ in range(steps)]

    def loss_at(adapted: Params, group: list[TokenBatch]) -> torch.Tensor:
        return sum(lm_loss(forward, adapted, c) for c in group) / len(group)

    current, known = params, None  # known: (group, its loss at `current`, with graph)
    for group in schedule:
        loss = known[1] if known is not None and known[0] is group else loss_at(current, group)
        grads = torch.autograd.grad(loss, list(current.values()))
        for halving in range(HALVINGS + 1):
            size = 0.5**halving
            moved = {
                name: (p - size * step.dense(name) * g).detach().requires_grad_()
                for (name, p), g in zip(current.items(), grads)
            }
            after = loss_at(moved, group)
            if after <= loss:
                current, known = moved, (group, after)
                break
            if guard == "stop":
                return current
        else:
            return current
    return current


class ExplicitUpdate:
    """θ' as a copy of the weights, one task per call. `reuse_buffers` (evaluation: no graph) writes every θ' into
    one set of buffers, so a θ' is valid until the next `absorb`; `guard` (inner.guard) guards it (`guarded_update`)."""

    tasks_per_pass = 1

    def __init__(self, reuse_buffers: bool = False, guard: str = "none"):
        self.reuse_buffers, self.guard = reuse_buffers, guard
        self.buffers: Params | None = None

    def absorb(
        self,
        forward: Forward,
        params: Params,
        contexts: list[TokenBatch],
        n_tasks: int,
        step: StepSizes,
        steps: int = 1,
        mode: Mode = "batched",
        create_graph: bool = False,
    ) -> Params:
        if n_tasks != 1:
            raise ValueError("the explicit inner update takes one task at a time")
        if self.guard != "none":
            if create_graph:
                raise ValueError("a guarded inner update is for evaluation: meta-training never guards")
            return guarded_update(forward, params, contexts, step, steps, mode, self.guard)
        if self.reuse_buffers and self.buffers is None:
            self.buffers = {name: torch.empty_like(p).requires_grad_() for name, p in params.items()}
        return inner_update(forward, params, contexts, step, steps, mode, create_graph, self.buffers)

    def adapted(
        self, forward: Forward, params: Params, absorbed: Params, row_task: torch.Tensor
    ) -> tuple[Forward, Params]:
        return forward, absorbed
