"""The run report: a markdown table and a bar chart in the style of the paper's Figure 2 (groups = rows
base / LC / LG, bars = NC / Prompt / FT accuracy), both built only from the run's summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from promptgd.report.tables import MODE_NAMES, gap_share, mode_table  # noqa: E402

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
    """Write report.md and figure2.png under `out`; return the markdown."""
    rows = summary["rows"]
    split = summary.get("split", "test")
    title = f"{summary['model']} on {summary['task']}, {split} split (n = {summary['n']})"
    figure2(rows, out / "figure2.png", title)
    lines = [
        f"### {title}",
        "",
        "```bash",
        summary["command"],
        "```",
        "",
        mode_table({ROW_NAMES.get(k, k): v for k, v in rows.items()}),
        "",
    ]
    if "base" in rows:
        for name, row in rows.items():
            base = rows.get("base-ood" if name.endswith("-ood") else "base")  # each test set against its own base row
            closed = (
                {label: gap_closed(base, row, metric) for label, metric in GAP_METRICS.items()}
                if base and base is not row
                else {}
            )
            closed = {label: value for label, value in closed.items() if value is not None}
            if closed:
                lines.append(
                    f"- {ROW_NAMES.get(name, name)}: closes "
                    + ", ".join(f"{round(100 * v)}% ({label})" for label, v in closed.items())
                    + " of the base Prompt−FT gap."
                )
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
