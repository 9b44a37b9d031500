"""LoRA-inner's inner update for many tasks at once: each task's own factors, applied by forward hooks.

LoRA-inner's inner step moves only the factors of W + s·B·A. For a target layer the context's gradients are
∂L/∂B = s Σ_t δ_t (A x_t)ᵀ and ∂L/∂A = s Bᵀ Σ_t δ_t x_tᵀ (δ_t = ∂L/∂y_t), each task's rank-r factors are cheap to
hold, and a row of task b computes y = (W + s·B·A) h + s (B_b' A_b' − B A) h: the forward that merges the shared
factors into the weights runs once for all tasks of a pass. Same schedule and exactness contract as
update/implicit.py (logits and meta-gradients equal the explicit update's; `create_graph` keeps the graph).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from promptgd.lm import Forward, Params, TokenBatch, sequence_losses
from promptgd.update.explicit import Mode
from promptgd.update.implicit import TaskRows, UnsupportedModule, one_row_each, step_schedule
from promptgd.update.step_sizes import StepSizes


@dataclass
class TaskFactors:
    """Each task's LoRA factors after its inner update: module -> (A [tasks, r, in], B [tasks, out, r])."""

    n_tasks: int
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]


class LoraTaskUpdate:
    """The implicit inner update of a LoRA-inner parameterization, an `InnerUpdate` (update/explicit.py): `names` are
    its `<module>.lora_A/B` factors."""

    tasks_per_pass = None

    def __init__(self, model: torch.nn.Module, names: list[str], scale: float):
        modules = sorted({name.rsplit(".", 1)[0] for name in names})
        if set(names) != {f"{m}.lora_{w}" for m in modules for w in "AB"}:
            raise UnsupportedModule(f"LoRA-inner parameters must be <module>.lora_A/B pairs; got {sorted(names)[:4]}")
        for module in modules:
            if not isinstance(model.get_submodule(module), torch.nn.Linear):
                raise UnsupportedModule(f"{module} ({type(model.get_submodule(module)).__name__}) is not a Linear")
        self.model, self.modules, self.scale = model, modules, scale
        self._state: dict | None = None

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
    ) -> TaskFactors:
        """As update/implicit.py's `absorb`: `contexts` task-major, k per task; `params` the shared factors."""
        if not step.uniform:
            raise ValueError("LoRA-inner's update takes the plain step (inner.lr_scales is for full rank)")
        contexts, lr = one_row_each(contexts), step.lr
        current = TaskFactors(n_tasks, {})  # no step yet: every task has the shared factors
        for selected, weight, row_task in step_schedule(contexts.input_ids.shape[0], n_tasks, steps, mode):
            batch = contexts.rows(selected)
            row_task = torch.tensor(row_task, device=batch.input_ids.device)
            calls: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            with self._hooked(params, current, TaskRows(row_task, n_tasks), calls):
                loss = weight * sequence_losses(forward, params, batch).sum()
            names = list(calls)
            grads = torch.autograd.grad(loss, [calls[m][1] for m in names], create_graph=create_graph)
            moved = {}
            for m, delta in zip(names, grads):
                x = calls[m][0]
                shared = (params[f"{m}.lora_A"], params[f"{m}.lora_B"])
                a, b = current.factors.get(m, shared)
                if not create_graph:  # first order: the step's gradient is a constant, as in update/explicit.py
                    x, a, b = x.detach(), a.detach(), b.detach()
                x_tasks = x.reshape(n_tasks, -1, x.shape[-1])  # [tasks, tokens, in]
                d_tasks = delta.reshape(n_tasks, -1, delta.shape[-1])  # [tasks, tokens, out]
                grad_b = self.scale * d_tasks.transpose(1, 2) @ (x_tasks @ a.transpose(-1, -2))  # [tasks, out, r]
                grad_a = self.scale * b.transpose(-1, -2) @ (d_tasks.transpose(1, 2) @ x_tasks)  # [tasks, r, in]
                a_now, b_now = current.factors.get(m, shared)  # the factors this step moves (with their graph)
                moved[m] = (a_now - lr * grad_a, b_now - lr * grad_b)
            current = TaskFactors(n_tasks, {**current.factors, **moved})
        return current

    def adapted(
        self, forward: Forward, params: Params, updates: TaskFactors, row_task: torch.Tensor
    ) -> tuple[Forward, Params]:
        """`forward` with row i computed with the factors of task `row_task[i]` (rows grouped by task), and the shared
        factors it runs on."""
        rows = TaskRows(row_task, updates.n_tasks)

        def run(params: Params, **kwargs):
            with self._hooked(params, updates, rows, None):
                return forward(params, **kwargs)

        return run, params

    @contextmanager
    def _hooked(self, params: Params, updates: TaskFactors, rows: TaskRows, calls: dict | None) -> Iterator[None]:
        if self._state is not None:
            raise RuntimeError("LoraTaskUpdate: hooks are already installed (nested adapted forwards)")
        self._state = {"params": params, "updates": updates, "rows": rows, "calls": calls}
        handles = [self.model.get_submodule(m).register_forward_hook(self._hook(m)) for m in self.modules]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._state = None

    def _hook(self, module: str) -> Callable:
        def hook(_, args, output):
            state = self._state
            h, out = args[0], output
            if module in state["updates"].factors:  # tasks whose factors moved: add s (B'A' − B A) h per row
                a_task, b_task = state["updates"].factors[module]
                a, b = state["params"][f"{module}.lora_A"], state["params"][f"{module}.lora_B"]

                def own(flat: torch.Tensor) -> torch.Tensor:  # [tasks, tokens, in] -> each task's own B'A' h
                    return (flat @ a_task.transpose(1, 2).to(flat.dtype)) @ b_task.transpose(1, 2).to(flat.dtype)

                shared = (h @ a.T.to(h.dtype)) @ b.T.to(h.dtype)
                out = out + self.scale * (state["rows"].by_task(h, own) - shared)
            if state["calls"] is not None:
                state["calls"][module] = (h, out)
            return out

        return hook
