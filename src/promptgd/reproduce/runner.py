"""`promptgd reproduce <name> --scale small|paper`: build the experiment's models, fill its cells, write
`<out>/<name>_<scale>.md` and a bar chart beside it.

Everything is cached under the work directory and checked before reuse: a model directory is reused only if
it was trained with the same config, an evaluation only if its task, format, inner-step and decoding settings
match and it covers the modes asked for. An interrupted experiment resumes where it stopped (meta-training
from its last checkpoint)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from promptgd import distributed
from promptgd.config import RunConfig, dump_yaml, load_config, to_dict, with_overrides
from promptgd.data import acquire
from promptgd.data.partition import Partition, load_partition
from promptgd.evaluate.evaluator import MODES
from promptgd.evaluate.recipe import EVAL_SECTIONS, cached_modes, evaluate_into, parameterization_for
from promptgd.models.loading import load_configured
from promptgd.models.lora import init_factors
from promptgd.report import intervals
from promptgd.report.deviations import PAPER_SIZES, deviations_line
from promptgd.report.diagnostics import read_predictions, update_effect
from promptgd.report.export import TRAINING_LOGS, export_rows
from promptgd.report.figure import bar_chart
from promptgd.report.intervals import Arms, Interval, predictions_file
from promptgd.report.tables import gap_share
from promptgd.reproduce.cost import DATA_DOWNLOADS, Rates, Work, estimate_lines, eval_key, train_key
from promptgd.reproduce.experiments import (
    HELD_OUT_FAMILY_TASKS,
    MEASURE,
    PRESETS,
    REAL_TEXT_TASKS,
    Column,
    Experiment,
    Model,
    base,
    experiments,
)
from promptgd.run_dir import (
    RunDir,
    config_matches,
    is_complete,
    require_config,
    staged,
    write_json,
    write_text_atomically,
)
from promptgd.train.recipe import resume_point, save_meta_trained, starting_model, trained_or_resumed
from promptgd.train.transfer import finetune_on_task_b


@dataclass
class Reproduction:
    configs: Path  # the directory holding the presets (configs/ of the repository)
    work: Path  # models and evaluations: <work>/<task>/<model>/...
    scale: str
    overrides: tuple[str, ...] = ()  # dotted overrides applied to every config (after the experiment's own)
    progress: bool = True
    rates: Rates | None = None  # what each kind of work costs on a GPU, for `--plan`'s estimate (reproduce/cost.py)

    def config(self, task: str, *overrides: str) -> RunConfig:
        preset, preset_overrides = PRESETS[self.scale][task]
        return load_config(self.configs / preset, [*preset_overrides, *overrides, *self.overrides])

    _partitions: dict = field(default_factory=dict, init=False, repr=False)  # (task, warm-up, budget) -> Partition

    def partition(self, cfg: RunConfig) -> Partition:
        """`load_partition(cfg)`, loaded once per task settings: a table's cells (and a plan's) share it, and SQuAD's
        splits take seconds to build."""
        key = (cfg.task, cfg.warmup.n_tasks, cfg.train.n_tasks)  # all that load_partition reads
        if key not in self._partitions:
            try:
                self._partitions[key] = load_partition(cfg)
            except acquire.SampleSizeError as e:  # a preset asks for more triples than the data holds: name it
                preset = PRESETS[self.scale].get(cfg.task.name, ("",))[0]
                where = f"{self.configs / preset}" + (" with the command's overrides" if self.overrides else "")
                raise acquire.SampleSizeError(f"{where}: {e}") from None
        return self._partitions[key]

    # ---- models ----------------------------------------------------------------------------------------
    def start(self, task: str):
        """The task's format-warmed-up starting model (saved once in <work>/<task>/start_model)."""
        cfg = self.config(task)
        return starting_model(cfg, self.partition(cfg), self.work / task, self.progress)

    def model_dir(self, model: Model) -> Path:
        """Where a trained or fine-tuned `model` lives: <work>/<task>/<name>/ (model/, config.yaml, its logs)."""
        return self.work / model.key

    def model_path(self, model: Model) -> str:
        """Build `model` unless it is already there; return what `load_model` takes to load it."""
        if model.kind == "start":
            cfg = self.config(model.task)
            if not cfg.warmup.n_tasks:
                return cfg.model.spec
            saved = RunDir(self.work / model.task).start_model
            # Rank 0's view of the files decides for every rank (distributed.main_decides): a rank that looked itself
            # after rank 0 had built and saved would skip the barrier rank 0's save ends with.
            if not distributed.main_decides(is_complete(saved)):
                self.start(model.task)
            return str(saved)
        cfg = self.config(model.task, *model.overrides)
        out = self.model_dir(model)
        if model.kind == "meta":
            return str(
                trained_or_resumed(cfg, out, lambda: self.partition(cfg), lambda: self.start(model.task), self.progress)
            )
        run = RunDir(out)
        if distributed.main_decides(is_complete(run.model)):
            require_config(run.config, cfg, f"model {model.key}")
            return str(run.model)
        if model.kind == "untrained_lora":
            trained, tokenizer = self.start(model.task)
            save_meta_trained(trained, tokenizer, init_factors(trained, cfg.lora, cfg.train.seed), cfg, out)
        else:  # then_b: ordinary fine-tuning of `source` on task B
            source, tokenizer = load_configured(cfg.model, self.model_path(model.source))
            started = time.perf_counter()
            finetune_on_task_b(source, tokenizer, cfg, self.progress)
            with staged(run.model) as tmp:
                source.save_pretrained(tmp, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
            write_json(run.root / "train_seconds.json", {"seconds": time.perf_counter() - started})
        write_text_atomically(run.config, dump_yaml(cfg))
        return str(run.model)

    def data_ready(self, task: str) -> bool:
        """Whether `task`'s triples are on this machine (a generated task's always are): planning acquires nothing."""
        return task not in REAL_TEXT_TASKS or acquire.processed_manifest(task) is not None

    def model_plan(self, model: Model) -> tuple[str, Work | None]:
        """What `model_path` would do for `model`, without doing it, and the work it would take (`--plan`)."""
        if model.kind == "start":
            cfg = self.config(model.task)
            if not cfg.warmup.n_tasks:
                return f"{cfg.model.spec} as it is (no format warm-up)", None
            if is_complete(RunDir(self.work / model.task).start_model):
                return "built", None
            work = Work(f"warm up {model.task}", 2 * cfg.warmup.n_tasks, self.rates_for("finetune"))  # 2 formats
            return f"to build: format warm-up on {cfg.warmup.n_tasks} triples", work
        cfg = self.config(model.task, *model.overrides)
        run = RunDir(self.model_dir(model))
        if is_complete(run.model):
            if config_matches(run.config, cfg):
                return "built", None
            return f"STOPS: {run.config} differs from the config asked for now; delete {run.root} to rebuild it", None
        if model.kind == "meta":
            checkpoint = resume_point(run.root)
            t = cfg.train
            n = self.meta_tasks(cfg)
            what = f"{t.objective.upper()} meta-training on {n:,} tasks, outer batch {t.batch_size}"
            what += f", {cfg.inner.contexts} contexts per update" if cfg.inner.contexts > 1 else ""
            work = Work(f"meta-train {model.key}", n, self.rates_for(train_key(cfg)))
            return (f"to finish: {what}, resuming from {checkpoint}" if checkpoint else f"to train: {what}"), work
        if model.kind == "untrained_lora":
            return "to build: fresh LoRA factors on the start model (no training)", None
        n = cfg.transfer.n_tasks
        work = Work(f"fine-tune {model.key}", 2 * n, self.rates_for("finetune"))
        return f"to build: ordinary fine-tune of {model.source.key} on {n} {cfg.transfer.task_b} triples", work

    def meta_tasks(self, cfg: RunConfig) -> int:
        """How many tasks meta-training `cfg` takes: from the partition where the data is here, else from the paper's
        training size less the warm-up and validation triples."""
        if self.data_ready(cfg.task.name):
            return len(self.partition(cfg).meta) * cfg.train.epochs
        available = cfg.task.n_train or PAPER_SIZES[cfg.task.name][0]
        pool = max(0, available - cfg.warmup.n_tasks - cfg.task.n_val)
        return min(pool, cfg.train.n_tasks or pool) * cfg.train.epochs

    def rates_for(self, key: str):
        return self.rates.get(key) if self.rates is not None else None

    # ---- cells -----------------------------------------------------------------------------------------
    def _eval_setup(self, model: Model, column: Column, modes: list[str], path: str):
        """(config, partition, directory) of the evaluation of `model` (loaded from `path`) that `column` asks for."""
        task = column.task or model.task
        # The model, the modes and the split this table needs win over every override.
        cfg = with_overrides(
            self.config(task, *column.overrides, *model.eval_overrides),
            [f"model.spec={path}", f"eval.modes={','.join(modes)}", f"eval.split={column.split}"],
        )
        part = self.partition(cfg)  # a task's models share its warm-up, so they share val and the head of meta
        if column.split == "meta":  # as many meta-training triples as there are validation triples, as in the paper
            cfg = with_overrides(cfg, [f"eval.limit={len(part.val)}"])
        return cfg, part, self._eval_dir(model, task, column)

    def evaluation_plan(self, model: Model, column: Column, modes: list[str]) -> tuple[str, list[Work]]:
        """What `evaluation` would do, without doing it, and the work it would take (`--plan`)."""
        task = column.task or model.task
        if not self.data_ready(task):
            cfg = self.config(task, *column.overrides)
            n = cfg.eval.limit or cfg.task.n_test or PAPER_SIZES[task][1]
            if column.split in ("val", "meta"):
                n = cfg.task.n_val
            status = f"to run: {', '.join(modes)} on about {n:,} {column.split} triples, once the data is here"
            return status, [Work(f"evaluate {task} {mode}", n, self.rates_for(eval_key(mode, task))) for mode in modes]
        cfg, part, out = self._eval_setup(model, column, modes, "not-loaded")  # the cache ignores model.spec
        cached = cached_modes(out, cfg)
        if missing := [m for m in modes if m not in cached]:
            n = len(part.split(cfg.eval.split)[: cfg.eval.limit or None])
            status = f"to run: {', '.join(missing)} on {n} {column.split} triples" + (
                f" (kept: {', '.join(cached)})" if cached else ""
            )
            return status, [Work(f"evaluate {task} {m}", n, self.rates_for(eval_key(m, task))) for m in missing]
        return f"cached: {', '.join(cached)}", []

    def evaluation(self, model: Model, column: Column, modes: list[str]) -> Path:
        """Evaluate `model` as `column` asks (in at least `modes`); return the evaluation directory."""
        path = self.model_path(model)
        cfg, part, out = self._eval_setup(model, column, modes, path)
        if set(modes) <= set(cached_modes(out, cfg)):
            return out
        triples = part.split(cfg.eval.split)
        if not triples:
            raise ValueError(f"{column.header}: task {cfg.task.name} has no {column.split} triples (task.n_val is 0?)")
        loaded, tokenizer = load_configured(cfg.model, path)
        evaluate_into(out, cfg, loaded, tokenizer, triples, parameterization_for(loaded), self.progress)
        return out

    def _eval_dir(self, model: Model, task: str, column: Column) -> Path:
        """The model's own evaluation directory (the one `promptgd run` writes: eval/, or eval-ood/ on held-out
        families) when the column asks for the task's default evaluation settings, e.g. `inner.contexts=1`; else a
        directory named after the differences."""
        asked_overrides = (*column.overrides, *model.eval_overrides)
        defaults, asked = to_dict(self.config(task)), to_dict(self.config(task, *asked_overrides))
        own = (
            task == model.task
            and column.split in ("test", "ood")
            and all(defaults[s] == asked[s] for s in EVAL_SECTIONS)
        )
        run = RunDir(self.work / model.task)
        if own:
            ood = column.split == "ood"
            return run.base(ood) if model.kind == "start" else run.objective(model.name).eval(ood)
        suffix = re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join([task, column.split, *asked_overrides]))
        return run.root / model.name / f"eval-{suffix}"


def cell_value(eval_dir: Path, metric: str, task: str) -> float:
    if metric.startswith("share:"):
        # A committed row holds predictions.jsonl.gz; a missing file is named as predictions.jsonl.
        predictions = predictions_file(eval_dir) or eval_dir / "predictions.jsonl"
        return update_effect(read_predictions(predictions))[metric.removeprefix("share:")]
    return json.loads((eval_dir / "summary.json").read_text())["modes"][metric][MEASURE.get(task, "accuracy")]


@dataclass(frozen=True)
class Place:
    """Where a table cell's number comes from: the evaluation directory, the column's metric (a mode or
    "share:<Table 4 cell>"), and the test set it was measured on."""

    eval_dir: Path
    metric: str
    task: str
    split: str

    @property
    def test_set(self) -> str:
        """The test set, named for the line under the table, which counts the units a draw resamples in it."""
        k = intervals.contexts_per_update(self.eval_dir)
        return f"{self.task} {self.split}" + (f" at {k} contexts per update" if k > 1 else "")

    def records(self) -> list[dict] | None:
        return intervals.evaluation_records(self.eval_dir)

    def arm(self) -> dict[str, list[float]] | None:
        """The cell's per-question values grouped by resampling unit, for a statistic that pairs it with other
        cells; None without predictions."""
        records = self.records()
        return None if records is None else intervals.arm(records, self.metric, MEASURE.get(self.task, "accuracy"))


def cell_places(experiment: Experiment, rep: Reproduction) -> dict[tuple[str, str], Place]:
    """(row label, column header) -> the cell's Place, for every cell the experiment fills."""
    places = {}
    for label, column, model, _ in cells(experiment):
        task = column.task or model.task
        places[label, column.header] = Place(rep._eval_dir(model, task, column), column.metric, task, column.split)
    return places


def cell_interval(place: Place) -> Interval | None:
    """The cell's value with its 95% interval over contexts, from its evaluation's predictions; None without them."""
    records = place.records()
    if records is None:
        return None
    if place.metric.startswith("share:"):
        return intervals.share_interval(records, place.metric.removeprefix("share:"))
    return intervals.metric_interval(records, place.metric, MEASURE.get(place.task, "accuracy"))


def paired_interval(arms: dict[str, Place | None], statistic: Callable[[Arms], np.ndarray]) -> Interval | None:
    """A statistic of several cells measured on the same contexts, bootstrapped with the cells paired; None where a
    cell has no predictions."""
    grouped = {name: place.arm() if place else None for name, place in arms.items()}
    if any(g is None for g in grouped.values()):
        return None
    return intervals.bootstrap(grouped, statistic)


def _modes(metric: str) -> list[str]:
    return ["nc", "ft"] if metric.startswith("share:") else [metric]


def cells(experiment: Experiment) -> Iterator[tuple[str, Column, Model, list[str]]]:
    """(row label, column, the model that fills the cell, the modes its evaluation runs) for every cell, in order.
    Columns that share a model, test set, split and overrides share one evaluation with all their modes."""
    groups: dict[tuple, list[str]] = {}
    todo = []
    for label, model in experiment.rows:
        for column in experiment.columns:
            resolved = model.for_column(column)
            if column.split == "ood" and (column.task or resolved.task) not in HELD_OUT_FAMILY_TASKS:
                continue  # a task without description families has no such cell ("–" in the table)
            key = (resolved.key, column.task, column.split, column.overrides, resolved.eval_overrides)
            groups.setdefault(key, [])
            groups[key] += [m for m in _modes(column.metric) if m not in groups[key]]
            todo.append((label, column, resolved, key))
    for label, column, resolved, key in todo:
        yield label, column, resolved, [m for m in MODES if m in groups[key]]


def needed_models(experiment: Experiment) -> dict[str, Model]:
    """Every model the experiment's cells need, by key: each cell's model, its source if it was fine-tuned from one,
    and its task's warmed-up start model, which every model starts from."""
    models: dict[str, Model] = {}
    for _, _, model, _ in cells(experiment):
        for needed in (base(model.task), model.source, model):
            if needed is not None:
                models.setdefault(needed.key, needed)
    return models


def training_logs(rep: Reproduction, experiment: Experiment) -> dict[str, Path]:
    """`<task>/<model>/<TRAINING_LOGS>` of every model the experiment trained, under the same names as its rows,
    for the row data."""
    logs = {}
    for key, model in needed_models(experiment).items():
        for name in TRAINING_LOGS:
            path = rep.model_dir(model) / name
            if model.kind != "start" and path.is_file():
                logs[f"{key}/{name}"] = path
    return logs


def recorded_time(rep: Reproduction, experiment: Experiment, evaluations: list[Path]) -> str:
    """How long the experiment's parts took when they were made, from what each part recorded beside itself
    (warmup_seconds.json, train_seconds.json, an evaluation's summary.json), whichever invocation made it: the
    command's own wall time leaves out what earlier invocations built. A part made while its job was stopped
    (SIGSTOP) counts the stop."""
    warmups, trainings, evaluated, unrecorded = 0.0, {}, 0.0, []
    for key, model in needed_models(experiment).items():
        if model.kind == "untrained_lora" or (model.kind == "start" and not rep.config(model.task).warmup.n_tasks):
            continue  # nothing was trained
        if model.kind == "start":
            recorded = rep.work / model.task / "warmup_seconds.json"
        else:
            recorded = rep.model_dir(model) / "train_seconds.json"
        if not recorded.is_file():
            unrecorded.append(key)
        elif model.kind == "start":
            warmups += json.loads(recorded.read_text())["seconds"]
        else:
            trainings[key] = json.loads(recorded.read_text())["seconds"]
    for directory in evaluations:
        evaluated += sum(json.loads((directory / "summary.json").read_text())["seconds"].values())
    total = warmups + sum(trainings.values()) + evaluated
    each = ", ".join(f"{key} {seconds / 60:.1f}" for key, seconds in trainings.items())
    return (
        "Time its parts took when they were made (recorded beside each; a part made while its job was stopped counts "
        f"the stop): format warm-ups {warmups / 60:.1f} min, training {sum(trainings.values()) / 60:.1f} min"
        + (f" ({each})" if each else "")
        + f", evaluations {evaluated / 60:.1f} min; **{total / 60:.1f} min** in all"
        + (f" (no time recorded for {', '.join(unrecorded)})" if unrecorded else "")
        + "."
    )


def plan(name: str, rep: Reproduction) -> str:
    """What `run_reproduction(name, rep, ...)` would build and evaluate, what it would reuse, and (with `rep.rates`)
    what the rest would cost: nothing is run and no data is acquired."""
    experiment = experiments(rep.scale)[name]
    models = needed_models(experiment)
    evaluations: dict[Path, tuple[Model, Column, list[str]]] = {}
    for _, column, model, modes in cells(experiment):
        task = column.task or model.task
        evaluations.setdefault(rep._eval_dir(model, task, column), (model, column, modes))
    tasks = dict.fromkeys([m.task for m in models.values()] + [c.task for c in experiment.columns if c.task])
    lines = [f"{name} ({rep.scale}), work directory {rep.work}", "", "data:"]
    lines += [f"  {task}: {data_status(task)}" for task in tasks]
    work: list[Work] = []
    width = max(len(k) for k in models)
    lines += ["", "models:"]
    to_build = starts = 0
    for key, model in models.items():
        status, item = rep.model_plan(model)
        lines.append(f"  {key:<{width}}  {status}")
        work += [item] if item else []
        to_build += status.startswith("to ") and model.kind != "start"
        starts += status.startswith("to ") and model.kind == "start"
    lines += ["", "evaluations:"]
    width = max(len(d.relative_to(rep.work).as_posix()) for d in evaluations)
    for directory, (model, column, modes) in evaluations.items():
        status, items = rep.evaluation_plan(model, column, modes)
        lines.append(f"  {directory.relative_to(rep.work).as_posix():<{width}}  {status}")
        work += items
    if rep.rates is not None:
        first_task = next(iter(tasks))
        lines += ["", *estimate_lines(work, rep.rates, rep.config(first_task), to_build, starts)]
    return "\n".join(lines)


def data_status(task: str) -> str:
    """Which data `task` would read (the processed triples' manifest), or what getting it takes."""
    if task not in REAL_TEXT_TASKS:
        return "generated (no download)"
    manifest = acquire.processed_manifest(task)
    if manifest is None:
        return (
            f"not on this machine yet: `promptgd data fetch {task} [--path DIR]` takes a local copy, else the hub's "
            f"({DATA_DOWNLOADS[task]}); until then the sizes below are the paper's"
        )
    counts = manifest["counts"]
    found = (
        f"from {manifest['source']}: {counts['train']['kept']:,} training and {counts['test']['kept']:,} test triples"
    )
    if task == "wikitext" and counts["train"].get("from") != "train":
        paper_train = PAPER_SIZES["wikitext"][0]
        found += (
            f"; NO WikiText-103 train split, so meta-training draws from the {counts['train']['from']} split "
            f"(the paper meta-trains on {paper_train:,} triples of WikiText-103's train split)"
        )
    return found


def run_reproduction(name: str, rep: Reproduction, out: Path, command: str) -> Path:
    """Run experiment `name` and write `<out>/<name>_<scale>.md` and `.png`; return the markdown path."""
    started = time.perf_counter()
    table_of = experiments(rep.scale)
    if name not in table_of:
        raise KeyError(f"unknown experiment {name!r}; choose from {', '.join(table_of)}")
    experiment = table_of[name]
    values: dict[str, dict[str, float]] = {}
    evaluated: dict[str, Path] = {}  # the row data, keyed by the evaluation's place under the work directory
    for label, column, model, modes in cells(experiment):
        eval_dir = rep.evaluation(model, column, modes)
        evaluated[eval_dir.relative_to(rep.work).as_posix()] = eval_dir
        values.setdefault(label, {})[column.header] = cell_value(eval_dir, column.metric, column.task or model.task)
    stem = f"{name}_{rep.scale}"
    if distributed.is_main():  # under torchrun every rank holds the same values; rank 0 writes them
        out.mkdir(parents=True, exist_ok=True)
        bar_chart(values, out / f"{stem}.png", f"{experiment.title} ({rep.scale})")
        # This command's rows replace the ones it wrote before; beside them each trained model's log and time.
        export_rows(evaluated, out / stem, training_logs(rep, experiment), replace=True)
        timing = f"Wall time of this invocation: {(time.perf_counter() - started) / 60:.1f} min. " + recorded_time(
            rep, experiment, list(evaluated.values())
        )
        markdown = report(experiment, rep, values, command, timing, stem)
        (out / f"{stem}.md").write_text(markdown)
        print(markdown)
    return out / f"{stem}.md"


def report(
    experiment: Experiment,
    rep: Reproduction,
    values: dict[str, dict[str, float]],
    command: str,
    timing: str,
    stem: str,
) -> str:
    lines = [f"# {experiment.title} — scale `{rep.scale}`", "", "```bash", command, "```", "", timing, ""]
    lines += table_lines(experiment, values, cell_places(experiment, rep))
    lines += [
        "Accuracy in %: exact match after SQuAD normalisation of the first answer line; on WikiText, token "
        "accuracy (the share of the 5-word continuation's tokens that are the argmax given the gold tokens before them).",
        *(
            [
                '"Held-out families": the same people questions, but described and asked in wordings of description '
                "families that no training triple uses (the `ood` split, data/people.py); – where a task has none."
            ]
            if any(c.split == "ood" for c in experiment.columns)
            else []
        ),
        f"Paper's direction: {experiment.expectation}",
        "",
        "Models (under the work directory; every config also takes the command's overrides):",
        "",
        *_model_lines(experiment, rep),
        "",
        "Presets against the paper (each row adds the overrides listed beside it):",
        "",
    ]
    tasks = dict.fromkeys(
        [m.task for _, m in experiment.rows if m.task] + [c.task for c in experiment.columns if c.task]
    )
    lines += [f"- {task}: {deviations_line(rep.config(task))}" for task in tasks]
    lines += [
        "",
        f"Row data (summary.json, config.yaml, predictions.jsonl.gz of every evaluation above): `{stem}/<task>/<model>/<evaluation>/`; "
        f"each trained model's metrics.jsonl and train_seconds.json: `{stem}/<task>/<model>/`.",
        "",
        f"![{experiment.name}]({stem}.png)",
        "",
    ]
    return "\n".join(lines)


NO_INTERVALS = "No intervals: the evaluations behind this table have no predictions.jsonl to bootstrap."


def table_lines(
    experiment: Experiment, values: dict[str, dict[str, float]], places: dict[tuple[str, str], Place]
) -> list[str]:
    """The table, a blank line and the line on its intervals: each cell `value (low–high)` where its evaluation's
    predictions are there, the value alone where not."""
    headers = [c.header for c in experiment.columns]
    extra = _derived(experiment, values, places)
    lines = ["| model | " + " | ".join(headers + list(extra.get("", {}))) + " |"]
    lines += ["|---|" + "---:|" * (len(headers) + len(extra.get("", {})))]
    contexts: dict[str, int] = {}  # test set -> its number of contexts, for the line under the table
    for label, row in values.items():
        cells = []
        for header in headers:
            place = places.get((label, header))
            interval = cell_interval(place) if place and header in row else None
            if interval:
                contexts[place.test_set] = interval.contexts
                cells.append(interval.format(100))
            else:
                cells.append(f"{100 * row[header]:.1f}" if header in row else "–")
        lines.append(f"| {label} | " + " | ".join(cells + list(extra.get(label, {}).values())) + " |")
    return lines + ["", intervals.note(contexts) if contexts else NO_INTERVALS]


def _model_lines(experiment: Experiment, rep: Reproduction) -> list[str]:
    """One line per row and task: where its model lives and the preset and overrides it was built with."""
    lines = []
    for label, model in experiment.rows:
        tasks = [model.task] if model.task else [c.task for c in experiment.columns]
        for task in dict.fromkeys(tasks):
            preset, preset_overrides = PRESETS[rep.scale][task]
            where = "start_model" if model.kind == "start" else model.name
            source = f", fine-tuned from `{task}/{model.source.name}`" if model.source else ""
            lines.append(
                f"- {label}: `{task}/{where}` ← `configs/{preset}` {' '.join([*preset_overrides, *model.overrides])}".rstrip()
                + source
            )
    return lines


def _derived(
    experiment: Experiment, values: dict[str, dict[str, float]], places: dict[tuple[str, str], Place]
) -> dict[str, dict[str, str]]:
    """The extra column: {"": {header: ""}, row label: {header: text}}; empty when the experiment has none. Its
    interval pairs the cells it is computed from on the same contexts."""
    if experiment.derived == "gap_closed":
        out: dict[str, dict[str, str]] = {"": {"gap closed": ""}}
        for label, model in experiment.rows:
            base_label = next(lbl for lbl, m in experiment.rows if m.task == model.task and m.kind == "start")
            b = values[base_label]
            share = gap_share(b["Prompt"], b["FT"], values[label]["FT"])  # MEASURE's metrics: higher is better
            if model.kind == "start" or share is None:
                out[label] = {"gap closed": "–"}
                continue
            arms = {"prompt": (base_label, "Prompt"), "ft": (base_label, "FT"), "after": (label, "FT")}
            interval = paired_interval(
                {arm: places.get(cell) for arm, cell in arms.items()}, intervals.gap_share("after", "prompt", "ft")
            )
            out[label] = {"gap closed": interval.format(100, 0, "%") if interval else f"{100 * share:.0f}%"}
        return out
    if experiment.derived == "retention":
        in_domain = experiment.columns[0].header
        reference = next(lbl for lbl, m in experiment.rows if m.name == "lc")
        ref = values[reference][in_domain]
        out = {"": {"retention": ""}}
        for label, model in experiment.rows:
            keeps = model.kind != "start" and (model.source is None or model.source.kind != "start") and ref > 0
            if not keeps:
                out[label] = {"retention": "–"}
                continue
            arms = {"row": places.get((label, in_domain)), "reference": places.get((reference, in_domain))}
            interval = paired_interval(arms, intervals.ratio("row", "reference"))
            out[label] = {"retention": interval.format(1, 2) if interval else f"{values[label][in_domain] / ref:.2f}"}
        return out
    return {}
