"""`promptgd run`: the whole experiment in one command.

format warm-up → base evaluation → for each objective: meta-train from the warmed-up base, evaluate
→ report (markdown table + Figure-2-style bar chart). Run again on the same --out, it continues: a finished
stage with the same config is kept, an interrupted meta-training resumes from its last checkpoint, and a changed
config stops the run rather than mixing results. The layout under --out is run_dir.py's.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

from promptgd import distributed
from promptgd.config import RunConfig, replace, with_overrides
from promptgd.data.partition import load_partition
from promptgd.evaluate.recipe import cached_modes, evaluate_into, parameterization_for
from promptgd.models.loading import load_configured
from promptgd.report.deviations import deviations_line
from promptgd.report.figure import write_report
from promptgd.run_dir import RunDir, is_complete, write_json
from promptgd.train.recipe import resume_point, starting_model, trained_or_resumed


def run_pipeline(cfg: RunConfig, out: Path, command: str, progress: bool = True) -> dict:
    """`command`: the command line that asked for this run, shown at the top of the report."""
    run = RunDir(out)
    part = load_partition(cfg)
    triples = part.split(cfg.eval.split)  # test for reported numbers; val when the run is a choice of settings
    earlier = run.summary
    earlier_seconds = json.loads(earlier.read_text()).get("seconds", {}) if earlier.is_file() else {}
    stages: dict[str, float] = {}
    notes: list[str] = []

    def timed(stage: str, fn, kept: bool, recorded: Path | None = None):
        """`recorded`: where the stage writes its own time (warm-up, training): what a stage made outside this run
        took, and a resumed training's time over every invocation."""
        t0 = time.perf_counter()
        result = fn()
        # A stage kept from an earlier invocation reports the time it took then, not the second spent reloading it.
        if kept and stage in earlier_seconds:
            stages[stage] = earlier_seconds[stage]
        elif recorded is not None and recorded.is_file():
            stages[stage] = json.loads(recorded.read_text())["seconds"]
        else:
            stages[stage] = time.perf_counter() - t0
        return result

    def summarise() -> dict:
        # Written after every evaluated model, so an hours-long run shows its finished rows while the next trains.
        summary = {
            "command": command,
            "model": cfg.model.spec,
            "task": cfg.task.name,
            "split": cfg.eval.split,
            "n": len(triples[: cfg.eval.limit or None]),
            "rows": rows,
            "seconds": {**stages, "total": sum(stages.values())},
            "notes": notes,
            "deviations": deviations_line(cfg),
        }
        write_json(run.summary, summary)
        if distributed.is_main():
            write_report(summary, out)
        return summary

    # A people task also has held-out description families (the `ood` split): every row is measured there too.
    ood = cfg.eval.split == "test" and bool(part.ood)

    def evaluate_row(name: str, row_model, row_cfg: RunConfig, eval_dir: Path, param=None) -> None:
        rows[name] = timed(
            f"eval_{name}",
            lambda: _evaluate(row_model, tokenizer, triples, row_cfg, eval_dir, progress, param),
            kept=_evaluated(eval_dir, row_cfg),
        )
        if ood:
            ood_row_cfg = with_overrides(row_cfg, ["eval.split=ood"])
            ood_dir = eval_dir.with_name(eval_dir.name + "-ood")  # run_dir.RunDir: base-ood/, eval-ood/
            rows[f"{name}-ood"] = timed(
                f"eval_{name}-ood",
                lambda: _evaluate(row_model, tokenizer, part.ood, ood_row_cfg, ood_dir, progress, param),
                kept=_evaluated(ood_dir, ood_row_cfg),
            )

    model, tokenizer = timed(
        "warmup",
        lambda: starting_model(cfg, part, out, progress),
        kept=is_complete(run.start_model),
        recorded=out / "warmup_seconds.json",
    )
    rows: dict[str, dict] = {}
    evaluate_row("base", model, cfg, run.base())
    summary = summarise()
    for objective in cfg.pipeline.objectives:
        objective_cfg = replace(cfg, train=replace(cfg.train, objective=objective))
        start = partial(_start_model, objective_cfg, part, out, progress)
        trained_dir = run.objective(objective)
        resumed_from = resume_point(trained_dir.root)
        path = timed(
            f"train_{objective}",
            partial(trained_or_resumed, objective_cfg, trained_dir.root, lambda: part, start, progress),
            kept=is_complete(trained_dir.model),
            recorded=trained_dir.root / "train_seconds.json",
        )
        if resumed_from is not None:
            notes.append(f"train_{objective} resumed from {resumed_from}")
        trained, _ = load_configured(cfg.model, str(path))
        evaluate_row(objective, trained, objective_cfg, trained_dir.eval(), parameterization_for(trained, str(path)))
        summary = summarise()
    if distributed.is_main():
        print((out / "report.md").read_text())
    return summary


def _start_model(cfg: RunConfig, part, out: Path, progress: bool):
    """Every objective starts from the same warmed-up weights, reloaded from disk."""
    if cfg.warmup.n_tasks:
        return starting_model(cfg, part, out, progress)
    return load_configured(cfg.model)


def _evaluate(model, tokenizer, triples, cfg: RunConfig, out: Path, progress: bool, param=None) -> dict:
    return evaluate_into(out, cfg, model, tokenizer, triples, param, progress)["modes"]


def _evaluated(eval_dir: Path, cfg: RunConfig) -> bool:
    return set(cfg.eval.modes) <= set(cached_modes(eval_dir, cfg))
