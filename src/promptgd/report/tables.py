"""Markdown tables of evaluation summaries: one row per model, accuracy and NLL per mode."""

from __future__ import annotations

MODE_NAMES = {"nc": "NC", "prompt": "Prompt", "ft": "FT", "ft_irrelevant": "FT-irrelevant"}


def mode_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """`rows`: row label -> mode -> metrics. Accuracy (exact match) in %, prefix match in %, NLL in nats/token."""
    modes = [m for m in MODE_NAMES if any(m in r for r in rows.values())]
    header = "| model | " + " | ".join(f"{MODE_NAMES[m]} acc | {MODE_NAMES[m]} prefix | {MODE_NAMES[m]} NLL" for m in modes) + " |"
    lines = [header, "|---|" + "---:|" * (3 * len(modes))]
    for label, by_mode in rows.items():
        cells = []
        for m in modes:
            metrics = by_mode.get(m)
            cells += ["–"] * 3 if metrics is None else [
                f"{100 * metrics['accuracy']:.1f}",
                f"{100 * metrics['prefix_match']:.1f}",
                f"{metrics['nll']:.2f}",
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
