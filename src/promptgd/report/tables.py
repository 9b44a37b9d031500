"""Markdown tables of evaluation summaries: one row per model, accuracy and NLL per mode."""

from __future__ import annotations

from promptgd.report.intervals import Interval

MODE_NAMES = {
    "nc": "NC",
    "prompt": "Prompt",
    "ft": "FT",
    "ft_irrelevant": "FT-irrelevant",
    "ft_stream": "FT-stream",
    "prompt_stream": "Prompt-after-stream",
    "finetuned": "fine-tuned",
    "prompt_bm25": "Prompt-BM25",
    "prompt_all": "Prompt-all",
}
# The table's columns per mode: header -> summary metric; the first four in %, NLL in nats/token.
PERCENT = {"acc": "accuracy", "prefix": "prefix_match", "F1": "f1", "tok": "token_accuracy"}
METRICS = (*PERCENT.values(), "nll")

Intervals = dict[str, dict[str, dict[str, Interval]]]  # row label -> mode -> metric -> its 95% interval


def gap_share(prompt: float, ft: float, ft_after: float, lower_is_better: bool = False) -> float | None:
    """(FT after − FT) / (Prompt − FT): the share of the base model's Prompt−FT gap that a change (meta-training)
    closed; the signs flip for a metric where lower is better (NLL). None where Prompt is no better than FT."""
    sign = -1 if lower_is_better else 1
    gap = sign * (prompt - ft)
    return None if gap <= 0 else sign * (ft_after - ft) / gap


def mode_table(rows: dict[str, dict[str, dict[str, float]]], intervals: Intervals | None = None) -> str:
    """`rows`: row label -> mode -> metrics. Accuracy (exact match) in %, prefix match in %, token F1 in % (SQuAD's
    headline metric), token accuracy (teacher-forced argmax hits) in %, NLL in nats/token; "–" where an older summary
    lacks a metric. A metric with an interval in `intervals` shows it beside its value: `60.0 (53.0–67.0)`."""
    modes = [m for m in MODE_NAMES if any(m in r for r in rows.values())]
    header = (
        "| model | " + " | ".join(f"{MODE_NAMES[m]} {column}" for m in modes for column in [*PERCENT, "NLL"]) + " |"
    )
    lines = [header, "|---|" + "---:|" * (len(METRICS) * len(modes))]
    for label, by_mode in rows.items():
        cells = []
        for m in modes:
            metrics, bounds = by_mode.get(m, {}), (intervals or {}).get(label, {}).get(m, {})
            for k in METRICS:
                scale, digits = (1, 2) if k == "nll" else (100, 1)
                if k in bounds:
                    cells.append(bounds[k].format(scale, digits))
                else:
                    cells.append(f"{scale * metrics[k]:.{digits}f}" if k in metrics else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
