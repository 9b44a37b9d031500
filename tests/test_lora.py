"""LoRA variants: only the intended parameters change, zero deltas reproduce the base exactly, adapters
round-trip through PEFT, and a LoRA-inner run evaluates with its inner step on the factors."""

import copy

import pytest
import torch
from peft import PeftModel

from conftest import DEVICE, tiny_config
from promptgd.config import ConfigError
from promptgd.evaluate.recipe import evaluate_model, parameterization_for
from promptgd.models.loading import load_model
from promptgd.models.lora import init_factors, lora_inner, lora_outer, save_adapter
from promptgd.train.recipe import run_train
from promptgd.train.trainer import MetaTrainer
from test_train import copy_tasks

IDS = torch.tensor([[3, 70, 80, 90, 100]], device=DEVICE)


@pytest.mark.parametrize("variant", ["outer", "inner"])
def test_only_the_factors_are_meta_learned(tmp_path, variant):
    cfg = tiny_config(f"lora.variant={variant}", "train.objective=lg", "train.lr=1e-2", "lora.rank=2")
    model, tokenizer = load_model("tiny:llama", device=DEVICE)
    factors = init_factors(model, cfg.lora)
    param = (lora_outer if variant == "outer" else lora_inner)(model, factors, cfg.lora)
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    factors_before = {k: v.clone() for k, v in factors.items()}
    trainer = MetaTrainer(cfg, tokenizer, param, copy_tasks(8), [], tmp_path)
    trainer.train_step()
    trainer.train_step()
    assert all(torch.equal(base_before[k], v) for k, v in model.state_dict().items())
    changed = {k for k, v in factors.items() if not torch.equal(factors_before[k], v)}
    assert {k for k in changed if k.endswith("lora_B")} == {k for k in factors if k.endswith("lora_B")}
    assert any(k.endswith("lora_A") for k in changed)  # A too: the step on B (from 0) depends on A


def test_lora_inner_with_b_kept_at_zero_learns_a_and_leaves_the_model_without_update_unchanged(tmp_path):
    cfg = tiny_config("lora.variant=inner", "lora.meta_learn_b=false", "train.objective=lg", "train.lr=1e-2")
    model, tokenizer = load_model("tiny:llama", device=DEVICE)
    expected = model(IDS).logits
    factors = init_factors(model, cfg.lora)
    param = lora_inner(model, factors, cfg.lora)
    assert set(param.trainable) == {k for k in factors if k.endswith("lora_A")}
    a_before = {k: v.clone() for k, v in param.trainable.items()}
    trainer = MetaTrainer(cfg, tokenizer, param, copy_tasks(8), [], tmp_path)
    trainer.train_step()
    # Second order: B' = -η s δ (A x)ᵀ after the inner step, so the outer loss reaches A through it at once.
    assert all(not torch.equal(a_before[k], v) for k, v in param.trainable.items())
    trainer.train_step()
    assert all(
        torch.equal(v, torch.zeros_like(v)) and v.grad is None for k, v in factors.items() if k.endswith("lora_B")
    )
    assert torch.equal(param.forward(param.fast(), input_ids=IDS).logits, expected)  # NC and Prompt: the start model


def test_keeping_b_at_zero_is_refused_where_b_is_the_whole_delta():
    with pytest.raises(ConfigError, match="lora.meta_learn_b=false is for lora.variant=inner, got lora.variant=outer"):
        tiny_config("lora.variant=outer", "lora.meta_learn_b=false")


@pytest.mark.parametrize("rank", [0, 1, 4])
def test_zero_delta_reproduces_the_base_exactly(rank):
    cfg = tiny_config(f"lora.rank={rank}")
    model, _ = load_model("tiny:llama", device=DEVICE)
    expected = model(IDS).logits
    factors = init_factors(model, cfg.lora)
    for make in (lora_outer, lora_inner):
        param = make(model, factors, cfg.lora)
        assert torch.equal(param.forward(param.fast(), input_ids=IDS).logits, expected)


def test_saved_adapter_loads_in_peft_with_the_same_logits(tmp_path):
    cfg = tiny_config("lora.rank=2", "lora.alpha=4")
    model, _ = load_model("tiny:llama", device=DEVICE)
    factors = init_factors(model, cfg.lora)
    with torch.no_grad():
        for v in factors.values():
            v.normal_(std=0.05)  # a non-trivial delta
    merged = lora_outer(model, factors, cfg.lora)
    ours = merged.forward(merged.fast(), input_ids=IDS).logits
    save_adapter(model, factors, cfg.lora, tmp_path / "adapter", "tiny:llama")
    peft_model = PeftModel.from_pretrained(copy.deepcopy(model), tmp_path / "adapter")
    assert torch.allclose(peft_model(IDS).logits, ours, atol=1e-5)


@pytest.mark.integration
def test_lora_inner_run_evaluates_with_the_factor_update(tmp_path):
    cfg = tiny_config("lora.variant=inner", "train.objective=lg", "train.n_tasks=4", "inner.lr=0.5", "eval.modes=nc,ft")
    path = run_train(cfg, tmp_path, progress=False)
    model, tokenizer = load_model(str(path), device=DEVICE)
    param = parameterization_for(model)
    assert set(param.trainable) and all(".lora_" in k for k in param.trainable)
    before = {k: v.clone() for k, v in param.trainable.items()}
    triples = copy_tasks(3)
    result = evaluate_model(model, tokenizer, triples, cfg, progress=False, param=param)
    assert all(torch.equal(before[k], v) for k, v in param.trainable.items())
    assert result.modes["ft"]["nll"] != result.modes["nc"]["nll"]


def test_untrained_lora_inner_step_moves_only_b():
    cfg = tiny_config("lora.rank=1")
    model, _ = load_model("tiny:llama", device=DEVICE)
    factors = init_factors(model, cfg.lora)
    param = lora_inner(model, factors, cfg.lora)
    loss = param.forward(param.fast(), input_ids=IDS).logits.logsumexp(-1).mean()
    grads = dict(zip(factors, torch.autograd.grad(loss, list(factors.values()))))
    assert all(g.abs().sum() == 0 for k, g in grads.items() if k.endswith("lora_A"))  # B = 0 blocks A's gradient
    assert all(g.abs().sum() > 0 for k, g in grads.items() if k.endswith("lora_B"))
