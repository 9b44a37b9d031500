"""The meta-step: the outer loss of a pass of tasks as a pure function of the parameter dict the inner step updates."""

from __future__ import annotations

import torch

from promptgd.config import InnerConfig
from promptgd.lm import Forward, Params
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.objectives.meta_task import MetaTask
from promptgd.update.explicit import InnerUpdate
from promptgd.update.step_sizes import StepSizes


def meta_loss(
    forward: Forward,
    params: Params,
    task: MetaTask,
    update: InnerUpdate,
    step: StepSizes,
    inner: InnerConfig,
    first_order: bool,
) -> torch.Tensor:
    """Σ over the tasks in `task` of the outer loss L(θ'_i(θ)), differentiable w.r.t. `params` (θ).

    Where gradients flow: loss → student log-probs on query ⊕ answer, computed at θ' → θ' = θ − η ⊙ ∇L_LM(c; θ)
    → θ along two paths: the identity path (θ' contains θ) and, unless `first_order`, the second-order path
    through ∇L_LM(c; θ) itself (a Hessian-vector product; `create_graph` keeps that graph). The target is a
    constant: the teacher (LC) is frozen and never receives gradients. Whatever built `params` (the model's
    own leaves, or LoRA factors merged into weights) receives them by ordinary autograd, and meta-learned step sizes
    (update/step_sizes.py) receive theirs through η. `update` is any inner update (update/explicit.py): θ' as a copy
    of the weights, or as per-task low-rank terms that hooks add, every task of the pass in one forward.
    """
    k = task.contexts_per_task
    absorbed = update.absorb(
        forward, params, task.contexts, task.n_tasks, step, inner.steps, inner.mode, not first_order
    )
    row_task = torch.arange(task.queries.input_ids.shape[0], device=task.queries.input_ids.device) // k
    student_forward, student_params = update.adapted(forward, params, absorbed, row_task)
    student = answer_logprobs(student_forward, student_params, task.queries)
    return answer_loss(student, task.target, n_queries=k)
