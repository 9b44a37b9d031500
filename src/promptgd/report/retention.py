"""The retention plot of stream evaluations (mode `ft_stream`, evaluate/stream.py): per method, how the first
documents' answers fare as more documents follow, and how each quarter of a stream fares at its end, against the
single-document update (`ft`) and no context (`nc`) where the summaries hold them; and a stream's figures beside
its rule's targets (`stream_figures`): retention = (stream − NC) / (single-document FT − NC), on the same questions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from promptgd.report.intervals import Interval, arm, bootstrap, evaluation_records, retention


def quarter_of(position: int, documents: int) -> int:
    """The quarter of a stream of `documents` (0 = earliest) that the document at `position` (1-based) falls in: the
    stream section's quarters (evaluate/stream.py) and the first quarter's retention here use this one definition."""
    return (position - 1) * 4 // documents


def retention_figure(summaries: dict[str, dict], metric: str, path: Path, title: str) -> None:
    """`summaries`: method name -> the summary.json of its stream evaluation (with a `stream` section)."""
    # Imported here: evaluation imports this module for quarter_of and draws nothing.
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    fig, (early, quarters) = plt.subplots(1, 2, figsize=(10, 4))
    for index, (name, summary) in enumerate(summaries.items()):
        stream = summary.get("stream")
        if stream is None:
            raise ValueError(f"{name}: its summary has no stream section (evaluate it with mode ft_stream)")
        color = f"C{index}"
        probed = sorted((int(n), m[metric]) for n, m in stream["probed"].items())
        early.plot([n for n, _ in probed], [v for _, v in probed], "o-", color=color, label=name)
        # A stream of fewer than 4 documents has empty quarters: each point at the quarter its first position is in.
        at = [1 + (q["positions"][0] - 1) * 4 // stream["documents"] for q in stream["quarters"]]
        quarters.plot(at, [q[metric] for q in stream["quarters"]], "o-", color=color, label=name)
        for mode, style in (("ft", "--"), ("nc", ":")):
            if mode in summary["modes"]:
                for axis in (early, quarters):
                    axis.axhline(summary["modes"][mode][metric], color=color, linestyle=style, linewidth=0.8)
    early.set_xscale("log")
    early.set_xlabel("documents absorbed")
    probed = max(s["stream"]["probed_documents"] for s in summaries.values())
    early.set_ylabel(f"{metric} on the first {probed} documents' questions")
    quarters.set_xlabel("quarter of the stream, by position (1 = earliest)")
    quarters.set_xticks(range(1, 5))
    quarters.set_ylabel(f"{metric} at the end of the stream")
    early.legend(title="lines: all questions, one document (ft, dashed), no context (NC, dotted)", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def stream_figures(stream_dir: Path, metric: str, nc_dir: Path | None = None, ft_dir: Path | None = None) -> dict:
    """A stream evaluation's figures, all on the same questions: its `metric` at the end of the stream and single-
    document FT's; retention with its 95% interval over contexts (NaN, no interval, where FT is no better than NC);
    the first quarter's retention; held-out NLL after/before the stream; known facts after; Prompt after the stream
    and before it where they were asked. NC (and Prompt before) come from `nc_dir`, FT from `ft_dir`; both default to
    the stream's own evaluation."""
    summary = json.loads((stream_dir / "summary.json").read_text())
    read: dict[Path, list[dict]] = {}  # each directory's predictions read once (an at-θ row's twin gives NC and FT)

    def records_of(directory: Path | None) -> list[dict]:
        directory = directory or stream_dir
        if directory not in read:
            read[directory] = _records(directory)
        return read[directory]

    records, nc_records, ft_records = records_of(stream_dir), records_of(nc_dir), records_of(ft_dir)
    arms = {"stream": arm(records, "ft_stream", metric), "nc": arm(nc_records, "nc", metric)}
    arms["ft"] = arm(ft_records, "ft", metric)
    documents = summary["stream"]["documents"]
    first = {r["context"] for r in records if r["mode"] == "ft_stream" and quarter_of(r["position"], documents) == 0}
    first_arms = {name: {c: v for c, v in values.items() if c in first} for name, values in arms.items()}
    locality = summary["locality"]
    before, after = locality["before"].get("held_out_nll"), locality["after"].get("held_out_nll")
    prompt = arm(nc_records, "prompt", metric)
    return {
        "ft": _mean(arms["ft"]),
        "ft_stream": _mean(arms["stream"]),
        "retention": bootstrap(arms, retention("stream", "ft", "nc")),
        "first_quarter_retention": _estimate(first_arms, retention("stream", "ft", "nc")) if first else math.nan,
        "held_out_nll_ratio": after / before if before and after else math.nan,
        "known_facts_after": _or_nan(locality["after"]["known_facts_accuracy"]),
        "prompt_after_stream": _mean(arm(records, "prompt_stream", metric)),
        "prompt_before": _mean(prompt),
    }


def _estimate(arms: dict[str, dict[str, list[float]]], statistic) -> float:
    """A statistic of the arms' means over every question, without an interval (no bootstrap draws)."""
    return float(statistic({name: np.array([_mean(values)]) for name, values in arms.items()})[0])


def mode_metric(directory: Path, mode: str, metric: str) -> float:
    """One mode's mean of one metric, from an evaluation directory's summary.json."""
    return json.loads((directory / "summary.json").read_text())["modes"][mode][metric]


def _records(directory: Path) -> list[dict]:
    records = evaluation_records(directory)
    if records is None:
        raise FileNotFoundError(f"{directory}: no predictions.jsonl(.gz); is it a finished `promptgd eval`?")
    return records


def _mean(by_context: dict[str, list[float]]) -> float:
    """The mean over every question; NaN where the mode was not asked."""
    values = [v for vs in by_context.values() for v in vs]
    return sum(values) / len(values) if values else math.nan


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def first_within(values: dict, margin: float):
    """A choice rule's tie-break: the first key (in the order of preference `values` is in) whose value is less than
    `margin` below the best. Compared at 9 decimals, so that a difference of exactly `margin` (10 of 100 people) is
    acted on, as the rules say, rather than decided by float rounding."""
    best = max(values.values())
    return next(key for key, value in values.items() if round(best - value, 9) < margin)


def percent(value: float, digits: int = 0) -> str:
    """A share in %, "–" where it is undefined (NaN)."""
    return "–" if math.isnan(value) else f"{100 * value:.{digits}f}%"


def json_ready(figures: dict) -> dict:
    """`stream_figures` for a JSON line: the interval as [value, low, high], NaN as null."""

    def plain(value):
        if isinstance(value, Interval):
            return [plain(value.value), plain(value.low), plain(value.high)]
        return None if isinstance(value, float) and math.isnan(value) else value

    return {key: plain(value) for key, value in figures.items()}


def share_text(value: float, interval: Interval | None = None) -> str:
    """A retention in %, with its interval where it has one; "none (FT ≤ NC)" where there is no gain to retain."""
    if math.isnan(value):
        return "none (FT ≤ NC)"
    return interval.format(100, 0, "%") if interval is not None and interval.draws else f"{100 * value:.0f}%"
