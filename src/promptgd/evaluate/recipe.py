"""`promptgd eval`: load a model and a task, run the modes, write predictions.jsonl and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from promptgd.config import ConfigError, RunConfig, dump_yaml, with_overrides
from promptgd.data.encoding import Encoder, check_fits, max_positions
from promptgd.data.partition import load_partition
from promptgd.errors import UserError
from promptgd.evaluate.evaluator import MODES, EvalResult, evaluate
from promptgd.evaluate.retrieval import with_all
from promptgd.evaluate.stream import documents, streamed
from promptgd.models.loading import load_configured
from promptgd.models.lora import ADAPTER_DIR, load_adapter, lora_inner
from promptgd.models.parameterization import Parameterization, full_rank, with_lr_scales
from promptgd.models.update_settings import SETTINGS_FILE
from promptgd.report.tables import mode_table
from promptgd.run_dir import config_matches, is_complete, json_line, json_text, staged
from promptgd.update.explicit import ExplicitUpdate
from promptgd.update.step_sizes import FILE as LR_SCALES_FILE
from promptgd.update.step_sizes import load_log_scales


def evaluate_model(
    model, tokenizer, triples, cfg: RunConfig, progress: bool = True, param: Parameterization | None = None
) -> EvalResult:
    """Evaluate `model`, or the parameterization `param` of it (LoRA-inner: the inner update moves the factors)."""
    param = param or full_rank(model)
    if (positions := max_positions(model)) is not None:
        encoder = Encoder(tokenizer, cfg.format)
        check_fits(encoder, triples, positions, cfg.eval.max_new_tokens, f"eval.split={cfg.eval.split}")
        if "prompt_all" in cfg.eval.modes:  # every document of the stream in one prompt
            asked = streamed(triples[: cfg.eval.limit or None], cfg.eval)
            every = with_all(asked, [asked[doc[0]].context for doc in documents(asked)])
            check_fits(encoder, every[:1], positions, cfg.eval.max_new_tokens, "eval.modes=prompt_all")
    with torch.no_grad():
        params = {name: p.detach() for name, p in param.fast().items()}
    device = next(param.model.parameters()).device
    # Several inner steps are absorbed with the explicit update: the implicit one keeps every step's per-task factors
    # and runs all earlier steps' terms in each step's forward (its memory grows with steps × context tokens),
    # whereas the explicit update holds one copy of the weights per absorption whatever the number of steps.
    implementation = cfg.inner.implementation if cfg.inner.steps == 1 else "explicit"
    if {"ft", "ft_irrelevant"} & set(cfg.eval.modes):
        update = param.inner_update(implementation, reuse_buffers=True, guard=cfg.inner.guard)
    else:  # no mode absorbs through it (the streams take explicit steps of their own): no implicit update to probe
        update = ExplicitUpdate()
    step = param.step_size(cfg.inner, detach=True)
    return evaluate(
        param.forward, params, tokenizer, triples, cfg.eval, cfg.inner, cfg.format, device, update, step, progress
    )


def parameterization_for(model) -> Parameterization:
    """Full rank, unless the directory `model` was loaded from (load_model) carries a LoRA-inner adapter or learned
    step sizes."""
    directory = getattr(model, "loaded_from", None)
    adapter = directory / ADAPTER_DIR if directory else None
    if adapter and (adapter / "adapter_config.json").is_file():
        factors, lora_cfg = load_adapter(model, adapter)
        return lora_inner(model, factors, lora_cfg)
    recipe = getattr(model, "update_settings", None)  # read once by load_model from the model directory
    kind = recipe["inner"].get("lr_scales", "none") if recipe else "none"
    if kind == "none":
        return full_rank(model)
    log_scales = load_log_scales(directory, next(model.parameters()).device)
    if log_scales is None:
        raise UserError(f"{directory / LR_SCALES_FILE}: missing, but {SETTINGS_FILE} says inner.lr_scales={kind}")
    return with_lr_scales(full_rank(model), kind, freeze_weights=False, log_scales=log_scales)


def write_eval(result: EvalResult, cfg: RunConfig, out: Path, replace: bool = False) -> dict:
    """Write the evaluation directory `out` whole (run_dir.staged); a finished one is replaced only if `replace`."""
    summary = result.summary(cfg.model.spec, cfg.task.name)
    summary["split"] = cfg.eval.split
    summary["seconds"] = result.seconds
    with staged(out, replace) as tmp:
        with (tmp / "predictions.jsonl").open("w") as f:
            for record in result.records:
                f.write(json_line(record))
        (tmp / "summary.json").write_text(json_text(summary))
        (tmp / "config.yaml").write_text(dump_yaml(cfg))
    return summary


# The config sections an evaluation's result depends on (the model itself is identified by its directory).
EVAL_SECTIONS = ("task", "format", "inner", "eval")


def cached_modes(out: Path, cfg: RunConfig) -> dict[str, dict]:
    """The modes (mode -> metrics) of the finished evaluation in `out` if it was made with the same evaluation
    settings as `cfg` (its modes aside), else {}."""
    if not is_complete(out) or not config_matches(out / "config.yaml", cfg, EVAL_SECTIONS, ignore=("eval.modes",)):
        return {}
    return json.loads((out / "summary.json").read_text())["modes"]


def evaluate_into(
    out: Path, cfg: RunConfig, model, tokenizer, triples, param: Parameterization | None = None, progress: bool = True
) -> dict:
    """Evaluate `cfg.eval.modes` into `out` and return its summary. Modes that an evaluation already in `out`
    holds with the same settings are kept, not redone (an interrupted run, or Table 5 adding ft_irrelevant), and
    each mode is written as soon as it is done, so an interruption loses only the mode under way (a FT evaluation
    of 500 SQuAD questions takes 5-20 minutes on CPU)."""
    cached = cached_modes(out, cfg)
    kept = EvalResult([], {}, {})
    if cached:  # read once; each finished mode is then added in memory and the whole evaluation rewritten
        summary = json.loads((out / "summary.json").read_text())
        records = [
            r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines()) if r["mode"] in cached
        ]
        sections = {k: summary[k] for k in ("stream", "locality") if k in summary}
        kept = EvalResult(records, cached, summary.get("seconds", {}), sections)
    summary = None
    for unit in _units_of_work(cfg.eval.modes):
        if all(mode in kept.modes for mode in unit):
            continue
        overrides = [f"eval.modes={','.join(unit)}"]
        new = evaluate_model(model, tokenizer, triples, with_overrides(cfg, overrides), progress, param)
        kept = EvalResult(
            [r for r in kept.records if r["mode"] not in unit] + new.records,
            {**kept.modes, **new.modes},
            {**kept.seconds, **new.seconds},
            kept.sections | new.sections,
        )
        every = [m for m in MODES if m in kept.modes]
        # An evaluation of other settings in `out` (a changed preset) is replaced: `out` is the row's own directory.
        summary = write_eval(kept, with_overrides(cfg, [f"eval.modes={','.join(every)}"]), out, replace=True)
    return summary or json.loads((out / "summary.json").read_text())


def _units_of_work(modes: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The modes in the groups that are evaluated, kept and redone together: each mode alone, but prompt_stream with
    ft_stream, as it asks the weights that the stream leaves, which live only while that evaluation runs."""
    units = [(mode,) for mode in modes if mode != "prompt_stream"]
    if "prompt_stream" in modes:
        units = [(*unit, "prompt_stream") if unit == ("ft_stream",) else unit for unit in units]
    return units


def run_eval(cfg: RunConfig, out: Path) -> dict:
    model, tokenizer = load_configured(cfg.model)
    triples = load_partition(cfg).split(cfg.eval.split)
    if not triples:
        raise ConfigError(f"eval.split={cfg.eval.split}: task {cfg.task.name} has no such triples with this config")
    result = evaluate_model(model, tokenizer, triples, cfg, param=parameterization_for(model))
    summary = write_eval(result, cfg, out)
    print(mode_table({cfg.model.spec: summary["modes"]}))
    print(
        f"{cfg.eval.split} split, n = {summary['n']}  ({', '.join(f'{m} {s:.0f}s' for m, s in result.seconds.items())}); wrote {out}/"
    )
    return summary
