"""`promptgd run` end to end on a tiny model: warm-up, base eval, LC and LG meta-training, report; a rerun
continues an interrupted run and keeps what is finished."""

import json
import shutil

import pytest
from safetensors.torch import load_file

from conftest import DEVICE
from promptgd.cli import main
from promptgd.evaluate import recipe as eval_recipe
from promptgd.train import recipe as train_recipe

pytestmark = pytest.mark.integration  # whole commands end to end on a tiny model

RUN = [
    "run",
    "model.spec=tiny:llama",
    f"model.device={DEVICE}",
    "task.n_train=24",
    "task.n_test=4",
    "task.n_val=4",
    "train.n_tasks=4",
    "train.batch_size=2",
    "train.val_every=2",
    "train.val_size=4",
    "warmup.n_tasks=4",
    "eval.max_new_tokens=4",
    "pipeline.objectives=lc,lg",
    "train.lm_corpus=builtin",
    "train.lm_seq_len=32",
]


def test_run_writes_summary_report_and_figure(tmp_path):
    out = tmp_path / "run"
    main([*RUN, "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["rows"]) == [
        "base",
        "base-ood",
        "lc",
        "lc-ood",
        "lg",
        "lg-ood",
    ]  # people tasks: held-out families too
    assert set(summary["rows"]["lc"]) == {"nc", "prompt", "ft", "ft_irrelevant"}
    report = (out / "report.md").read_text()
    assert "LC meta-trained" in report and "figure2.png" in report
    assert "- Deviations from the paper's settings (§4): model `tiny:llama`, not Llama-3.2-1B;" in report
    assert f"promptgd run model.spec=tiny:llama model.device={DEVICE}" in report  # the command that made it
    assert (out / "figure2.png").stat().st_size > 10_000
    assert (out / "lc" / "model" / "model.safetensors").is_file() and (
        out / "lg" / "eval" / "predictions.jsonl"
    ).is_file()
    val = [json.loads(line) for line in (out / "lc" / "metrics.jsonl").read_text().splitlines() if "val_ft" in line]
    assert val and "accuracy" in val[-1]["val_ft"] and "accuracy" in val[-1]["val_prompt"]


def test_the_report_shows_finished_rows_while_a_later_objective_fails(tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = train_recipe.run_train

    def stop_at_lg(cfg, o, **kw):
        if o.name == "lg":
            raise KeyboardInterrupt  # what stopping an hours-long run looks like
        return original(cfg, o, **kw)

    monkeypatch.setattr(train_recipe, "run_train", stop_at_lg)
    with pytest.raises(KeyboardInterrupt):
        main([*RUN, "--out", str(out)])
    assert list(json.loads((out / "summary.json").read_text())["rows"]) == ["base", "base-ood", "lc", "lc-ood"]
    assert "LC meta-trained" in (out / "report.md").read_text()


def test_a_rerun_resumes_training_and_keeps_finished_stages(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    main([*RUN, "train.ckpt_every=1", "--out", str(out)])
    finished = load_file(out / "lg" / "model" / "model.safetensors")
    summary = json.loads((out / "summary.json").read_text())
    # Interrupt LG after its first step: its model and evaluation are gone, a step-1 checkpoint is the latest.
    shutil.rmtree(out / "lg" / "model")
    shutil.rmtree(out / "lg" / "eval")
    shutil.rmtree(out / "lg" / "eval-ood")
    (out / "lg" / "checkpoints" / "latest").write_text("step_00000001\n")
    shutil.rmtree(out / "lg" / "checkpoints" / "step_00000002")
    runs = []
    original = train_recipe.run_train
    monkeypatch.setattr(
        train_recipe, "run_train", lambda cfg, o, **kw: runs.append((o.name, kw["resume"])) or original(cfg, o, **kw)
    )
    main([*RUN, "train.ckpt_every=1", "--out", str(out)])
    assert runs == [("lg", True)]  # base and LC were kept
    resumed = load_file(out / "lg" / "model" / "model.safetensors")
    assert all((resumed[k] == v).all() for k, v in finished.items())
    rerun = json.loads((out / "summary.json").read_text())
    assert rerun["rows"] == summary["rows"]
    # Kept stages report the time they took when they ran; the resumed one its time over both invocations.
    assert all(rerun["seconds"][s] == summary["seconds"][s] for s in ("warmup", "eval_base", "train_lc", "eval_lc"))
    assert rerun["seconds"]["train_lg"] == json.loads((out / "lg" / "train_seconds.json").read_text())["seconds"]
    assert rerun["notes"] == ["train_lg resumed from step_00000001"]
    assert "train_lg resumed from step_00000001" in (out / "report.md").read_text()

    monkeypatch.setattr(eval_recipe, "evaluate_model", lambda *a, **kw: pytest.fail("a finished evaluation was redone"))
    main([*RUN, "train.ckpt_every=1", "--out", str(out)])
    with pytest.raises(SystemExit) as stopped:  # one line naming the file, not a traceback
        main([*RUN, "train.ckpt_every=1", "train.lr=0.5", "--out", str(out)])
    assert stopped.value.code == 2
    assert f"{out / 'lc' / 'config.yaml'} differs from the config asked for now" in capsys.readouterr().err


def test_an_evaluation_stopped_in_a_mode_keeps_the_modes_before_it(tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = eval_recipe.evaluate_model
    asked = []

    def stop_at_ft(model, tokenizer, triples, cfg, *args):
        asked.append(tuple(cfg.eval.modes))
        if tuple(cfg.eval.modes) == ("ft",):
            raise KeyboardInterrupt
        return original(model, tokenizer, triples, cfg, *args)

    monkeypatch.setattr(eval_recipe, "evaluate_model", stop_at_ft)
    with pytest.raises(KeyboardInterrupt):
        main([*RUN, "pipeline.objectives=[]", "--out", str(out)])
    assert asked == [("nc",), ("prompt",), ("ft",)]
    kept = json.loads((out / "base" / "summary.json").read_text())
    assert set(kept["modes"]) == {"nc", "prompt"} and set(kept["seconds"]) == {"nc", "prompt"}

    asked.clear()
    monkeypatch.setattr(eval_recipe, "evaluate_model", lambda *a: asked.append(tuple(a[3].eval.modes)) or original(*a))
    main([*RUN, "pipeline.objectives=[]", "--out", str(out)])
    assert asked[:2] == [("ft",), ("ft_irrelevant",)]  # then the held-out families' four
    done = json.loads((out / "base" / "summary.json").read_text())
    assert list(done["modes"]) == ["nc", "prompt", "ft", "ft_irrelevant"]
    assert done["modes"]["nc"] == kept["modes"]["nc"]
    records = [json.loads(line) for line in (out / "base" / "predictions.jsonl").read_text().splitlines()]
    assert [r["mode"] for r in records] == [m for m in ("nc", "prompt", "ft", "ft_irrelevant") for _ in range(4)]


def test_export_commits_each_row_and_never_writes_over_silently(tmp_path, capsys):
    import gzip

    out = tmp_path / "run"
    main([*RUN, "pipeline.objectives=lc", "--out", str(out)])
    dest = tmp_path / "results" / "quickstart"
    main(["export", str(out), "--out", str(dest)])
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["base", "base-ood", "lc", "lc-ood"]
    assert json.loads((dest / "lc-ood" / "summary.json").read_text())["split"] == "ood"
    for row, eval_dir in (("base", out / "base"), ("lc", out / "lc" / "eval")):
        assert (dest / row / "summary.json").read_text() == (eval_dir / "summary.json").read_text()
        assert (
            gzip.decompress((dest / row / "predictions.jsonl.gz").read_bytes())
            == (eval_dir / "predictions.jsonl").read_bytes()
        )
    assert (dest / "report.md").is_file()
    assert (dest / "lc" / "metrics.jsonl").read_text() == (
        out / "lc" / "metrics.jsonl"
    ).read_text()  # the validation curves
    assert (dest / "lc" / "train_seconds.json").read_text() == (out / "lc" / "train_seconds.json").read_text()
    training = tmp_path / "results" / "sweep" / "lc"  # a training directory alone: its config and logs
    main(["export", str(out / "lc"), "--out", str(training)])
    assert sorted(p.name for p in training.iterdir()) == ["config.yaml", "metrics.jsonl", "train_seconds.json"]
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(out), "--out", str(dest)])
    assert stopped.value.code == 2 and "pass --replace" in capsys.readouterr().err
    main(["export", str(out), "--out", str(dest), "--replace"])
    assert not (tmp_path / "results" / "quickstart.partial").exists()


def test_stages_made_outside_the_run_report_their_own_recorded_time(tmp_path):
    out = tmp_path / "run"
    main([*RUN, "pipeline.objectives=lc", "--out", str(out)])
    (out / "summary.json").unlink()  # a run directory assembled from a separate `promptgd train` and warm-up
    main([*RUN, "pipeline.objectives=lc", "--out", str(out)])
    seconds = json.loads((out / "summary.json").read_text())["seconds"]
    assert seconds["train_lc"] == json.loads((out / "lc" / "train_seconds.json").read_text())["seconds"]
    assert seconds["warmup"] == json.loads((out / "warmup_seconds.json").read_text())["seconds"]


def test_export_of_one_eval_directory_writes_it_as_the_row(tmp_path, capsys):
    import gzip

    out = tmp_path / "run"
    main([*RUN, "pipeline.objectives=[]", "--out", str(out)])
    row = tmp_path / "results" / "squad" / "base-steps16"
    main(["export", str(out / "base"), "--out", str(row)])
    assert sorted(p.name for p in row.iterdir()) == ["config.yaml", "predictions.jsonl.gz", "summary.json"]
    assert (
        gzip.decompress((row / "predictions.jsonl.gz").read_bytes())
        == (out / "base" / "predictions.jsonl").read_bytes()
    )
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(out / "base"), "--out", str(row)])
    assert stopped.value.code == 2 and "pass --replace" in capsys.readouterr().err
