"""95% intervals by bootstrapping over contexts (paragraphs, people), not over questions.

The questions of one SQuAD paragraph share one inner update, so they succeed or fail together: resampling questions
would treat ~5 correlated answers as 5 independent ones and give intervals too narrow. A draw resamples whole
contexts with replacement; every arm (an evaluation mode of a row: base FT, Prompt, a meta-trained FT, ...) is
averaged over the same resampled contexts, so a statistic of several arms (a difference, a gap share) keeps their
pairing. The interval is the draws' percentile interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

DRAWS = 10_000
LEVEL = 0.95

Arms = Mapping[str, np.ndarray]  # arm name -> its mean over each draw's contexts (or one value for the estimate)


@dataclass(frozen=True)
class Interval:
    value: float  # the statistic on the contexts as evaluated
    low: float  # the draws' (1 − level)/2 quantile
    high: float  # the draws' (1 + level)/2 quantile
    contexts: int  # how many contexts each draw resamples
    draws: int

    def format(self, scale: float = 1.0, digits: int = 1) -> str:
        """'26.8 (22.1, 31.5)': the value and its interval, times `scale` (100 for a share in %)."""
        return f"{scale * self.value:.{digits}f} ({scale * self.low:.{digits}f}, {scale * self.high:.{digits}f})"


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
    seed: int = 0,
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
