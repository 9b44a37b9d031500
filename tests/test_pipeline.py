"""`promptgd run` end to end on a tiny model: warm-up, base eval, LC and LG meta-training, report."""

import json

from promptgd.cli import main


def test_run_writes_summary_report_and_figure(tmp_path):
    out = tmp_path / "run"
    main(["run", "model.spec=tiny:llama", "model.device=cpu", "task.n_train=24", "task.n_test=4", "train.n_tasks=4",
          "train.batch_size=2", "train.val_every=2", "train.val_size=4", "warmup.n_tasks=4", "eval.max_new_tokens=4",
          "pipeline.objectives=lc,lg", "train.lm_corpus=builtin", "train.lm_seq_len=32", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["rows"]) == ["base", "lc", "lg"]
    assert set(summary["rows"]["lc"]) == {"nc", "prompt", "ft", "ft_irrelevant"}
    report = (out / "report.md").read_text()
    assert "LC meta-trained" in report and "figure2.png" in report
    assert (out / "figure2.png").stat().st_size > 10_000
    assert (out / "lc" / "model" / "model.safetensors").is_file() and (out / "lg" / "eval" / "predictions.jsonl").is_file()
    val = [json.loads(line) for line in (out / "lc" / "metrics.jsonl").read_text().splitlines() if "val_ft" in line]
    assert val and "accuracy" in val[-1]["val_ft"]
