"""What a reproduction will cost, said before it starts (`promptgd reproduce ... --plan`): the work, the downloads and
disk, and GPU hours and peak memory on one GPU (on 8 GPUs with torchrun: extrapolated, and labelled so).

The seconds come from a rates file (`--rates`, default results/benchmarks/gpu_rates.json): one rate per kind of work
(a meta-training task of a kind of run, a fine-tuning sequence, an evaluated triple in one mode), each with the
measurement it rests on, which the plan prints. `benchmarks/gpu_calibrate.sh` measures the rates on a lent GPU at
Llama-3.2-1B shapes and writes a new rates file; a kind the file lacks is named as unpriced, never guessed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from promptgd.config import RunConfig
from promptgd.errors import UserError

DEFAULT_RATES = Path("results/benchmarks/gpu_rates.json")
SHORT_CONTEXT_TASKS = ("character_descriptions", "reversal")  # one-sentence contexts; the others are paragraphs
GPUS_EXTRAPOLATED = 8
CHECKPOINTS_AT_ONCE = 3  # train/checkpoint.py keeps the last two, and writes the next before removing the oldest
# What a model spec costs to fetch and hold, for the models the paper presets name.
MODEL_FACTS = {
    "meta-llama/Llama-3.2-1B": {
        "parameters": 1_235_814_400,
        "download": "2.5 GB (bfloat16 safetensors)",
        "access": "gated on the hub: accept Meta's licence on its model page, then `hf auth login` with a token",
    }
}
# The hub copies `promptgd data fetch` downloads when no local copy is given (the data sets' own cards).
DATA_DOWNLOADS = {
    "squad": "SQuAD v1.1: about 35 MB to download, 90 MB processed",
    "wikitext": "WikiText-103 (raw): about 190 MB to download, 550 MB processed",
}
BYTES = {"float32": 4, "float64": 8, "bfloat16": 2}


class RatesError(UserError, ValueError):
    """A rates file that cannot be read; the message names the file and key."""


@dataclass(frozen=True)
class Rate:
    seconds: float  # per unit on one GPU
    peak_gib: float | None  # the run's peak GPU memory where it was measured
    basis: str  # the measurement it rests on


@dataclass(frozen=True)
class Work:
    what: str  # e.g. "meta-train squad/lg"
    units: int  # tasks, sequences or triples × modes
    rate: Rate | None  # None: no rate for this kind of work

    @property
    def seconds(self) -> float:
        return self.units * self.rate.seconds if self.rate else math.nan


class Rates:
    def __init__(self, path: Path):
        try:
            data = json.loads(path.read_text())
            self.device = data["device"]
            self.rates = {key: Rate(**value) for key, value in data["rates"].items()}
        except FileNotFoundError:
            raise RatesError(f"{path}: no rates file; pass one with --rates") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise RatesError(f"{path}: not a rates file ({type(e).__name__}: {e})") from None
        self.path = path

    def get(self, key: str) -> Rate | None:
        return self.rates.get(key)


def context_length(task: str) -> str:
    return "short" if task in SHORT_CONTEXT_TASKS else "long"


def train_key(cfg: RunConfig) -> str:
    """The rate key of a meta-training run: its kind of run and its tasks' context length."""
    kind = {"none": "full", "outer": "lora_outer", "inner": "lora_inner"}[cfg.lora.variant]
    if cfg.train.freeze_weights:
        kind = "step_sizes"
    elif cfg.train.first_order:
        kind += "_first_order"
    if cfg.inner.contexts > 1:
        kind += f"_k{cfg.inner.contexts}"
    return f"train/{kind}/{context_length(cfg.task.name)}"


def eval_key(mode: str, task: str) -> str:
    return f"eval/{'ft' if mode == 'ft_irrelevant' else mode}/{context_length(task)}"


def hours(seconds: float) -> str:
    if math.isnan(seconds):
        return "unpriced"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _merged(work: list[Work]) -> list[Work]:
    """One line per kind of work: the evaluations of one task and mode over several models add up."""
    merged: dict[str, Work] = {}
    for w in work:
        earlier = merged.get(w.what)
        merged[w.what] = w if earlier is None else Work(w.what, earlier.units + w.units, w.rate)
    return list(merged.values())


def estimate_lines(
    work: list[Work], rates: Rates, model_cfg: RunConfig, models_to_build: int, starts: int
) -> list[str]:
    """The plan's cost section: each item of work with its rate, then totals, disk and what the figures rest on."""
    lines = [f"cost on {rates.device} (estimate; rates from {rates.path}):"]
    work = _merged(work)
    width = max((len(w.what) for w in work), default=0)
    for w in work:
        price = f"{w.units:,} × {w.rate.seconds:.3f} s = {hours(w.seconds)}" if w.rate else "unpriced: no rate"
        lines.append(f"  {w.what:<{width}}  {price}")
    priced = [w for w in work if w.rate]
    total = sum(w.seconds for w in priced)
    peaks = [w.rate.peak_gib for w in priced if w.rate.peak_gib is not None]
    unpriced = sorted({w.what for w in work if not w.rate})
    lines.append(
        f"  total {hours(total)} on one GPU"
        + (f", peak memory about {max(peaks):.0f} GiB" if peaks else "")
        + (f" (leaves out the unpriced: {', '.join(unpriced)})" if unpriced else "")
    )
    lines.append(
        f"  on {GPUS_EXTRAPOLATED} GPUs with torchrun: about {hours(total / GPUS_EXTRAPOLATED)} (EXTRAPOLATED: assumes "
        "linear scaling over tasks, which no GPU run has measured)"
    )
    lines += _disk_lines(model_cfg, models_to_build, starts)
    lines.append("  what the rates rest on:")
    for key in sorted({k for k, r in rates.rates.items() if any(w.rate is r for w in priced)}):
        lines.append(f"    {key}: {rates.rates[key].basis}")
    return lines


def _disk_lines(cfg: RunConfig, models_to_build: int, starts: int) -> list[str]:
    """What the models to build take on disk: each its saved weights and the checkpoints of its training (the weights
    and Adam's two moments each, CHECKPOINTS_AT_ONCE of them at most), each warmed-up start model its weights."""
    name = cfg.model.spec.split("@")[0]
    facts = MODEL_FACTS.get(name)
    if facts is None:
        return [f"  model {cfg.model.spec}: its download and disk size are not recorded here"]
    model_gb = facts["parameters"] * BYTES[cfg.model.dtype] / 1e9
    checkpoint_gb = 3 * model_gb * CHECKPOINTS_AT_ONCE
    total = models_to_build * (model_gb + checkpoint_gb) + starts * model_gb
    return [
        f"  model {name}: {facts['download']} download, {facts['access']}",
        f"  disk: {models_to_build} model(s) to build × ({model_gb:.1f} GB saved + up to {checkpoint_gb:.0f} GB of "
        f"checkpoints while training) + {starts} start model(s) × {model_gb:.1f} GB = {total:.0f} GB at most",
    ]
