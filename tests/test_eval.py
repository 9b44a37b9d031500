"""Evaluation modes: FT never mutates the model, FT with lr 0 is NC, Prompt beats NC on a copying model."""

import json

import pytest
import torch

from conftest import DEVICE, tiny_config
from promptgd.cli import main
from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple, write_jsonl
from promptgd.evaluate.recipe import evaluate_model
from promptgd.lm import TokenBatch, functional_forward, lm_loss, sequence_losses
from promptgd.models.loading import load_model
from promptgd.models.parameterization import full_rank, with_lr_scales
from promptgd.update.explicit import ExplicitUpdate, inner_update
from promptgd.update.implicit import LowRankUpdate
from promptgd.update.step_sizes import StepSizes


def test_ft_leaves_parameters_bit_identical(tiny, triples):
    model, tokenizer = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate_model(
        model, tokenizer, triples, tiny_config("eval.modes=ft,ft_irrelevant", "inner.lr=0.5"), progress=False
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_ft_with_zero_lr_equals_nc_exactly(tiny, triples):
    model, tokenizer = tiny
    cfg = tiny_config("eval.modes=nc,ft", "inner.lr=0.0", "eval.batch_size=1")
    records = evaluate_model(model, tokenizer, triples, cfg, progress=False).records
    nc = [r for r in records if r["mode"] == "nc"]
    ft = [r for r in records if r["mode"] == "ft"]
    assert [(r["prediction"], r["nll"]) for r in nc] == [(r["prediction"], r["nll"]) for r in ft]


def test_ft_update_changes_the_answer_distribution(tiny, triples):
    model, tokenizer = tiny
    cfg = tiny_config("eval.modes=nc,ft,ft_irrelevant", "inner.lr=0.05")
    modes = evaluate_model(model, tokenizer, triples, cfg, progress=False).modes
    assert modes["ft"]["nll"] != modes["nc"]["nll"] and modes["ft"]["nll"] != modes["ft_irrelevant"]["nll"]


def _copy_triples(n: int, seed: int) -> list[Triple]:
    """Contexts that contain the answer; only reading the context can give it."""
    g = torch.Generator().manual_seed(seed)
    words = ["".join(chr(97 + i) for i in torch.randint(26, (4,), generator=g).tolist()) for _ in range(n)]
    return [Triple(f"The code is {w}.", "The code:", f" {w}") for w in words]


def _train_to_copy(model, tokenizer, steps: int = 1000) -> None:
    """Ordinary training on Prompt-format copy triples (1,000 steps of 16 take ~7 s on a tiny model)."""
    encoder = Encoder(tokenizer, tiny_config().format)
    forward, params = functional_forward(model), dict(model.named_parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        batch = _copy_triples(16, seed=1000 + step)
        prefixes = [encoder.prompt(t) for t in batch]
        sequences = [p + encoder.response(t) + encoder.answer_end() for p, t in zip(prefixes, batch)]
        loss = lm_loss(
            forward,
            params,
            TokenBatch.from_lists(sequences, tokenizer.pad_token_id, [len(p) for p in prefixes], DEVICE),
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.integration
def test_prompt_beats_nc_on_a_model_trained_to_copy(tiny):
    model, tokenizer = tiny
    _train_to_copy(model, tokenizer)
    held_out = [Triple("The code is wxyz.", "The code:", " wxyz")] + _copy_triples(8, seed=2)
    modes = evaluate_model(model, tokenizer, held_out, tiny_config("eval.modes=nc,prompt"), progress=False).modes
    assert modes["prompt"]["nll"] < modes["nc"]["nll"] - 1.0
    assert modes["prompt"]["accuracy"] > modes["nc"]["accuracy"]


@pytest.mark.integration
def test_cli_eval_writes_the_documented_shapes(tmp_path, triples):
    write_jsonl(triples, tmp_path / "t.jsonl")
    main(
        [
            "eval",
            f"model.device={DEVICE}",
            "eval.max_new_tokens=4",
            "--split",
            "test",
            "--model",
            "tiny:llama",
            "--task",
            f"jsonl:{tmp_path / 't.jsonl'}",
            "--modes",
            "nc,prompt,ft",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    summary = json.loads((tmp_path / "x" / "summary.json").read_text())
    assert summary["model"] == "tiny:llama" and summary["n"] == 2
    assert set(summary["modes"]) == {"nc", "prompt", "ft"}
    assert set(summary["modes"]["ft"]) >= {"accuracy", "exact_match", "prefix_match", "nll"}
    rows = [json.loads(line) for line in (tmp_path / "x" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and set(rows[0]) >= {"context", "query", "gold", "prediction", "correct", "nll"}


def test_multi_context_ft_asks_every_query_after_one_update(tiny, triples):
    model, tokenizer = tiny
    cfg = tiny_config("eval.modes=ft", "inner.contexts=3", "inner.lr=0.05")
    records = evaluate_model(model, tokenizer, triples, cfg, progress=False).records
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    one_at_a_time = evaluate_model(
        model, tokenizer, triples, tiny_config("eval.modes=ft", "inner.lr=0.05"), progress=False
    ).records
    assert [r["nll"] for r in records] != [r["nll"] for r in one_at_a_time]  # the update now holds all three contexts


@pytest.mark.parametrize("implementation", ["explicit", "implicit"])
def test_questions_sharing_a_context_share_one_update(tiny, monkeypatch, implementation):
    model, tokenizer = tiny
    shared = "Ada Lovelace wrote the first program."
    triples = [
        Triple(shared, "Who wrote it?", " Ada"),
        Triple("Rain falls.", "What falls?", " Rain"),
        Triple(shared, "What did she write?", " the first program"),
    ]
    absorbed = []  # contexts the inner updates absorbed
    full_rank(model).inner_update(implementation)  # the implicit update's one probe runs here, uncounted
    kind = ExplicitUpdate if implementation == "explicit" else LowRankUpdate
    original_absorb = kind.absorb

    def counted_absorb(self, forward, params, contexts, *args):
        absorbed.extend(contexts)
        return original_absorb(self, forward, params, contexts, *args)

    monkeypatch.setattr(kind, "absorb", counted_absorb)
    cfg = tiny_config("eval.modes=ft,ft_irrelevant", "inner.lr=0.05", f"inner.implementation={implementation}")
    grouped = evaluate_model(model, tokenizer, triples, cfg, progress=False).records
    assert len(absorbed) == 4  # two distinct contexts, per mode
    alone = [evaluate_model(model, tokenizer, [t], cfg, progress=False).records for t in triples]
    ft = [r for r in grouped if r["mode"] == "ft"]
    assert [r["index"] for r in ft] == [0, 1, 2]
    for record, (single, _) in zip(ft, alone):
        assert record["prediction"] == single["prediction"] and abs(record["nll"] - single["nll"]) < 1e-4
    irrelevant = {r["index"]: r for r in grouped if r["mode"] == "ft_irrelevant"}
    # Each group absorbs the other group's context, so question 0 sees "Rain falls." and question 1 the shared text.
    assert irrelevant[0]["nll"] != ft[0]["nll"] and irrelevant[1]["nll"] != ft[1]["nll"]


def test_a_deliberately_oversized_multi_step_update_is_held_not_answered_in_degenerate_text(tiny, triples):
    """η = 50 over 4 steps raises the context's own loss: unguarded, FT answers from the diverged weights (and says
    so in diverged_share); guarded, the update stops before the first step that raised it, here the first, so FT
    answers as the model does without an update."""
    model, tokenizer = tiny
    common = ("eval.modes=nc,ft", "inner.lr=50", "inner.steps=4")
    unguarded = evaluate_model(model, tokenizer, triples, tiny_config(*common), progress=False)
    guarded = evaluate_model(model, tokenizer, triples, tiny_config(*common, "inner.guard=stop"), progress=False)
    assert unguarded.modes["ft"]["diverged_share"] == 1.0 and guarded.modes["ft"]["diverged_share"] == 0.0
    nc = [r["prediction"] for r in guarded.records if r["mode"] == "nc"]
    assert [r["prediction"] for r in guarded.records if r["mode"] == "ft"] == nc
    assert [r["prediction"] for r in unguarded.records if r["mode"] == "ft"] != nc
    assert "diverged_share" not in unguarded.modes["nc"]


@pytest.mark.parametrize("guard", ["stop", "halve"])
def test_a_guarded_update_keeps_every_step_that_lowers_the_context_loss(tiny, guard):
    """At a small η no step raises the loss, so the guarded update is the unguarded one."""
    model, tokenizer = tiny
    forward, params = functional_forward(model), {k: v.detach().requires_grad_() for k, v in model.named_parameters()}
    context = [TokenBatch.from_lists([tokenizer("Ada wrote the first program.")["input_ids"]], 0, device=DEVICE)]
    plain = ExplicitUpdate().absorb(forward, params, context, 1, StepSizes(0.01), steps=3)
    kept = ExplicitUpdate(guard=guard).absorb(forward, params, context, 1, StepSizes(0.01), steps=3)
    assert all(torch.allclose(plain[k], kept[k], rtol=0, atol=1e-6) for k in plain)


@pytest.mark.usefixtures("float64_exact")
def test_multi_step_evaluation_with_learned_step_sizes_scores_the_explicit_update(triples):
    """The path behind the SQuAD headline (several steps of learned sizes, explicit with reused buffers): each FT
    answer's NLL is the NLL at θ' computed directly from `inner_update` (no buffers)."""
    model, tokenizer = load_model("tiny:llama", dtype="float64", device=DEVICE)
    model.set_attn_implementation("sdpa")
    param = with_lr_scales(full_rank(model), "factored", freeze_weights=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for v in param.lr_scales.values():
            v.copy_(0.3 * torch.randn(v.shape, generator=generator, dtype=v.dtype))
    cfg = tiny_config("eval.modes=ft", "inner.lr=0.2", "inner.steps=3", "inner.lr_scales=factored")
    records = evaluate_model(model, tokenizer, triples, cfg, progress=False, param=param).records
    encoder, step = Encoder(tokenizer, cfg.format), param.step_size(cfg.inner, detach=True)
    for record, triple in zip(records, triples):
        leaves = {k: v.detach().requires_grad_() for k, v in param.fast().items()}
        context = [TokenBatch.from_lists([encoder.context(triple)], tokenizer.pad_token_id, device=DEVICE)]
        adapted = inner_update(param.forward, leaves, context, step, steps=3)
        answered = TokenBatch.answered(
            [encoder.query(triple)], [encoder.response(triple)], tokenizer.pad_token_id, DEVICE
        )
        with torch.no_grad():
            nll = float(sequence_losses(param.forward, adapted, answered)[0])
        assert record["nll"] == pytest.approx(nll, rel=1e-9, abs=1e-9)
