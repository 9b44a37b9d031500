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
    pipeline = _Pipeline(cfg, out, command, progress)
    model, tokenizer = pipeline.timed(
        "warmup",
        lambda: starting_model(cfg, pipeline.part, out, progress),
        kept=is_complete(pipeline.run.start_model),
        recorded=out / "warmup_seconds.json",
    )
    pipeline.evaluate_row("base", model, tokenizer, cfg, pipeline.run.base())
    summary = pipeline.summarise()
    for objective in cfg.pipeline.objectives:
        objective_cfg = replace(cfg, train=replace(cfg.train, objective=objective))
        start = partial(_start_model, objective_cfg, pipeline.part, out, progress)
        trained_dir = pipeline.run.objective(objective)
        resumed_from = resume_point(trained_dir.root)
        path = pipeline.timed(
            f"train_{objective}",
            partial(trained_or_resumed, objective_cfg, trained_dir.root, lambda: pipeline.part, start, progress),
            kept=is_complete(trained_dir.model),
            recorded=trained_dir.root / "train_seconds.json",
        )
        if resumed_from is not None:
            pipeline.notes.append(f"train_{objective} resumed from {resumed_from}")
        trained, _ = load_configured(cfg.model, str(path))
        param = parameterization_for(trained)
        pipeline.evaluate_row(objective, trained, tokenizer, objective_cfg, trained_dir.eval(), param)
        summary = pipeline.summarise()
    if distributed.is_main():
        print((out / "report.md").read_text())
    return summary


class _Pipeline:
    """What `run_pipeline`'s stages share: the partition, the evaluated rows, each stage's time and the notes."""

    def __init__(self, cfg: RunConfig, out: Path, command: str, progress: bool):
        self.cfg, self.out, self.command, self.progress = cfg, out, command, progress
        self.run = RunDir(out)
        self.part = load_partition(cfg)
        self.triples = self.part.split(cfg.eval.split)  # test for reported numbers; val for a choice of settings
        earlier = self.run.summary
        self.earlier_seconds = json.loads(earlier.read_text()).get("seconds", {}) if earlier.is_file() else {}
        self.stages: dict[str, float] = {}
        self.notes: list[str] = []
        self.rows: dict[str, dict] = {}

    def timed(self, stage: str, fn, kept: bool, recorded: Path | None = None):
        """`recorded`: where the stage writes its own time (warm-up, training): what a stage made outside this run
        took, and a resumed training's time over every invocation."""
        t0 = time.perf_counter()
        result = fn()
        # A stage kept from an earlier invocation reports the time it took then, not the second spent reloading it.
        if kept and stage in self.earlier_seconds:
            self.stages[stage] = self.earlier_seconds[stage]
        elif recorded is not None and recorded.is_file():
            self.stages[stage] = json.loads(recorded.read_text())["seconds"]
        else:
            self.stages[stage] = time.perf_counter() - t0
        return result

    def evaluate_row(self, name: str, model, tokenizer, row_cfg: RunConfig, eval_dir: Path, param=None) -> None:
        """The row on the run's split and, for a people task's test split, on held-out description families too."""
        splits = [(name, row_cfg, eval_dir, self.triples)]
        if self.cfg.eval.split == "test" and self.part.ood:
            ood_dir = eval_dir.with_name(eval_dir.name + "-ood")  # run_dir.RunDir: base-ood/, eval-ood/
            splits.append((f"{name}-ood", with_overrides(row_cfg, ["eval.split=ood"]), ood_dir, self.part.ood))
        for row, cfg, directory, triples in splits:
            self.rows[row] = self.timed(
                f"eval_{row}",
                lambda cfg=cfg, directory=directory, triples=triples: evaluate_into(
                    directory, cfg, model, tokenizer, triples, param, self.progress
                )["modes"],
                kept=set(cfg.eval.modes) <= set(cached_modes(directory, cfg)),
            )

    def summarise(self) -> dict:
        """Written after every evaluated model, so an hours-long run shows its finished rows while the next trains."""
        summary = {
            "command": self.command,
            "model": self.cfg.model.spec,
            "task": self.cfg.task.name,
            "split": self.cfg.eval.split,
            "n": len(self.triples[: self.cfg.eval.limit or None]),
            "rows": self.rows,
            "seconds": {**self.stages, "total": sum(self.stages.values())},
            "notes": self.notes,
            "deviations": deviations_line(self.cfg),
        }
        write_json(self.run.summary, summary)
        if distributed.is_main():
            write_report(summary, self.out)
        return summary


def _start_model(cfg: RunConfig, part, out: Path, progress: bool):
    """Every objective starts from the same warmed-up weights, reloaded from disk."""
    if cfg.warmup.n_tasks:
        return starting_model(cfg, part, out, progress)
    return load_configured(cfg.model)
