"""The experiment scripts that turn committed rows into figures keep their output shape (last line: one JSON)."""

import gzip
import json

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
