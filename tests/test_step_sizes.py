"""Meta-learned step sizes (inner.lr_scales): the implicit update applies them exactly as the explicit one, their
meta-gradient matches central differences, and with train.freeze_weights only they change, so NC and Prompt stay."""

import pytest
import torch

from conftest import DEVICE, tiny_config
from promptgd.cli import main
from promptgd.config import ConfigError, InnerConfig
from promptgd.errors import UserError
from promptgd.evaluate.recipe import evaluate_model, parameterization_for
from promptgd.models.loading import load_model
from promptgd.models.parameterization import LR_SCALES, full_rank, with_lr_scales
from promptgd.train.metastep import meta_loss
from promptgd.train.recipe import run_train
from promptgd.train.trainer import MetaTrainer
from promptgd.update.explicit import ExplicitUpdate, inner_update
from promptgd.update.implicit import LowRankUpdate
from promptgd.update.step_sizes import FILE, StepSizes
from test_implicit import CONTEXTS, QUERIES, float64_model, passes, rows
from test_train import copy_tasks

pytestmark = pytest.mark.usefixtures("float64_exact")

LR = 0.7


def scaled(model, kind: str, spread: float = 0.5):
    """The full-rank parameterization with random log-scales (seeded), so every η differs."""
    param = with_lr_scales(full_rank(model), kind, freeze_weights=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for v in param.lr_scales.values():
            v.copy_(spread * torch.randn(v.shape, generator=generator, dtype=v.dtype))
    return param


def test_zero_log_scales_take_the_plain_step():
    model, tokenizer = float64_model()
    param = with_lr_scales(full_rank(model), "factored", freeze_weights=True)
    step = param.step_size(InnerConfig(lr=LR, lr_scales="factored"))
    contexts = [rows(tokenizer, [CONTEXTS[0]])]
    learned = inner_update(param.forward, param.fast(), contexts, step)
    plain = inner_update(param.forward, param.fast(), contexts, StepSizes(LR))
    assert all(torch.allclose(learned[k], plain[k], rtol=0, atol=1e-15) for k in plain)
    assert param.step_size(InnerConfig(lr=LR, lr_scales="none")) == StepSizes(LR)  # the override: the plain step


@pytest.mark.parametrize("kind", ["tensor", "factored"])
@pytest.mark.parametrize("steps", [1, 2])
def test_implicit_step_with_learned_sizes_gives_the_explicit_logits(kind, steps):
    model, tokenizer = float64_model()  # tied embeddings: the LM head's and the lookup's scales are the same ones
    param = scaled(model, kind)
    step = param.step_size(InnerConfig(lr=LR, lr_scales=kind))
    params = param.fast()
    update = LowRankUpdate(model, list(params))
    updates = update.absorb(param.forward, params, [rows(tokenizer, [c]) for c in CONTEXTS], len(CONTEXTS), step, steps)
    batch = rows(tokenizer, QUERIES)
    adapted, shared = update.adapted(param.forward, params, updates, torch.arange(len(QUERIES), device=DEVICE))
    implicit = adapted(shared, input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    moved = 0.0
    for task, context in enumerate(CONTEXTS):
        mine = batch.rows([task])
        real = mine.attention_mask[0].bool()
        logits = {}
        for name, lr in (("learned", step), ("plain", StepSizes(LR))):
            adapted = inner_update(param.forward, params, [rows(tokenizer, [context])], lr, steps)
            logits[name] = param.forward(adapted, input_ids=mine.input_ids, attention_mask=mine.attention_mask)
            logits[name] = logits[name].logits[0][real]
        assert (implicit[task][real] - logits["learned"]).abs().max() < 1e-10
        moved = max(moved, float((logits["learned"] - logits["plain"]).abs().max().detach()))
    assert moved > 1e-3  # the learned sizes change the step, so the comparison tests them


@pytest.mark.parametrize("kind", ["tensor", "factored"])
@pytest.mark.parametrize("steps,first_order", [(1, False), (1, True), (2, False)])
def test_meta_gradient_of_the_scales_matches_central_differences(kind, steps, first_order):
    model, tokenizer = float64_model("tiny:llama-1l")
    param = scaled(model, kind, spread=0.3)
    inner = InnerConfig(lr=2.0, steps=steps, lr_scales=kind)
    alone, merged = passes(tokenizer, k=1)
    update = LowRankUpdate(model, list(param.fast()))
    scales = list(param.trainable.values())
    assert set(param.trainable) == {LR_SCALES + k for k in param.lr_scales}  # frozen weights: the scales alone

    def loss(implicit: bool, order: bool):
        step = param.step_size(inner)
        if implicit:
            return meta_loss(param.forward, param.fast(), merged, update, step, inner, order)
        return sum(meta_loss(param.forward, param.fast(), t, ExplicitUpdate(), step, inner, order) for t in alone)

    implicit = torch.autograd.grad(loss(True, first_order), scales)
    explicit = torch.autograd.grad(loss(False, first_order), scales)
    assert max(float((a - b).abs().max()) for a, b in zip(implicit, explicit)) < 1e-10

    generator = torch.Generator().manual_seed(1)
    base = [v.detach().clone() for v in scales]
    direction = [torch.randn(v.shape, generator=generator, dtype=v.dtype) for v in base]
    norm = torch.sqrt(sum(d.pow(2).sum() for d in direction))
    direction = [d / norm for d in direction]

    def loss_at(sign: float) -> float:
        with torch.no_grad():
            for v, b, d in zip(scales, base, direction):
                v.copy_(b + sign * 1e-6 * d)
        return float(loss(True, False).detach())

    numeric = (loss_at(1) - loss_at(-1)) / 2e-6
    loss_at(0)
    analytic = sum(float((g * d).sum()) for g, d in zip(implicit, direction))
    # With one step even the first-order meta-gradient is exact: θ' depends on the scales only through η, and
    # ∇L_LM(c; θ) does not involve them (after two, the second step's gradient depends on the first's η).
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def assert_only_the_scales_train(cfg, out) -> None:
    """Meta-train factored scales on 8 copy tasks with the weights frozen: the weights stay bit-identical and get no
    gradient, the scales move."""
    start, tokenizer = load_model(cfg.model.spec, cfg.model.dtype, cfg.model.device)
    before = {k: v.detach().clone() for k, v in start.named_parameters()}
    param = with_lr_scales(full_rank(start), "factored", freeze_weights=True)
    MetaTrainer(cfg, tokenizer, param, copy_tasks(8), [], out).train(progress=False)
    assert all(torch.equal(before[k], v) and v.grad is None for k, v in start.named_parameters())
    assert any(float(v.detach().abs().max()) > 0 for v in param.lr_scales.values())


@pytest.mark.integration
def test_frozen_weights_train_only_the_scales_and_they_reach_the_saved_model(tmp_path):
    cfg = tiny_config(
        "inner.lr_scales=factored",
        "train.freeze_weights=true",
        "train.objective=lg",
        "train.n_tasks=8",
        "train.lr_scales_lr=0.1",
        "inner.lr=0.3",
        "train.lm_weight=0.5",  # constant with frozen weights: not computed
        "train.prompt_weight=1.0",
        "eval.modes=nc,prompt,ft",
    )
    assert_only_the_scales_train(cfg, tmp_path / "direct")

    path = run_train(cfg, tmp_path / "run", progress=False)
    assert (path / FILE).is_file()
    model, tokenizer = load_model(str(path), device=DEVICE)
    loaded = parameterization_for(model)
    assert isinstance(loaded.step_size(cfg.inner), StepSizes)
    triples = copy_tasks(4)
    learned = evaluate_model(model, tokenizer, triples, cfg, progress=False, param=loaded).modes
    plain_cfg = tiny_config("inner.lr=0.3", "eval.modes=nc,prompt,ft")
    plain = evaluate_model(model, tokenizer, triples, plain_cfg, progress=False, param=loaded).modes
    assert learned["nc"] == plain["nc"] and learned["prompt"] == plain["prompt"]
    assert learned["ft"]["nll"] != plain["ft"]["nll"]

    # `promptgd absorb` writes a model that absorbs more text with the same learned step sizes.
    (tmp_path / "notes.txt").write_text("The code is abc.")
    args = ["--model", str(path), "--context", str(tmp_path / "notes.txt"), "--device", DEVICE]
    main(["absorb", *args, "--out", str(tmp_path / "absorbed")])
    absorbed, _ = load_model(str(tmp_path / "absorbed"), device=DEVICE)
    again = parameterization_for(absorbed)
    assert all(torch.equal(again.lr_scales[k], v) for k, v in loaded.lr_scales.items())

    (path / FILE).unlink()
    with pytest.raises(UserError, match=FILE):
        parameterization_for(model)


def test_lc_with_frozen_weights_trains_only_the_scales(tmp_path):
    # LC's teacher (the model given c ⊕ q) reads the same frozen weights that the learned step starts from.
    cfg = tiny_config(
        "inner.lr_scales=factored",
        "train.freeze_weights=true",
        "train.objective=lc",
        "train.n_tasks=8",
        "train.lr_scales_lr=0.1",
        "inner.lr=0.3",
    )
    assert_only_the_scales_train(cfg, tmp_path)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.freeze_weights=true"], "inner.lr_scales=tensor or factored"),
        (["inner.lr_scales=tensor", "lora.variant=inner"], "lora.variant=none"),
        (["inner.lr_scales=tensor", "train.lr_scales_lr=0"], "train.lr_scales_lr"),
    ],
)
def test_step_size_settings_that_cannot_work_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(*overrides)


@pytest.mark.integration
@pytest.mark.parametrize("freeze", [True, False])
def test_resume_with_learned_step_sizes_equals_uninterrupted(tmp_path, freeze):
    cfg = tiny_config(
        "inner.lr_scales=factored",
        f"train.freeze_weights={str(freeze).lower()}",
        "train.objective=lg",
        "train.n_tasks=12",
        "train.ckpt_every=2",
        "train.lr=1e-3",
        "inner.lr=0.3",
    )

    def trainer(out):
        model, tokenizer = load_model(cfg.model.spec, cfg.model.dtype, cfg.model.device)
        param = with_lr_scales(full_rank(model), "factored", freeze_weights=freeze)
        return MetaTrainer(cfg, tokenizer, param, copy_tasks(12), [], out), param

    straight, straight_param = trainer(tmp_path / "a")
    straight.train(progress=False)
    first, _ = trainer(tmp_path / "b")
    first.train(progress=False, stop_after=3)  # "crash" after step 3, where it saved its last checkpoint
    resumed, resumed_param = trainer(tmp_path / "b")
    resumed.resume()
    assert resumed.step == 3
    resumed.train(progress=False)
    # Weights and scales: two parameter groups of the optimiser, whose state must come back to the right tensors.
    assert straight_param.trainable.keys() == resumed_param.trainable.keys()
    for name, value in straight_param.trainable.items():
        assert torch.equal(value, resumed_param.trainable[name]), name
    weights = 0 if freeze else len(dict(straight_param.model.named_parameters()))
    assert len(straight_param.trainable) == len(straight_param.lr_scales) + weights
