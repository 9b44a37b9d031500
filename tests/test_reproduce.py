"""`promptgd reproduce`: every experiment's configs load at both scales; tiny end-to-end runs write the table,
reuse what is built, and refuse a cached model trained with another config."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from conftest import TINY
from promptgd.cli import main
from promptgd.config import to_dict
from promptgd.data.tasks import load_task
from promptgd.evaluate import recipe as eval_recipe
from promptgd.reproduce.experiments import HELD_OUT_FAMILY_TASKS, SCALES, Column, base, experiments
from promptgd.reproduce.runner import Reproduction, report
from promptgd.train import recipe as train_recipe

pytestmark = pytest.mark.integration  # whole commands end to end on a tiny model

CONFIGS = Path(__file__).parents[1] / "configs"
RESULTS = Path(__file__).parents[1] / "results"
# Every model is a tiny Llama on a few character descriptions, whatever task the experiment names.
SMALL = TINY + [
    "task.n_test=4",
    "train.n_tasks=4",
    "warmup.n_tasks=4",
    "eval.max_new_tokens=3",
    "inner.lr=0.05",
    "transfer.n_tasks=4",
    "train.val_size=4",
    "eval.modes=ft",
]


@pytest.mark.parametrize("scale", SCALES)
def test_every_experiment_config_loads(scale):
    rep = Reproduction(CONFIGS, Path("unused"), scale)
    for experiment in experiments(scale).values():
        assert experiment.rows and experiment.columns
        for _, model in experiment.rows:
            for column in experiment.columns:
                resolved = model.for_column(column)
                assert resolved.task is not None
                rep.config(resolved.task, *resolved.overrides)
                rep.config(column.task or resolved.task, *column.overrides)


def run(tmp_path, name, *extra):
    main(
        [
            "reproduce",
            name,
            "--scale",
            "small",
            "--out",
            str(tmp_path / "results"),
            "--work",
            str(tmp_path / "work"),
            "--configs",
            str(CONFIGS),
            *SMALL,
            *extra,
        ]
    )
    return (tmp_path / "results" / f"{name}_small.md").read_text()


def plan(tmp_path, capsys, name, *extra) -> dict[str, str]:
    """`promptgd reproduce NAME --plan`: {model key or evaluation directory: what would happen to it}."""
    capsys.readouterr()
    args = ["reproduce", name, "--plan", "--work", str(tmp_path / "work"), "--configs", str(CONFIGS), *SMALL, *extra]
    main(args)
    listed = [line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    return {key: status for key, status in listed if not key.endswith(":")}  # the "data:" lines name tasks


def test_table3_builds_transfer_models_and_reuses_them(tmp_path, monkeypatch, capsys):
    before = plan(tmp_path, capsys, "table3")
    assert before["character_descriptions/lc"] == "to train: LC meta-training on 4 tasks, outer batch 2"
    assert before["character_descriptions/lc-then-reversal"].startswith(
        "to build: ordinary fine-tune of character_descriptions/lc on 4 reversal"
    )
    assert before["character_descriptions/lc/eval-reversal-ood"] == "to run: ft on 4 ood triples"
    assert not (tmp_path / "work").exists()  # a plan builds nothing
    markdown = run(tmp_path, "table3")
    assert (
        "promptgd reproduce table3 --scale small" in markdown and (tmp_path / "results" / "table3_small.png").is_file()
    )
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    # Both tasks' presets are set against the paper's, with the test overrides in them.
    assert "- character_descriptions: Deviations from the paper's settings (§4): model `tiny:llama`" in markdown
    assert "- reversal: Deviations from the paper's settings (§4): model `tiny:llama`" in markdown
    # label, in-domain, transfer, both again on held-out description families, retention
    assert len(rows) == 5 and all(len(r.split("|")) == 8 for r in rows)
    twins = "| in-domain FT (character_descriptions), held-out families | transfer FT (reversal), held-out families |"
    assert twins in markdown
    work = tmp_path / "work" / "character_descriptions"
    assert {p.name for p in work.iterdir()} >= {
        "start_model",
        "base",
        "lc",
        "lc-then-reversal",
        "base-then-reversal",
        "lc-joint-reversal",
    }
    assert (work / "lc-joint-reversal" / "metrics.jsonl").read_text().count('"task_b"') == 2
    # Beside the rows, each trained model's log and time; the fine-tuned-on-B models have a time only.
    committed = tmp_path / "results" / "table3_small" / "character_descriptions"
    assert (committed / "lc-joint-reversal" / "metrics.jsonl").read_bytes() == (
        work / "lc-joint-reversal" / "metrics.jsonl"
    ).read_bytes()
    assert {p.name for p in (committed / "base-then-reversal").iterdir() if p.is_file()} == {"train_seconds.json"}
    # The held-out-families cells are evaluations on the ood split, where `promptgd run` would put them.
    for evaluation in ("base-ood", "lc/eval-ood", "lc/eval-reversal-ood"):
        assert json.loads((work / evaluation / "summary.json").read_text())["split"] == "ood"

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a cached model or evaluation was rebuilt")

    monkeypatch.setattr(train_recipe, "run_train", no_rebuild)
    monkeypatch.setattr(eval_recipe, "evaluate_model", no_rebuild)
    after = plan(tmp_path, capsys, "table3")
    assert after.keys() == before.keys()
    assert all(status == "built" or status.startswith("cached: ft") for status in after.values())
    rerun = run(tmp_path, "table3")
    assert rerun.split("Wall time")[1].split("\n", 2)[2] == markdown.split("Wall time")[1].split("\n", 2)[2]
    # The rerun reused every part, so its own wall time is short, but the parts' recorded time is what they took.
    recorded = markdown.split("Time its parts took")[1].split("\n")[0]
    assert rerun.split("Time its parts took")[1].split("\n")[0] == recorded
    assert "character_descriptions/lc-then-reversal" in recorded and "no time recorded" not in recorded
    # A model saved with another config is named, with what to delete, before any hour is spent.
    assert plan(tmp_path, capsys, "table3", "train.lr=0.5")["character_descriptions/lc"].startswith("STOPS: ")


def test_table1_and_table4_cover_lora_and_split_cells(tmp_path):
    markdown = run(tmp_path, "table1")
    assert "untrained LoRA" in markdown
    assert (tmp_path / "work" / "squad" / "lora-untrained" / "model" / "adapter" / "adapter_config.json").is_file()
    table4 = run(tmp_path, "table4")
    header = next(line for line in table4.splitlines() if line.startswith("| model"))
    assert "val: right only with the update" in header and "meta: always wrong" in header
    for line in table4.splitlines():
        if line.startswith("| squad, LG"):
            shares = [float(c.split(" (")[0]) for c in line.strip("| ").split(" | ")[1:]]  # value (interval)
            assert sum(shares[:4]) == pytest.approx(100, abs=0.2) and sum(shares[4:]) == pytest.approx(100, abs=0.2)


def test_a_cached_model_with_another_config_is_refused(tmp_path, capsys):
    run(tmp_path, "table5", "eval.modes=nc")
    with pytest.raises(SystemExit) as stopped:  # one line naming the file, not a traceback
        run(tmp_path, "table5", "train.lr=0.5")
    assert stopped.value.code == 2 and "differs from the config asked for now" in capsys.readouterr().err


def test_a_new_mode_is_added_to_the_cached_evaluation(tmp_path):
    rep = Reproduction(CONFIGS, tmp_path / "work", "small", tuple(SMALL), progress=False)
    model = experiments("small")["figure2"].rows[0][1]  # character descriptions, base
    out = rep.evaluation(model, Column("NC", "nc"), ["nc"])
    first = (out / "predictions.jsonl").read_text()
    assert rep.evaluation(model, Column("FT", "ft"), ["ft"]) == out
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["modes"]) == {"nc", "ft"} and (out / "predictions.jsonl").read_text().startswith(first)
    assert "- nc\n  - ft" in (out / "config.yaml").read_text()


def test_a_column_with_default_settings_reads_the_run_evaluation(tmp_path):
    rep = Reproduction(CONFIGS, tmp_path / "work", "small", tuple(SMALL), progress=False)
    lc = experiments("small")["figure2"].rows[1][1]  # character descriptions, LC
    k1, k4 = experiments("small")["table2"].columns[:2]
    assert rep._eval_dir(lc, lc.task, k1) == tmp_path / "work" / "character_descriptions" / "lc" / "eval"
    assert rep._eval_dir(lc, lc.task, k4).name == "eval-character_descriptions-test-inner.contexts=4"
    assert rep._eval_dir(lc, lc.task, experiments("small")["figure2"].columns[3]).name == "eval-ood"
    lg_k1 = experiments("small")["table2"].rows[1][1]  # evaluated by one update per context in turn
    assert (
        rep._eval_dir(lg_k1, lg_k1.task, k4).name
        == "eval-character_descriptions-test-inner.contexts=4-inner.mode=sequential"
    )


def test_people_tables_add_held_out_family_columns_and_other_tasks_leave_them_empty(tmp_path):
    for name in HELD_OUT_FAMILY_TASKS:  # every task the constant names has an ood split to measure
        assert load_task(name, 0, 2, seed=0).ood
    small, paper = experiments("small"), experiments("paper")
    assert [c.header for c in small["figure2"].columns] == ["NC", "Prompt", "FT", "FT, held-out families"]
    assert [c.header for c in small["table2"].columns][3:] == [f"k = {k}, held-out families" for k in (1, 4, 16)]
    assert not any(c.split == "ood" for c in paper["table2"].columns + paper["table3"].columns)  # SQuAD, WikiText
    rep = Reproduction(CONFIGS, tmp_path / "work", "small", tuple(SMALL), progress=False)
    values = {"squad: base": {"NC": 0.1, "Prompt": 0.5, "FT": 0.2}}  # SQuAD has no held-out families: no such cell
    experiment = replace(small["figure2"], rows=(("squad: base", base("squad")),))
    markdown = report(experiment, rep, values, "promptgd reproduce figure2", "Wall time: 1 min.", "figure2_small")
    assert "| squad: base | 10.0 | 50.0 | 20.0 | – | – |" in markdown and '"Held-out families": the same' in markdown


def test_table5_reads_nc_from_the_base_model_and_commits_every_row(tmp_path):
    markdown = run(tmp_path, "table5", "eval.modes=nc")
    assert "| model | base NC | FT, irrelevant context | FT, own context |" in markdown
    rows = tmp_path / "results" / "table5_small"
    for task in ("squad", "wikitext"):
        base = json.loads((rows / task / "base" / "summary.json").read_text())
        assert set(base["modes"]) == {"nc"}  # the base model answers the NC column, not the meta-trained one
        meta = json.loads((rows / task / "lg" / "eval" / "summary.json").read_text())
        assert set(meta["modes"]) == {"ft", "ft_irrelevant"}
        assert (rows / task / "lg" / "eval" / "predictions.jsonl.gz").stat().st_size > 0
    assert "table5_small/<task>/<model>/<evaluation>/" in markdown


def test_table2_evaluates_one_context_rows_sequentially_and_k_context_rows_batched(tmp_path):
    table2 = experiments("small")["table2"]
    modes = {
        label: dict(o.split("=") for o in m.eval_overrides).get("inner.mode", "batched") for label, m in table2.rows
    }
    assert modes == {
        "no meta-learning": "sequential",
        "meta-trained, k = 1": "sequential",
        "meta-trained, k = 4": "batched",
        "meta-trained, k = 16": "batched",
    }
    rep = Reproduction(CONFIGS, Path("unused"), "small")
    for _, model in table2.rows[2:]:
        cfg = rep.config(model.task, *model.overrides)
        assert cfg.train.objective == "lg" and cfg.inner.contexts in (4, 16) and cfg.train.batch_size == 1


def test_table1_lora_inner_rows_start_from_the_alpha_chosen_on_validation():
    rows = dict(experiments("small")["table1"].rows)
    for label in ("untrained LoRA (inner step on the factors)", "LoRA inner + outer"):
        assert {"lora.variant=inner", "lora.alpha=64"} <= set(rows[label].overrides)
    assert not any(o.startswith("lora.alpha") for o in rows["rank-1 outer LoRA, full inner step"].overrides)


@pytest.mark.parametrize("task", ["character_descriptions", "reversal"])
def test_small_scale_trains_as_the_committed_small_tables_were_trained(task):
    """The quickstart preset moved on (batch 4, 640 tasks); `reproduce --scale small` must still build the models
    whose rows results/paper/*_small.md commit: every training setting of figure2's committed LC rows."""
    committed = yaml.safe_load((RESULTS / "paper" / "figure2_small" / task / "lc" / "eval" / "config.yaml").read_text())
    built = to_dict(Reproduction(CONFIGS, Path("unused"), "small").config(task, "train.objective=lc"))
    differing = {k: (built["train"][k], v) for k, v in committed["train"].items() if built["train"][k] != v}
    assert differing == {}
