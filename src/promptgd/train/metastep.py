"""The meta-step: the outer loss of a pass of tasks as a pure function of the parameter dict the inner step updates."""

from __future__ import annotations

import torch

from promptgd.config import InnerConfig
from promptgd.lm import Forward, Params, TokenBatch
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.objectives.meta_task import MetaTask
from promptgd.update.implicit import LowRankUpdate
from promptgd.update.implicit_lora import LoraTaskUpdate
from promptgd.update.inner import inner_update
from promptgd.update.step_sizes import StepSizes


def meta_loss(
    forward: Forward,
    params: Params,
    task: MetaTask,
    inner: InnerConfig,
    first_order: bool,
    update: LowRankUpdate | LoraTaskUpdate | None = None,
    lr: float | StepSizes | None = None,
) -> torch.Tensor:
    """Σ over the tasks in `task` of the outer loss L(θ'_i(θ)), differentiable w.r.t. `params` (θ).

    Where gradients flow: loss → student log-probs on query ⊕ answer, computed at θ' → θ' = θ − η ∇L_LM(c; θ)
    → θ along two paths: the identity path (θ' contains θ) and, unless `first_order`, the second-order path
    through ∇L_LM(c; θ) itself (a Hessian-vector product; `create_graph` keeps that graph). The target is a
    constant: the teacher (LC) is frozen and never receives gradients. Whatever built `params` (the model's
    own leaves, or LoRA factors merged into weights) receives them by ordinary autograd.
    θ' is either a materialised copy of the weights (`update` None: one task) or, with `update`, per-task
    low-rank terms that the model's hooks add (update/implicit.py, and update/implicit_lora.py for LoRA-inner
    factors: every task of the pass in one forward). `lr`: inner.lr when None; meta-learned step sizes
    (update/step_sizes.py) receive their gradient through η in θ', by the same autograd.
    """
    k, create_graph, lr = task.contexts_per_task, not first_order, inner.lr if lr is None else lr
    if update is None:
        if task.n_tasks != 1:
            raise ValueError("meta_loss: the explicit inner update takes one task at a time")
        adapted = inner_update(forward, params, task.contexts, lr, inner.steps, inner.mode, create_graph)
        student = answer_logprobs(forward, adapted, task.queries)
    else:
        contexts = TokenBatch.concat(task.contexts)
        updates = update.absorb(forward, params, contexts, task.n_tasks, lr, inner.steps, inner.mode, create_graph)
        row_task = torch.arange(task.queries.input_ids.shape[0], device=contexts.input_ids.device) // k
        student = answer_logprobs(update.adapted(forward, updates, row_task), params, task.queries)
    return answer_loss(student, task.target, n_queries=k)
