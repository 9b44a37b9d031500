"""95% intervals by bootstrapping over contexts (paragraphs, people), not over questions.

The questions of one SQuAD paragraph share one inner update, so they succeed or fail together: resampling questions
would treat ~5 correlated answers as 5 independent ones and give intervals too narrow. A draw resamples whole
contexts with replacement; every arm (an evaluation mode of a row: base FT, Prompt, a meta-trained FT, ...) is
averaged over the same resampled contexts, so a statistic of several arms (a difference, a gap share) keeps their
pairing. The interval is the draws' percentile interval.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from promptgd.report.diagnostics import update_effect

DRAWS = 10_000
LEVEL = 0.95
SEED = 0
# A summary's metric -> the prediction record's field it averages (evaluator._means); the others share their name.
FIELDS = {"accuracy": "correct"}

Arms = Mapping[str, np.ndarray]  # arm name -> its mean over each draw's contexts (or one value for the estimate)


@dataclass(frozen=True)
class Interval:
    value: float  # the statistic on the contexts as evaluated
    low: float  # the draws' (1 − level)/2 quantile
    high: float  # the draws' (1 + level)/2 quantile
    contexts: int  # how many contexts each draw resamples
    draws: int

    def format(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """'26.8 (22.1–31.5)': the value and its interval, times `scale` (100 for a share in %); `unit` after the
        value and after the interval ('37% (30–44%)')."""
        return f"{scale * self.value:.{digits}f}{unit} ({self.bounds(scale, digits, unit)})"

    def bounds(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """'22.1–31.5': the interval alone, as `format` writes it."""
        return f"{scale * self.low:.{digits}f}–{scale * self.high:.{digits}f}{unit}"


def by_context(records: Iterable[dict], metric: str, mode: str | None = None) -> dict[str, list[float]]:
    """A metric's values grouped by context, from prediction records (`predictions.jsonl` rows), of one mode."""
    grouped: dict[str, list[float]] = {}
    for r in records:
        if mode is None or r["mode"] == mode:
            grouped.setdefault(r["context"], []).append(float(r[metric]))
    return grouped


def bootstrap(
    arms: Mapping[str, Mapping[str, list[float]]],
    statistic: Callable[[Arms], np.ndarray],
    draws: int = DRAWS,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """`arms`: arm -> context -> the values of that context's questions; every arm must hold the same contexts
    with the same number of values each (paired). `statistic` maps arm -> array of means to an array of the
    statistic (vectorised over draws); where it is undefined for a draw (a gap of zero), it returns NaN, and those
    draws are dropped."""
    names = list(arms)
    contexts = sorted(arms[names[0]])
    for name in names[1:]:
        if sorted(arms[name]) != contexts:
            raise ValueError(f"bootstrap: arm {name!r} holds other contexts than arm {names[0]!r}")
        for c in contexts:
            if len(arms[name][c]) != len(arms[names[0]][c]):
                raise ValueError(f"bootstrap: arm {name!r} has another number of values for a context")
    counts = np.array([len(arms[names[0]][c]) for c in contexts], dtype=float)
    sums = {name: np.array([sum(arms[name][c]) for c in contexts]) for name in names}
    picks = np.random.default_rng(seed).integers(0, len(contexts), size=(draws, len(contexts)))
    drawn_counts = counts[picks].sum(axis=1)
    value = statistic({name: np.array([s.sum() / counts.sum()]) for name, s in sums.items()})[0]
    drawn = statistic({name: s[picks].sum(axis=1) / drawn_counts for name, s in sums.items()})
    drawn = drawn[np.isfinite(drawn)]
    if not drawn.size:  # undefined in every draw (a gap share where no gap exists): no interval either
        return Interval(float(value), float("nan"), float("nan"), len(contexts), 0)
    low, high = np.quantile(drawn, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(value), float(low), float(high), len(contexts), int(drawn.size))


def mean(arm: str) -> Callable[[Arms], np.ndarray]:
    return lambda m: m[arm]


def difference(arm: str, reference: str) -> Callable[[Arms], np.ndarray]:
    return lambda m: m[arm] - m[reference]


def gap_share(ft_after: str, prompt: str, ft: str) -> Callable[[Arms], np.ndarray]:
    """(FT after − FT) / (Prompt − FT), the share of the Prompt−FT gap closed; for a metric where lower is better
    (NLL) the ratio is the same, both differences changing sign. NaN where the gap is zero."""

    def share(m: Arms) -> np.ndarray:
        gap = m[prompt] - m[ft]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap != 0, (m[ft_after] - m[ft]) / gap, np.nan)

    return share


def retention(stream: str, ft: str, nc: str) -> Callable[[Arms], np.ndarray]:
    """(stream − NC) / (FT − NC): the share of a single-document update's gain over no context that is left at the end
    of a stream, for a metric where higher is better (accuracy, F1). NaN where FT is no better than NC: there is no
    gain to keep, and a negative gap would turn a stream below NC into a positive share."""

    def share(m: Arms) -> np.ndarray:
        gain = m[ft] - m[nc]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gain > 0, (m[stream] - m[nc]) / gain, np.nan)

    return share


def ratio(arm: str, reference: str) -> Callable[[Arms], np.ndarray]:
    """arm / reference (Table 3's retention); NaN where the reference is zero."""

    def divided(m: Arms) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(m[reference] != 0, m[arm] / m[reference], np.nan)

    return divided


def predictions_file(directory: Path) -> Path | None:
    """An evaluation directory's predictions: predictions.jsonl where it was run, predictions.jsonl.gz in a
    committed row (report/export.py); None where it has neither (a summary alone)."""
    for name in ("predictions.jsonl", "predictions.jsonl.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def read_records(path: Path) -> list[dict]:
    """The prediction records of a predictions.jsonl or predictions.jsonl.gz, in file order."""
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def contexts_per_update(directory: Path) -> int:
    """How many contexts one inner update absorbed in the evaluation in `directory` (inner.contexts of its
    config.yaml, read as plain YAML so that a config of an older promptgd reads too); 1 where none was saved."""
    config = directory / "config.yaml"
    if not config.is_file():
        return 1
    return int((yaml.safe_load(config.read_text()).get("inner") or {}).get("contexts", 1))


def resampling_units(records: list[dict], per_update: int) -> list[dict]:
    """The records with "context" set to the unit a draw resamples. With one context per update that is the context.
    With k (evaluator._absorptions), the questions of k consecutive triples are answered after one shared update, so
    they succeed or fail together: a unit joins the questions linked through a shared update or a shared context
    (a SQuAD paragraph's questions can fall in two chunks)."""
    if per_update == 1:
        return records
    parent: dict[tuple, tuple] = {}

    def root(node: tuple) -> tuple:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for r in records:
        parent[root(("update", r["index"] // per_update))] = root(("context", r["context"]))
    return [{**r, "context": repr(root(("update", r["index"] // per_update)))} for r in records]


def evaluation_records(directory: Path) -> list[dict] | None:
    """The prediction records of the evaluation in `directory`, each "context" its resampling unit; None where the
    directory holds no predictions."""
    path = predictions_file(directory)
    return resampling_units(read_records(path), contexts_per_update(directory)) if path else None


def arm(records: Iterable[dict], mode: str, metric: str) -> dict[str, list[float]]:
    """One mode's values of a summary metric (accuracy, f1, nll, ...), grouped by context."""
    return by_context(records, FIELDS.get(metric, metric), mode)


def metric_interval(records: Iterable[dict], mode: str, metric: str) -> Interval:
    """The interval of one mode's mean of a summary metric: the value a summary.json holds, with its interval."""
    return bootstrap({mode: arm(records, mode, metric)}, mean(mode))


def share_interval(records: Iterable[dict], share: str) -> Interval:
    """The interval of one of Table 4's shares (diagnostics.update_effect): each item evaluated in both NC and FT is
    classified on its own by update_effect, the same rule as the table's, and the 0/1 outcomes are bootstrapped."""
    by_mode: dict[str, dict[int, dict]] = {}
    for r in records:
        by_mode.setdefault(r["mode"], {})[r["index"]] = r
    outcomes: dict[str, list[float]] = {}
    for i in sorted(set(by_mode.get("nc", {})) & set(by_mode.get("ft", {}))):
        item = {"nc": {i: by_mode["nc"][i]}, "ft": {i: by_mode["ft"][i]}}
        outcomes.setdefault(by_mode["ft"][i]["context"], []).append(update_effect(item)[share])
    return bootstrap({"items": outcomes}, mean("items"))


def note(units: Mapping[str, int]) -> str:
    """The line under a table with intervals: what they are, and how many units each resamples (`units`: a test
    set's name -> its number of resampling units; a cell resamples all the units of its test set)."""
    sizes = "; ".join(f"{name} {n}" for name, n in units.items())
    return (
        f"Intervals: 95% percentile intervals of {DRAWS:,} bootstrap draws (seed {SEED}); a draw resamples whole "
        "contexts (SQuAD paragraphs, WikiText passages, people) with replacement, not questions, and where one update "
        f"absorbed k contexts, those k as one unit. Units per test set: {sizes}. Each row is one draw (one training "
        "run) unless stated: the intervals leave out training's own spread."
    )
