"""The experiment scripts that turn committed rows into figures keep their output shape (last line: one JSON)."""

import gzip
import json

import pytest

from test_benchmarks import run_script


def test_val_curves_plots_ft_and_prompt_against_tasks_seen(tmp_path):
    run = tmp_path / "lg_2000"
    run.mkdir()
    (run / "config.yaml").write_text("train:\n  batch_size: 4\n")
    rows = [{"step": 1, "loss": 3.0}] + [
        {"step": s, "loss": 2.0, "val_ft": {"nll": 6.0 - s / 100}, "val_prompt": {"nll": 4.0}} for s in (50, 100)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "figures" / "curves"
    figures = run_script("experiments/val_curves.py", str(run), "--step0-ft", "6.3", "--out", str(out))
    assert figures["runs"]["lg_2000"] == {"ft": [[200, 5.5], [400, 5.0]], "prompt": [[200, 4.0], [400, 4.0]]}
    assert figures["step0"] == {"ft": 6.3, "prompt": None}
    assert out.with_suffix(".png").stat().st_size > 0 and json.loads(out.with_suffix(".json").read_text()) == figures


def test_answer_sources_counts_answers_found_in_their_own_context(tmp_path):
    row = tmp_path / "base"
    row.mkdir()
    records = [
        {
            "mode": "prompt",
            "index": 0,
            "context": "Ma Jianlong led the army.",
            "prediction": "ma jianlong\nQuestion: who",
        },
        {"mode": "ft", "index": 0, "context": "Ma Jianlong led the army.", "prediction": "Jia Jie"},
        {"mode": "ft", "index": 1, "context": "The army used arrows.", "prediction": " arrows"},
        {
            "mode": "ft",
            "index": 2,
            "context": "The army used arrows.",
            "prediction": "",
        },  # an empty answer is found nowhere
    ]
    with gzip.open(row / "predictions.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    assert run_script("experiments/answer_sources.py", str(row)) == {"base/prompt": 1.0, "base/ft": 1 / 3}


def test_step_size_profile_gives_each_tensors_mean_multiplier(tmp_path):
    import math

    import torch

    from promptgd.update.step_sizes import save_log_scales

    log_scales = {
        "model.layers.0.mlp.down_proj.weight@rows": torch.full((3,), math.log(2.0)),
        "model.layers.0.mlp.down_proj.weight@cols": torch.tensor([0.0, math.log(3.0)]),  # mean of exp: 2
        "model.norm.weight": torch.zeros(4),
    }
    save_log_scales(log_scales, tmp_path)
    profile = run_script("experiments/step_size_profile.py", str(tmp_path), "--out", str(tmp_path / "p"))
    assert profile["model.layers.0.mlp.down_proj.weight"] == pytest.approx(4.0, rel=1e-6)
    assert profile["model.norm.weight"] == 1.0
    assert json.loads((tmp_path / "p" / "step_size_profile.json").read_text()) == profile


def _write_predictions(row, records):
    row.mkdir()
    with gzip.open(row / "predictions.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def test_continuation_in_passage_splits_the_gap_by_whether_the_continuation_is_in_the_passage(tmp_path):
    in_passage = {"index": 0, "context": "Jekyll lived in London. The story of", "gold": "London doctor Jekyll"}
    elsewhere = {"index": 1, "context": "The ships sailed at", "gold": "dawn, the crew"}  # "the" alone does not count

    def rows(nll_in: dict, nll_out: dict) -> list[dict]:
        return [
            {**item, "mode": mode, "nll": nll[mode], "token_accuracy": 1.0 if mode == "prompt" else 0.0}
            for item, nll in ((in_passage, nll_in), (elsewhere, nll_out))
            for mode in ("nc", "prompt", "ft")
        ]

    _write_predictions(tmp_path / "base", rows({"nc": 6, "prompt": 2, "ft": 6}, {"nc": 5, "prompt": 3, "ft": 5}))
    _write_predictions(tmp_path / "lg", rows({"nc": 6, "prompt": 2, "ft": 4}, {"nc": 5, "prompt": 3, "ft": 5}))
    out = tmp_path / "split"
    gap = run_script(
        "experiments/continuation_in_passage.py",
        "--base",
        str(tmp_path / "base"),
        str(tmp_path / "lg"),
        "--out",
        str(out),
    )
    assert gap["lg"]["in passage"]["nll"] == 0.5 and gap["lg"]["not in passage"]["nll"] == 0.0
    assert (out / "continuation_in_passage.md").read_text().count("| lg |") == 2


@pytest.mark.integration
def test_prompt_tail_evaluates_prompt_on_the_contexts_last_words(tmp_path):
    out = tmp_path / "tail"
    results = run_script(
        "experiments/prompt_tail.py",
        "configs/quickstart.yaml",
        "--model",
        "tiny:llama",
        "--words",
        "1,3",
        "--out",
        str(out),
        "eval.limit=3",
        "task.n_val=3",
    )
    assert set(results) == {"nc", "prompt", "prompt_last1", "prompt_last3"}
    assert results["prompt"]["share_of_prompt_gain"] == 1.0 and results["nc"]["share_of_prompt_gain"] == 0.0
    cut = [json.loads(line) for line in (out / "prompt_last1" / "predictions.jsonl").read_text().splitlines()]
    assert len(cut) == 3 and all(len(r["context"].split()) == 1 for r in cut)


def test_draws_gives_each_cells_mean_and_spread_and_counts_draws_meeting_a_target(tmp_path):
    def summary(name, split, modes):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "summary.json").write_text(json.dumps({"split": split, "modes": modes}))
        return str(directory)

    draws = [
        f"seed{s}={summary(f's{s}_test', 'test', {'prompt': {'accuracy': 1.0}, 'ft': {'accuracy': ft}})},"
        + summary(f"s{s}_ood", "ood", {"ft": {"accuracy": ood}})
        for s, ft, ood in ((1, 0.5, 0.3), (2, 0.3, 0.2), (3, 0.4, 0.1))
    ]
    figures = run_script("experiments/draws.py", "--at-least", "ft=0.40", *draws)
    assert list(figures["draws"]["seed1"]) == ["prompt", "ft", "ood ft"]
    assert figures["spread"]["ft"]["mean"] == pytest.approx(0.4) and figures["spread"]["ft"]["sd"] == pytest.approx(0.1)
    assert (figures["spread"]["ood ft"]["min"], figures["spread"]["ood ft"]["max"]) == (0.1, 0.3)
    assert figures["at-least"] == {"column": "ft", "bound": 0.4, "met": ["seed1", "seed3"]}
