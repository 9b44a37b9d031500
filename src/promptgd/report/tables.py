"""Markdown tables of evaluation summaries: one row per model, accuracy and NLL per mode."""

from __future__ import annotations

MODE_NAMES = {"nc": "NC", "prompt": "Prompt", "ft": "FT", "ft_irrelevant": "FT-irrelevant"}


def gap_share(prompt: float, ft: float, ft_after: float, lower_is_better: bool = False) -> float | None:
    """(FT after − FT) / (Prompt − FT): the share of the base model's Prompt−FT gap that a change (meta-training)
    closed; the signs flip for a metric where lower is better (NLL). None where Prompt is no better than FT."""
    sign = -1 if lower_is_better else 1
    gap = sign * (prompt - ft)
    return None if gap <= 0 else sign * (ft_after - ft) / gap


def mode_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """`rows`: row label -> mode -> metrics. Accuracy (exact match) in %, prefix match in %, token F1 in % (SQuAD's
    headline metric), token accuracy (teacher-forced argmax hits) in %, NLL in nats/token; "–" where an older summary
    lacks a metric."""
    modes = [m for m in MODE_NAMES if any(m in r for r in rows.values())]
    percent = {"acc": "accuracy", "prefix": "prefix_match", "F1": "f1", "tok": "token_accuracy"}
    header = (
        "| model | " + " | ".join(f"{MODE_NAMES[m]} {column}" for m in modes for column in [*percent, "NLL"]) + " |"
    )
    lines = [header, "|---|" + "---:|" * ((len(percent) + 1) * len(modes))]
    for label, by_mode in rows.items():
        cells = []
        for m in modes:
            metrics = by_mode.get(m, {})
            cells += [f"{100 * metrics[k]:.1f}" if k in metrics else "–" for k in percent.values()]
            cells.append(f"{metrics['nll']:.2f}" if "nll" in metrics else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
