"""The retention plot of stream evaluations (mode `ft_stream`, evaluate/stream.py): per method, how the first
documents' answers fare as more documents follow, and how each quarter of a stream fares at its end, against the
single-document update (`ft`) and no context (`nc`) where the summaries hold them; and a stream's figures beside
its rule's targets (`stream_figures`): retention = (stream − NC) / (single-document FT − NC), on the same questions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

from promptgd.report.intervals import Interval, arm, bootstrap, evaluation_records, gap_share

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def retention_figure(summaries: dict[str, dict], metric: str, path: Path, title: str) -> None:
    """`summaries`: method name -> the summary.json of its stream evaluation (with a `stream` section)."""
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


def stream_figures(stream_dir: Path, nc_dir: Path, metric: str, ft_dir: Path | None = None) -> dict:
    """A stream evaluation's figures: its `metric` at the end of the stream and single-document FT's; retention with
    its 95% interval over contexts (NaN and no interval where FT is no better than NC); the first quarter's
    retention; held-out NLL after/before the stream; known facts after; Prompt after the stream where it was asked.
    NC comes from `nc_dir`'s predictions, FT from `ft_dir`'s (default: the stream's own evaluation); all three on the
    same questions."""
    summary = json.loads((stream_dir / "summary.json").read_text())
    records = evaluation_records(stream_dir)
    ft_records = records if ft_dir is None else evaluation_records(ft_dir)
    arms = {
        "stream": arm(records, "ft_stream", metric),
        "nc": arm(evaluation_records(nc_dir), "nc", metric),
        "ft": arm(ft_records, "ft", metric),
    }
    retention = bootstrap(arms, gap_share("stream", "ft", "nc"))
    documents = summary["stream"]["documents"]
    first = {r["context"] for r in records if r["mode"] == "ft_stream" and r["position"] * 4 <= documents}
    first_arms = {name: {c: v for c, v in values.items() if c in first} for name, values in arms.items()}
    locality = summary["locality"]
    before, after = locality["before"].get("held_out_nll"), locality["after"].get("held_out_nll")
    return {
        "ft": _mean(arms["ft"]),
        "ft_stream": summary["modes"]["ft_stream"][metric],
        "retention": retention,
        "first_quarter_retention": bootstrap(first_arms, gap_share("stream", "ft", "nc")).value if first else math.nan,
        "held_out_nll_ratio": after / before if before else math.nan,
        "known_facts_after": locality["after"]["known_facts_accuracy"],
        "prompt_after_stream": summary["modes"].get("prompt_stream", {}).get(metric, math.nan),
    }


def _mean(by_context: dict[str, list[float]]) -> float:
    values = [v for vs in by_context.values() for v in vs]
    return sum(values) / len(values)


def json_ready(figures: dict) -> dict:
    """`stream_figures` for a JSON line: the interval as [value, low, high], NaN as null."""

    def plain(value):
        if isinstance(value, Interval):
            return [plain(value.value), plain(value.low), plain(value.high)]
        return None if isinstance(value, float) and math.isnan(value) else value

    return {key: plain(value) for key, value in figures.items()}


def share_text(value: float, interval: Interval | None = None) -> str:
    """A retention in %, with its interval where it has one; "none (FT ≤ NC)" where there is no gap to retain."""
    if math.isnan(value):
        return "none (FT ≤ NC)"
    return interval.format(100, 0, "%") if interval is not None and interval.draws else f"{100 * value:.0f}%"
