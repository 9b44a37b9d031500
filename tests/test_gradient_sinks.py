"""Gradient sinks (update/gradient_sinks.py) leave the meta-gradient as it was, only summed in another order: the
same .grad as autograd's own summation and the explicit update's, in float64, over several passes; the trainer uses
them only where they are exact; the modules are restored; no weight gradient is computed in the context pass."""

import contextlib

import pytest
import torch

from conftest import tiny_config
from promptgd.config import InnerConfig
from promptgd.models.loading import load_model
from promptgd.models.lora import init_factors, lora_inner
from promptgd.models.parameterization import full_rank
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.train.metastep import meta_loss
from promptgd.train.trainer import MetaTrainer
from promptgd.update import gradient_sinks as sinks_module
from promptgd.update.explicit import ExplicitUpdate
from promptgd.update.gradient_sinks import gradient_sinks
from promptgd.update.implicit import LowRankUpdate
from promptgd.update.step_sizes import StepSizes
from test_implicit import float64_model, passes
from test_train import copy_tasks

pytestmark = pytest.mark.usefixtures("float64_exact")


def accumulated_grads(param, tasks, inner, first_order, update, sinks: bool, prompt_weight: float = 1.0):
    """.grad after one backward per pass, as the trainer runs an outer step (the Prompt term included)."""
    for p in param.trainable.values():
        p.grad = None
    for task in tasks:
        params = param.fast()
        with gradient_sinks(param.model) if sinks else contextlib.nullcontext():
            loss = meta_loss(param.forward, params, task, update, StepSizes(inner.lr), inner, first_order)
            prompt = answer_loss(
                answer_logprobs(param.forward, params, task.prompts), task.target, task.contexts_per_task
            )
            loss = loss + prompt_weight * prompt
        loss.backward()
    return {name: p.grad.clone() for name, p in param.trainable.items()}


def assert_close(a: dict, b: dict, rel: float = 1e-10):
    scale = max(float(g.abs().max()) for g in b.values())
    worst = max(float((a[k] - b[k]).abs().max()) for k in b)
    assert worst <= rel * max(scale, 1.0), worst


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_sinks_give_autograds_gradient_and_the_explicit_one_over_several_passes(first_order, steps):
    model, tokenizer = float64_model("tiny:llama")  # tied embedding and LM head: one leaf, used by both
    param = full_rank(model)
    update = LowRankUpdate(model, list(param.fast()))
    inner = InnerConfig(lr=2.0, contexts=2, steps=steps)  # large η: the second-order term is big
    alone, _ = passes(tokenizer, k=2)
    two_passes = [alone[0], type(alone[0]).merge(alone[1:])]

    with_sinks = accumulated_grads(param, two_passes, inner, first_order, update, sinks=True)
    without = accumulated_grads(param, two_passes, inner, first_order, update, sinks=False)
    explicit = accumulated_grads(param, alone, inner, first_order, ExplicitUpdate(), sinks=False)
    assert_close(with_sinks, without)
    assert_close(with_sinks, explicit)
    assert all(g.abs().sum() > 0 for g in with_sinks.values())


def trainer(cfg, out):
    model, tokenizer = load_model(cfg.model.spec, cfg.model.dtype, cfg.model.device)
    factors = init_factors(model, cfg.lora, cfg.train.seed)
    param = lora_inner(model, factors, cfg.lora) if cfg.lora.variant == "inner" else full_rank(model)
    return MetaTrainer(cfg, tokenizer, param, copy_tasks(16), [], out), param


@pytest.mark.parametrize(
    "overrides,on",
    [((), True), (("inner.implementation=explicit",), False), (("lora.variant=inner", "lora.rank=1"), False)],
)
def test_the_trainer_uses_sinks_only_where_they_are_exact_and_they_change_no_step(tmp_path, overrides, on):
    """Explicit update: its inner gradient is taken with respect to the leaves, which a sink would answer with
    nothing. LoRA inner: the trainable leaves are the factors. One task per pass: four passes accumulate."""
    common = ("train.batch_size=4", "train.pass_tokens=1", "train.prompt_weight=1", "train.lr=1e-2", *overrides)
    sunk, sunk_param = trainer(tiny_config(*common), tmp_path / "a")
    plain, plain_param = trainer(tiny_config(*common, "train.gradient_sinks=false"), tmp_path / "b")
    assert sunk.sinks is on and plain.sinks is False
    a, b = sunk.train_step(), plain.train_step()
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    # The gradients, not the weights after Adam: Adam's step on a near-zero gradient is its sign, which rounding flips.
    scale = max(float(p.grad.abs().max()) for p in plain_param.trainable.values())
    for name, p in sunk_param.trainable.items():
        assert torch.allclose(p.grad, plain_param.trainable[name].grad, rtol=1e-4, atol=1e-6 * scale), name


def test_the_modules_forward_is_restored_even_after_an_error():
    model, _ = float64_model("tiny:llama-1l")
    linear = model.lm_head
    with pytest.raises(RuntimeError, match="inside"), gradient_sinks(model):
        assert "forward" in linear.__dict__
        raise RuntimeError("inside")
    assert "forward" not in linear.__dict__ and "forward" not in model.model.embed_tokens.__dict__


def test_the_context_pass_computes_no_weight_gradient(monkeypatch):
    """The context pass's own backward asks for δ's only; a weight gradient there would double its cost."""
    model, tokenizer = float64_model("tiny:llama-1l")
    param = full_rank(model)
    update = LowRankUpdate(model, list(param.fast()))
    task = passes(tokenizer, k=1)[0][0]
    computed = []
    real = sinks_module._TwoWayLinear.backward

    def counting(ctx, grad_y):
        grads = real(ctx, grad_y)
        computed.append((torch.is_grad_enabled(), grads[1] is not None))
        return grads

    monkeypatch.setattr(sinks_module._TwoWayLinear, "backward", staticmethod(counting))
    with gradient_sinks(model):
        loss = meta_loss(param.forward, param.fast(), task, update, StepSizes(0.1), InnerConfig(lr=0.1), False)
    inner_backward = [weight_grad for recording, weight_grad in computed if recording]  # create_graph: the context's
    assert inner_backward and not any(inner_backward)
    computed.clear()
    loss.backward()
    assert computed and all(weight_grad for _, weight_grad in computed)
