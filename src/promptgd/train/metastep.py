"""The meta-step: one task's outer loss as a pure function of the parameter dict the inner step updates."""

from __future__ import annotations

import torch

from promptgd.config import InnerConfig
from promptgd.lm import Forward, Params
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.objectives.meta_task import MetaTask
from promptgd.update.inner import inner_update


def meta_loss(forward: Forward, params: Params, task: MetaTask, inner: InnerConfig, first_order: bool) -> torch.Tensor:
    """Outer loss L(θ'(θ)) of one task, differentiable w.r.t. `params` (θ).

    Where gradients flow: loss → student log-probs on query ⊕ answer, computed at θ' → θ' = θ − η ∇L_LM(c; θ)
    → θ along two paths: the identity path (θ' contains θ) and, unless `first_order`, the second-order path
    through ∇L_LM(c; θ) itself (a Hessian-vector product; `create_graph` keeps that graph). The target is a
    constant: the teacher (LC) is frozen and never receives gradients. Whatever built `params` (the model's
    own leaves, or LoRA factors merged into weights) receives them by ordinary autograd.
    """
    adapted = inner_update(
        forward, params, task.contexts, inner.lr, inner.steps, inner.mode, create_graph=not first_order
    )
    student = answer_logprobs(forward, adapted, task.queries)
    return answer_loss(student, task.target, n_queries=task.queries.input_ids.shape[0])
