"""What the outer optimiser trains, how it becomes the parameter dict the inner step updates, and which inner update
(update/) applies to it.

The meta-step only ever sees `fast()`, `forward` and `inner_update()`; full-rank and LoRA meta-learning differ only
here.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from promptgd.config import InnerConfig
from promptgd.lm import Params, TokenBatch, functional_forward
from promptgd.update.explicit import ExplicitUpdate, InnerUpdate
from promptgd.update.implicit import LowRankUpdate, UnsupportedModule
from promptgd.update.implicit_lora import LoraTaskUpdate
from promptgd.update.step_sizes import Kind, StepSizes, init_log_scales

LR_SCALES = "lr_scales/"  # prefix of the learned step sizes' names among the trainable tensors (and in checkpoints)


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
    lora_inner_scale: float | None = None  # LoRA-inner: s = alpha / r of the factors fast() returns; else None
    sharded: bool = False  # the model is FSDP2-sharded (train/fsdp.py): it runs only on its own parameters
    lr_scales: dict[str, torch.nn.Parameter] = field(
        default_factory=dict
    )  # meta-learned log step sizes of the inner update (update/step_sizes.py), keyed by fast()'s names; {}: one η

    def step_size(self, inner: InnerConfig, detach: bool = False) -> StepSizes:
        """What the inner update multiplies gradients by: inner.lr, times the learned scales unless there are none or
        inner.lr_scales=none asks for the plain step (`detach`: the scales as constants, for evaluation)."""
        if not self.lr_scales or inner.lr_scales == "none":
            return StepSizes(inner.lr)
        return StepSizes(inner.lr, {k: v.detach() if detach else v for k, v in self.lr_scales.items()})

    def inner_update(
        self, implementation: str, reuse_buffers: bool = False, guard: str = "none", probe: bool = True
    ) -> InnerUpdate:
        """The inner update for this parameterization (inner.implementation): the implicit one that fits it, or the
        explicit one when asked for, when guarded (inner.guard), when the implicit form does not cover the model, or
        when the implicit update disagrees with the explicit one on a probe (each of the last two said in a warning;
        `probe=False` skips the probe, for a model about to be sharded, too large for an explicit copy).
        `reuse_buffers`: an explicit update for evaluation, which writes every θ' into one set of buffers."""
        # A dict the model runs only through to_model (other than LoRA-inner's factors) is not one hooks can update.
        hookable = self.to_model is _identity or self.lora_inner_scale is not None
        if implementation == "explicit" or guard != "none" or not hookable:
            return ExplicitUpdate(reuse_buffers, guard)
        try:
            if self.lora_inner_scale is not None:
                update = LoraTaskUpdate(self.model, list(self.fast()), self.lora_inner_scale)
            else:
                update = LowRankUpdate(self.model, list(self.fast()))
        except UnsupportedModule as e:
            warnings.warn(f"inner.implementation=implicit: {e}; using the explicit update", stacklevel=2)
            return ExplicitUpdate(reuse_buffers)
        if probe and not self.sharded and not _agrees_with_explicit(self, update):
            warnings.warn(
                f"inner.implementation=implicit: on a probe context the implicit update of {type(self.model).__name__} "
                "differs from the explicit one (a weight used outside its own module?); using the explicit update",
                stacklevel=2,
            )
            return ExplicitUpdate(reuse_buffers)
        return update

    def forward(self, params: Params, **kwargs):
        """Run the model on a dict shaped like fast()'s."""
        if self.sharded:
            # FSDP2 gathers a layer's weights inside the layer's own call, where functional_call would hand it the
            # shards: the model runs as itself, and only on its own parameters (the implicit update's hooks add θ').
            if params is not self.trainable:
                raise RuntimeError("a sharded model runs only on its own parameters (the implicit inner update)")
            return self.model(**kwargs)
        return functional_forward(self.model)(self.to_model(params), **kwargs)


def full_rank(model: torch.nn.Module, sharded: bool = False) -> Parameterization:
    """Meta-learn every weight; the inner step updates every weight. Tied weights appear once."""
    params = dict(model.named_parameters())
    return Parameterization(model=model, trainable=params, fast=lambda: params, sharded=sharded)


def with_lr_scales(
    param: Parameterization, kind: Kind, freeze_weights: bool, log_scales: dict[str, torch.Tensor] | None = None
) -> Parameterization:
    """`param` whose inner step also has meta-learned step sizes (zero log-scales: the plain step, unless
    `log_scales` gives trained ones); with `freeze_weights` they are all the outer optimiser trains."""
    scales = init_log_scales(param.fast(), kind)
    if log_scales is not None:
        if missing := set(scales) ^ set(log_scales):
            raise ValueError(f"learned step sizes do not match the model's parameters: {sorted(missing)[:3]}")
        with torch.no_grad():
            for name, value in log_scales.items():
                scales[name].copy_(value)
    trainable = {} if freeze_weights else dict(param.trainable)
    return replace(param, trainable={**trainable, **{LR_SCALES + k: v for k, v in scales.items()}}, lr_scales=scales)


# The probe's verdict per model and parameter set: it costs one explicit and one implicit step on a short context.
_PROBED: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[str, ...], bool]] = weakref.WeakKeyDictionary()
# Of the logits' move under the update. In float32 rounding leaves the two updates ~1e-6 of it apart (SmolLM2-135M:
# 2e-6) and a term lost to a weight used outside its module moves them ~1e-2 apart or more (tests/test_implicit.py).
PROBE_TOLERANCE = 1e-3
# Model classes whose implicit update the equality tests hold to the explicit one (tests/test_implicit.py): no probe.
VERIFIED = ("LlamaForCausalLM", "Qwen2ForCausalLM", "GPTNeoXForCausalLM")


@torch.no_grad()
def _agrees_with_explicit(param: Parameterization, update: InnerUpdate) -> bool:
    """Whether `update` moves the logits of a probe query as the explicit update does, after one step on a probe
    context: the run-time check of what the implicit form assumes (every updated weight is used only through its
    own module's forward), which no inspection of the modules can prove. Skipped for the VERIFIED classes and for
    weights below float32, whose own rounding (the explicit θ' is rounded to the weights' grid, the implicit terms
    are not) would hide what the probe looks for."""
    dtype = next(param.model.parameters()).dtype
    if type(param.model).__name__ in VERIFIED or dtype not in (torch.float32, torch.float64):
        return True
    key = tuple(param.fast())
    verdicts = _PROBED.setdefault(param.model, {})
    if key not in verdicts:
        verdicts[key] = _probe_disagreement(param, update) <= PROBE_TOLERANCE
    return verdicts[key]


def _probe_disagreement(param: Parameterization, update: InnerUpdate) -> float:
    """max |implicit − explicit logits| / max |explicit − base logits| on a 16-token context and an 8-token query;
    0 when the step moves nothing (no evidence either way)."""
    device = next(param.model.parameters()).device
    context = TokenBatch.from_lists([list(range(1, 17))], 0, device=device)
    query = TokenBatch.from_lists([list(range(17, 25))], 0, device=device)
    step, inputs = StepSizes(1e-2), {"input_ids": query.input_ids, "attention_mask": query.attention_mask}
    with torch.enable_grad():
        params = {name: p.detach().requires_grad_() for name, p in param.fast().items()}
        explicit = ExplicitUpdate().absorb(param.forward, params, [context], 1, step)
        implicit = update.absorb(param.forward, params, [context], 1, step)
    base = param.forward(params, **inputs).logits
    moved = (param.forward(explicit, **inputs).logits - base).abs().max()
    forward, shared = update.adapted(param.forward, params, implicit, torch.zeros(1, dtype=torch.long, device=device))
    off = (forward(shared, **inputs).logits - param.forward(explicit, **inputs).logits).abs().max()
    return float((off / moved).detach()) if moved > 0 else 0.0
