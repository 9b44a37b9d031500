"""The inner update of many tasks at once, as per-task low-rank terms: θ' is never materialised.

For a linear layer y = W x, the context loss's gradient is G = Σ_t δ_t x_tᵀ over the context's tokens
(δ_t = ∂L/∂y_t), so the adapted layer computes y' = W x − η (x Xᵀ) Δ: a product of rank ≤ context length. An
embedding's gradient is the same sum with one-hot rows, Σ_t e(c_t) δ_tᵀ; a tied LM head adds its own dense part to
that matrix; and a module that is elementwise affine in its 1-D parameters (RMSNorm, LayerNorm: y = w ⊙ x̂ + b)
gets per-task gradient vectors. Forward hooks add each row's own task's terms to every such module's output, so
the rows of one padded batch can belong to different tasks and B tasks share one read of the weights.

Exact: the terms are the explicit update's (update/explicit.py), built from the same gradients. With `create_graph`
the δ's and x's keep their graph and the meta-gradient flows through them as through the explicit θ' (second
order); without it they are constants, so dθ'/dθ = I (first order). The requirement on the model: every updated
parameter is used only through its own module's forward (true of HF causal LMs built from nn.Linear, nn.Embedding
and norms; a model computing `F.linear(h, self.embed.weight)` itself would lose that use's gradient).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.func import functional_call

from promptgd.lm import Forward, Params, TokenBatch, sequence_losses
from promptgd.update.explicit import Mode
from promptgd.update.step_sizes import StepSizes

Kind = Literal["linear", "embedding", "affine"]


class UnsupportedModule(ValueError):
    """A parameter of the inner update lives in a module whose gradient has no known low-rank form."""


@dataclass
class TaskUpdates:
    """The summed inner-step gradients of B tasks, kept factored.

    `matrices[p]`: factor pairs (U, V) with G_b = U_bᵀ V_b for task b: U [B, T, rows of p] dense, or [B, T] token
    ids standing for one-hot rows; V [B, T, columns of p]. `vectors[p]`: [B, len(p)]. θ'_b = θ − η ⊙ G_b
    (update/step_sizes.py; η = lr everywhere for the plain step).
    """

    lr: StepSizes
    n_tasks: int
    matrices: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    vectors: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, other: TaskUpdates) -> TaskUpdates:
        """The sum of two steps' gradients: factor lists concatenate (their token axes stack), vectors add."""
        matrices = {p: self.matrices.get(p, []) + other.matrices.get(p, []) for p in {*self.matrices, *other.matrices}}
        vectors = dict(self.vectors)
        for p, v in other.vectors.items():
            vectors[p] = vectors[p] + v if p in vectors else v
        return TaskUpdates(self.lr, self.n_tasks, matrices, vectors)


@dataclass
class _Call:
    """What a hook saw of one module call during a context pass."""

    module: str
    inputs: torch.Tensor  # the Linear's input x, the Embedding's ids, the affine module's input
    output: torch.Tensor
    slopes: dict[str, torch.Tensor] = field(default_factory=dict)  # affine module: ∂y/∂p elementwise, per 1-D param


class LowRankUpdate:
    """Applies per-task inner updates to `model` through forward hooks; build once per model and parameter set. An
    `InnerUpdate` (update/explicit.py) that holds any number of tasks per pass.

    `names`: the parameters the inner step updates (the keys of the parameter dict the forward receives). Raises
    UnsupportedModule, naming the module, when one of them is not a Linear's, an Embedding's or a 1-D parameter of
    a module that is elementwise affine in it (checked numerically on a random input)."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        self.model = model
        wanted = set(names)
        aliases: dict[int, list[str]] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            aliases.setdefault(id(p), []).append(name)
        canonical = {
            alias: next((a for a in group if a in wanted), None) for group in aliases.values() for alias in group
        }
        self.modules: dict[str, tuple[Kind, dict[str, str]]] = {}  # module -> (kind, attribute -> canonical param)
        self.offset_free: set[str] = set()  # affine modules whose output is 0 when all their 1-D parameters are
        covered = set()
        for module_name, module in model.named_modules():
            own = {attr: canonical[_join(module_name, attr)] for attr, _ in module.named_parameters(recurse=False)}
            updated = {attr: p for attr, p in own.items() if p is not None}
            if not updated:
                continue
            kind = _kind(module_name, module, updated)
            self.modules[module_name] = (kind, updated)
            if kind == "affine" and _is_offset_free(module):
                self.offset_free.add(module_name)
            covered |= set(updated.values())
        if missing := wanted - covered:
            raise UnsupportedModule(f"parameters {sorted(missing)[:3]} are not parameters of {type(model).__name__}")
        self._state: dict | None = None  # set while hooks are installed: what they apply and record

    tasks_per_pass = None

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
    ) -> TaskUpdates:
        """The inner update of `n_tasks` tasks whose contexts (one row each) are `contexts`, task-major, in the steps
        of `step_schedule`."""
        contexts = one_row_each(contexts)
        updates = TaskUpdates(step, n_tasks)
        for selected, weight, row_task in step_schedule(contexts.input_ids.shape[0], n_tasks, steps, mode):
            batch = contexts.rows(selected)
            row_task = torch.tensor(row_task, device=batch.input_ids.device)
            calls: list[_Call] = []
            with self._hooked(updates, TaskRows(row_task, n_tasks), calls):
                loss = weight * sequence_losses(forward, params, batch).sum()
            grads = torch.autograd.grad(loss, [c.output for c in calls], create_graph=create_graph, allow_unused=True)
            updates = updates.add(self._gradients(calls, grads, n_tasks, detach=not create_graph))
        return updates

    def adapted(
        self, forward: Forward, params: Params, updates: TaskUpdates, row_task: torch.Tensor
    ) -> tuple[Forward, Params]:
        """`forward` with row i of every batch computed at θ' of task `row_task[i]` (sorted: rows grouped by task), and
        the shared parameters it runs on."""

        rows = TaskRows(row_task, updates.n_tasks)

        def run(params: Params, **kwargs):
            with self._hooked(updates, rows, None):
                return forward(params, **kwargs)

        return run, params

    # ---- hooks ----------------------------------------------------------------------------------------------------
    @contextmanager
    def _hooked(self, updates: TaskUpdates, rows: TaskRows, calls: list[_Call] | None) -> Iterator[None]:
        if self._state is not None:
            raise RuntimeError("LowRankUpdate: hooks are already installed (nested adapted forwards)")
        self._state = {"updates": updates, "rows": rows, "calls": calls, "inside": False}
        handles = [
            self.model.get_submodule(name).register_forward_hook(self._hook(name, kind, attrs), with_kwargs=True)
            for name, (kind, attrs) in self.modules.items()
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._state = None

    def _hook(self, name: str, kind: Kind, attrs: dict[str, str]) -> Callable:
        def hook(module, args, kwargs, output):
            state = self._state
            if state["inside"]:  # the affine module's own slope calls below
                return None
            x = args[0] if args else next(iter(kwargs.values()))
            updates, rows = state["updates"], state["rows"]
            slopes = self._slopes(module, args, kwargs, attrs, name in self.offset_free) if kind == "affine" else {}
            out, lr = output, updates.lr.lr
            if not updates.lr.uniform:
                out = self._learned_terms(out, x, kind, attrs, slopes, updates, rows)
                return self._record(state, name, x, out, slopes)
            # One fused kernel per term (add with alpha, addcmul): on a GPU the step is bound by kernel launches.
            for attr, param in attrs.items():
                if param in updates.matrices:
                    factors = updates.matrices[param]
                    if kind == "linear":
                        out = out.add(rows.linear_term(x, factors, out.shape[-1]), alpha=-lr)
                    else:
                        out = out.add(rows.lookup_term(x, factors), alpha=-lr)
                if param in updates.vectors:
                    vector = rows.per_row(updates.vectors[param])
                    out = (
                        out.addcmul(vector, slopes[attr], value=-lr) if kind == "affine" else out.add(vector, alpha=-lr)
                    )
            return self._record(state, name, x, out, slopes)

        return hook

    @staticmethod
    def _record(state: dict, name: str, x: torch.Tensor, out: torch.Tensor, slopes: dict) -> torch.Tensor:
        if state["calls"] is not None:
            state["calls"].append(_Call(name, x, out, slopes))
        return out

    @staticmethod
    def _learned_terms(out, x, kind: Kind, attrs: dict[str, str], slopes, updates: TaskUpdates, rows: TaskRows):
        """The hook's terms with meta-learned step sizes: η = rows ⊗ cols scales a linear term's input by the column
        factor and its output by the row factor (a lookup's output by the looked-up rows' factors); a vector's η
        multiplies it entry by entry. The learned scales carry a graph, so the terms are plain products here."""
        for attr, param in attrs.items():
            row_eta, col_eta = updates.lr.factors(param)
            if param in updates.matrices:
                factors = updates.matrices[param]
                if kind == "linear":
                    term = rows.linear_term(x if col_eta is None else x * col_eta, factors, out.shape[-1]) * row_eta
                else:
                    term = rows.lookup_term(x, factors)
                    term = term * (row_eta[x].unsqueeze(-1) if row_eta.dim() else row_eta)
                    term = term if col_eta is None else term * col_eta
                out = out - term
            if param in updates.vectors:
                vector = rows.per_row(updates.vectors[param]) * row_eta
                out = out - (vector * slopes[attr] if kind == "affine" else vector)
        return out

    def _slopes(self, module, args, kwargs, attrs: dict[str, str], offset_free: bool) -> dict[str, torch.Tensor]:
        """∂y/∂p for each updated 1-D parameter of an affine module, elementwise, at this call's input: y(p=1) − y(p=0),
        or with every other 1-D parameter at 0 the single call y(p=1) when the module's output has no offset (RMSNorm).
        The calls run the module again; the hooks let them through untouched."""
        self._state["inside"] = True
        try:
            current = dict(module.named_parameters(recurse=False))
            if offset_free:
                zeros = {attr: torch.zeros_like(p) for attr, p in current.items()}
                return {
                    attr: functional_call(module, {**zeros, attr: torch.ones_like(current[attr])}, args, kwargs)
                    for attr in attrs
                }
            return {
                attr: functional_call(module, {attr: torch.ones_like(current[attr])}, args, kwargs)
                - functional_call(module, {attr: torch.zeros_like(current[attr])}, args, kwargs)
                for attr in attrs
            }
        finally:
            self._state["inside"] = False

    def _gradients(self, calls: list[_Call], grads, n_tasks: int, detach: bool) -> TaskUpdates:
        """Per-task gradients of every updated parameter from the δ's of one context pass."""
        updates = TaskUpdates(StepSizes(0.0), n_tasks)

        def per_task(t: torch.Tensor) -> torch.Tensor:  # rows are task-major: a task's rows become one sequence
            return t.reshape(n_tasks, -1, *t.shape[2:])

        for call, delta in zip(calls, grads):
            if delta is None:  # the module's output does not reach the loss
                continue
            kind, attrs = self.modules[call.module]
            module = self.model.get_submodule(call.module)
            x = call.inputs.detach() if detach else call.inputs
            for attr, param in attrs.items():
                if kind == "linear" and attr == "weight":
                    factor = (per_task(delta), per_task(x))
                elif kind == "embedding":
                    keep = x != module.padding_idx if module.padding_idx is not None else torch.ones_like(x, dtype=bool)
                    factor = (per_task(x), per_task(delta * keep.unsqueeze(-1).to(delta.dtype)))
                else:  # a Linear's bias, or a 1-D parameter of an affine module
                    slope = 1 if kind == "linear" else (call.slopes[attr].detach() if detach else call.slopes[attr])
                    vector = (delta * slope).reshape(n_tasks, -1, delta.shape[-1]).sum(1)
                    updates.vectors[param] = updates.vectors[param] + vector if param in updates.vectors else vector
                    continue
                updates.matrices.setdefault(param, []).append(factor)
        return updates


def one_row_each(contexts: list[TokenBatch]) -> TokenBatch:
    """The contexts as the rows of one batch: the implicit updates treat each row as one whole context."""
    if any(c.input_ids.shape[0] != 1 for c in contexts):
        raise ValueError(
            "the implicit inner update takes each context as one row; chunked contexts need the explicit one"
        )
    return TokenBatch.concat(contexts)


def step_schedule(rows: int, n_tasks: int, steps: int, mode: str) -> list[tuple[list[int], float, list[int]]]:
    """The inner steps over context rows that are task-major (task b's k contexts are rows b·k … b·k+k−1), each as
    (the rows it reads, the weight of each row's loss, the task of each of those rows), as update/explicit.py takes
    them: `batched` takes `steps` steps on the mean loss of each task's k contexts, `sequential` `steps` steps on each
    context in turn."""
    if rows % n_tasks:
        raise ValueError(f"absorb: {rows} context rows do not split evenly over {n_tasks} tasks")
    k = rows // n_tasks
    if mode == "batched":
        return [(list(range(rows)), 1 / k, [i // k for i in range(rows)])] * steps
    return [(list(range(j, rows, k)), 1.0, list(range(n_tasks))) for j in range(k) for _ in range(steps)]


def _join(module: str, attr: str) -> str:
    return f"{module}.{attr}" if module else attr


def _kind(name: str, module: torch.nn.Module, updated: dict[str, str]) -> Kind:
    # A subclass that overrides forward, or holds parameters besides weight and bias, may compute anything: only a
    # module that runs nn.Linear's or nn.Embedding's own forward on its own weight has the gradient's known form.
    own = set(dict(module.named_parameters(recurse=False)))
    if isinstance(module, torch.nn.Linear) and type(module).forward is torch.nn.Linear.forward:
        if own <= {"weight", "bias"}:
            return "linear"
    elif isinstance(module, torch.nn.Embedding) and type(module).forward is torch.nn.Embedding.forward:
        if own != {"weight"}:
            raise UnsupportedModule(f"{name} ({type(module).__name__}): parameters {sorted(own)} besides the weight")
        if module.max_norm is not None or module.scale_grad_by_freq or module.sparse:
            raise UnsupportedModule(f"{name} ({type(module).__name__}): max_norm/scale_grad_by_freq/sparse embedding")
        return "embedding"
    params = dict(module.named_parameters(recurse=False))
    linear_like = isinstance(module, (torch.nn.Linear, torch.nn.Embedding))
    if not linear_like and all(p.dim() == 1 for p in params.values()) and _is_elementwise_affine(module, params):
        return "affine"
    raise UnsupportedModule(
        f"{name} ({type(module).__name__}): its parameters {sorted(updated)} are not a Linear's, an Embedding's or "
        "1-D parameters the output is elementwise affine in; use inner.implementation=explicit"
    )


@torch.no_grad()
def _is_elementwise_affine(module: torch.nn.Module, params: dict[str, torch.nn.Parameter]) -> bool:
    """y(p + d) = y(p) + Σ_p slope_p ⊙ d_p for random d, with slope_p = y(p=1) − y(p=0): RMSNorm, LayerNorm."""
    some = next(iter(params.values()))
    generator = torch.Generator().manual_seed(0)
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64).to(some)  # noqa: E731
    x = draw(2, 3, some.shape[0])
    try:
        y = module(x)
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            return False
        shifts = {attr: draw(p.shape) for attr, p in params.items()}
        moved = functional_call(module, {a: p + shifts[a] for a, p in params.items()}, (x,))
        slopes = {
            attr: functional_call(module, {attr: torch.ones_like(p)}, (x,))
            - functional_call(module, {attr: torch.zeros_like(p)}, (x,))
            for attr, p in params.items()
        }
    except (RuntimeError, TypeError, ValueError):  # it cannot run on a lone [2, 3, d] input: not a norm-like module
        return False
    predicted = y + sum(slopes[a] * shifts[a] for a in params)
    scale = max(float(moved.abs().max()), 1.0)
    return bool((moved - predicted).abs().max() <= 1e-2 * scale)


@torch.no_grad()
def _is_offset_free(module: torch.nn.Module) -> bool:
    """y = 0 whenever every 1-D parameter is 0 (no offset beyond them), probed on a random input."""
    params = dict(module.named_parameters(recurse=False))
    some = next(iter(params.values()))
    x = torch.randn(2, 3, some.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(some)
    y = functional_call(module, {attr: torch.zeros_like(p) for attr, p in params.items()}, (x,))
    return bool((y == 0).all())


class TaskRows:
    """Maps the rows of a batch to the tasks whose θ' they are computed at, and applies factor terms per row.

    A task's rows are flattened into one sequence, so each task's terms are one batched product: [tasks, its rows ·
    tokens, ·] against [tasks, T, ·]. Tasks with fewer rows than the most are padded with zero rows (computed and
    dropped), which costs a scatter and a gather per term instead of a loop over tasks."""

    def __init__(self, row_task: torch.Tensor, n_tasks: int):
        counts = torch.bincount(row_task, minlength=n_tasks)
        starts = torch.cumsum(counts, 0) - counts
        self.row_task, self.n_tasks = row_task, n_tasks
        self.rows_per_task = int(counts.max())
        uniform = bool((counts == self.rows_per_task).all())
        if not bool((row_task[1:] >= row_task[:-1]).all()):  # every layout below relies on it
            raise ValueError("row_task must be sorted: rows grouped by task")
        # slot[i]: where row i sits in the padded [tasks × rows_per_task] layout (None: the rows already fill it)
        self.slot = (
            None
            if uniform
            else row_task * self.rows_per_task + torch.arange(len(row_task), device=row_task.device) - starts[row_task]
        )

    def per_row(self, vectors: torch.Tensor) -> torch.Tensor:
        """[B, d] task vectors -> [R, 1, d], broadcast over the tokens of each row."""
        if self.slot is None and self.rows_per_task == 1:  # row i is task i: no gather
            return vectors.unsqueeze(1)
        return vectors.index_select(0, self.row_task).unsqueeze(1)

    def by_task(self, x: torch.Tensor, term: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`term` over [tasks, rows_per_task · tokens, ·], each task's rows flattened, mapped back to [R, tokens, ·]."""
        rows, tokens = x.shape[:2]
        if self.slot is not None:
            padded = x.new_zeros(self.n_tasks * self.rows_per_task, *x.shape[1:])
            x = padded.index_copy(0, self.slot, x)
        result = term(x.reshape(self.n_tasks, self.rows_per_task * tokens, *x.shape[2:]))
        result = result.reshape(-1, tokens, *result.shape[2:])
        return result if self.slot is None else result.index_select(0, self.slot)

    def linear_term(self, h: torch.Tensor, factors, n_out: int) -> torch.Tensor:
        """h G_bᵀ for each row's task: (h Vᵀ) U, U dense or one-hot ids (scattered into the output columns)."""

        def term(flat: torch.Tensor) -> torch.Tensor:
            total = 0
            for u, v in factors:
                scores = flat @ v.transpose(1, 2).to(flat.dtype)  # [tasks, tokens, T]
                if u.dtype == torch.long:
                    ids = u.unsqueeze(1).expand(-1, flat.shape[1], -1)
                    total = total + torch.zeros(
                        *flat.shape[:2], n_out, dtype=flat.dtype, device=flat.device
                    ).scatter_add(-1, ids, scores)
                else:
                    total = total + scores @ u.to(flat.dtype)
            return total

        return self.by_task(h, term)

    def lookup_term(self, ids: torch.Tensor, factors) -> torch.Tensor:
        """G_b[ids] for each row's task: Σ_t U[t, id] v_t, U dense or one-hot ids."""

        def term(flat: torch.Tensor) -> torch.Tensor:
            total = 0
            for u, v in factors:
                if u.dtype == torch.long:
                    weights = (flat.unsqueeze(-1) == u.unsqueeze(1)).to(v.dtype)  # [tasks, tokens, T]
                else:
                    weights = u.gather(-1, flat.unsqueeze(1).expand(-1, u.shape[1], -1)).transpose(1, 2)
                total = total + weights @ v
            return total

        return self.by_task(ids.unsqueeze(-1), lambda flat: term(flat.squeeze(-1)))
