"""The retention plot of stream evaluations (mode `ft_stream`, evaluate/stream.py): per method, how the first
documents' answers fare as more documents follow, and how each quarter of a stream fares at its end, against the
single-document update (`ft`) and no context (`nc`) where the summaries hold them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

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
