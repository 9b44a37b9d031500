"""The run report: a markdown table and a bar chart in the style of the paper's Figure 2 (groups = rows
base / LC / LG, bars = NC / Prompt / FT accuracy), both built only from the run's summary."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from promptgd.report.intervals import (  # noqa: E402
    FIELDS,
    Interval,
    arm,
    bootstrap,
    evaluation_records,
    metric_interval,
    note,
)
from promptgd.report.intervals import gap_share as gap_share_of  # noqa: E402
from promptgd.report.tables import METRICS, MODE_NAMES, gap_share, mode_table  # noqa: E402
from promptgd.run_dir import RunDir  # noqa: E402

ROW_NAMES = {
    "base": "base (warmed up)",
    "lc": "LC meta-trained",
    "lg": "LG meta-trained",
    "base-ood": "base, held-out families",
    "lc-ood": "LC, held-out families",
    "lg-ood": "LG, held-out families",
}
FIGURE_MODES = ("nc", "prompt", "ft")
GAP_METRICS = {"accuracy": "accuracy", "F1": "f1", "token accuracy": "token_accuracy", "NLL": "nll"}


def gap_closed(base: dict, meta: dict, metric: str = "accuracy") -> float | None:
    """(meta FT − base FT) / (base Prompt − base FT): the share of the Prompt−FT gap the meta-training closed,
    in `metric` (for "nll", lower is better, so the signs flip). None where there is no gap or no such metric."""
    if any(metric not in row.get(mode, {}) for row, mode in ((base, "prompt"), (base, "ft"), (meta, "ft"))):
        return None
    return gap_share(base["prompt"][metric], base["ft"][metric], meta["ft"][metric], lower_is_better=metric == "nll")


def figure2(rows: dict[str, dict], path: Path, title: str) -> None:
    labels = list(rows)
    modes = [m for m in FIGURE_MODES if all(m in rows[r] for r in labels)]
    width = 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(labels), 3.4))
    for j, mode in enumerate(modes):
        values = [100 * rows[r][mode]["accuracy"] for r in labels]
        xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(labels))]
        bars = ax.bar(xs, values, width, label=MODE_NAMES[mode])
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(labels)), [ROW_NAMES.get(r, r) for r in labels])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=8, ncols=len(modes))
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def write_report(summary: dict, out: Path) -> str:
    """Write report.md and figure2.png under `out`; return the markdown. Each number gets its 95% interval over
    contexts where its row's predictions are under `out` (a run directory, or rows exported there)."""
    rows = summary["rows"]
    split = summary.get("split", "test")
    title = f"{summary['model']} on {summary['task']}, {split} split (n = {summary['n']})"
    figure2(rows, out / "figure2.png", title)
    records = row_records(out, rows)
    bounds = {ROW_NAMES.get(k, k): mode_intervals(records[k], v) for k, v in rows.items() if k in records}
    test_sets = {f"{summary['task']} {'ood' if k.endswith('-ood') else split}": k for k in records}
    contexts = {name: len({r["context"] for r in records[k]}) for name, k in test_sets.items()}
    lines = [
        f"### {title}",
        "",
        "```bash",
        summary["command"],
        "```",
        "",
        mode_table({ROW_NAMES.get(k, k): v for k, v in rows.items()}, bounds),
        "",
        intervals_line(contexts, [ROW_NAMES.get(k, k) for k in rows if k not in records]),
        "",
        *gap_lines(rows, records),
    ]
    for name, row in rows.items():
        ood = rows.get(f"{name}-ood", {}).get("ft")
        if ood and row.get("ft", {}).get("accuracy"):
            lines.append(
                f"- {ROW_NAMES.get(name, name)}: FT on held-out description families is "
                f"{100 * ood['accuracy'] / row['ft']['accuracy']:.0f}% of its FT on the same families "
                f"({100 * ood['accuracy']:.1f} vs {100 * row['ft']['accuracy']:.1f})."
            )
    seconds = summary.get("seconds", {})
    if seconds:
        lines.append("- wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()))
    lines += [f"- {note}" for note in summary.get("notes", [])]
    if "deviations" in summary:  # summaries written before it was recorded have none
        lines.append(f"- {summary['deviations']}")
    lines += ["", "![figure 2](figure2.png)", ""]
    markdown = "\n".join(lines)
    (out / "report.md").write_text(markdown)
    return markdown


def row_records(out: Path, rows: Iterable[str]) -> dict[str, list[dict]]:
    """Row -> its prediction records, for the rows whose predictions are under `out`: in a run directory's layout
    (RunDir.rows: base/, <objective>/eval/) or in exported rows (<out>/<row>/, report/export.py)."""
    run = RunDir(out)
    places = run.rows() if run.summary.is_file() else {}
    found = {}
    for row in rows:
        candidates = [d for d in (places.get(row), out / row) if d is not None]
        records = next((r for r in map(evaluation_records, candidates) if r is not None), None)
        if records is not None:
            found[row] = records
    return found


def mode_intervals(records: list[dict], by_mode: dict[str, dict]) -> dict[str, dict[str, Interval]]:
    """Mode -> metric -> interval, for the table's metrics that the summary and the prediction records both hold
    (predictions written before a metric existed lack its field)."""
    out: dict[str, dict[str, Interval]] = {}
    for mode, metrics in by_mode.items():
        of_mode = [r for r in records if r["mode"] == mode]
        fields = set.intersection(*(set(r) for r in of_mode)) if of_mode else set()
        out[mode] = {
            k: metric_interval(of_mode, mode, k) for k in METRICS if k in metrics and FIELDS.get(k, k) in fields
        }
    return out


def intervals_line(contexts: dict[str, int], without: list[str]) -> str:
    """The line under the table: what its intervals are, or that a row (or every row) has none."""
    if not contexts:
        return "No intervals: made from summaries alone (no predictions.jsonl beside them to bootstrap)."
    missing = f" Rows without predictions, so without intervals: {', '.join(without)}." if without else ""
    return note(contexts) + missing


def gap_lines(rows: dict[str, dict], records: dict[str, list[dict]]) -> list[str]:
    """One line per meta-trained row: the share of its base row's Prompt−FT gap it closed, per metric, with the
    interval of that share where both rows' predictions are there (the three arms paired on the same contexts)."""
    if "base" not in rows:
        return []
    lines = []
    for name, row in rows.items():
        base_name = "base-ood" if name.endswith("-ood") else "base"  # each test set against its own base row
        base = rows.get(base_name)
        if not base or base is row:
            continue
        closed = []
        for label, metric in GAP_METRICS.items():
            value = gap_closed(base, row, metric)
            if value is None:
                continue
            interval = gap_interval(records.get(base_name), records.get(name), metric)
            bounds = f"; 95% interval {interval.bounds(100, 0, '%')}" if interval else ""
            closed.append(f"{round(100 * value)}% ({label}{bounds})")
        if closed:
            lines.append(f"- {ROW_NAMES.get(name, name)}: closes " + ", ".join(closed) + " of the base Prompt−FT gap.")
    return lines


def gap_interval(base: list[dict] | None, meta: list[dict] | None, metric: str) -> Interval | None:
    """The interval of (meta FT − base FT) / (base Prompt − base FT), the three arms paired on the same contexts."""
    if base is None or meta is None:
        return None
    arms = {"prompt": arm(base, "prompt", metric), "ft": arm(base, "ft", metric), "after": arm(meta, "ft", metric)}
    return bootstrap(arms, gap_share_of("after", "prompt", "ft"))


def bar_chart(values: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """Grouped bars: one group per row label, one bar per column; `values` are fractions, plotted in %."""
    labels = list(values)
    columns = list(dict.fromkeys(c for row in values.values() for c in row))
    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(2.0 + 1.5 * len(labels), 3.8))
    for j, column in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(labels))]
        heights = [100 * values[r][column] if column in values[r] else float("nan") for r in labels]
        bars = ax.bar(xs, heights, width, label=column)  # a row without this cell gets no bar
        ax.bar_label(bars, labels=[f"{h:.0f}" if h == h else "" for h in heights], fontsize=7, padding=1)
    ax.set_xticks(range(len(labels)), [label.replace(", ", ",\n").replace(": ", ":\n") for label in labels], fontsize=7)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=7, ncols=min(len(columns), 4))
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
