"""The paper's diagnostic tables, computed from an evaluation's predictions.jsonl.

- Table 4 (lower panel): each item is right or wrong without the update (NC) and with it (FT); the shares
  of always wrong, always right, right without the update only, and right only with the update.
- Table 5: FT after the item's own context vs. after an irrelevant context vs. no update (NC).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def read_predictions(path: Path) -> dict[str, dict[int, dict]]:
    """mode -> item index -> record, from predictions.jsonl or a committed row's predictions.jsonl.gz."""
    by_mode: dict[str, dict[int, dict]] = {}
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
        for lineno, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
                by_mode.setdefault(record["mode"], {})[record["index"]] = record
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{path}:{lineno}: not a prediction record ({e})") from None
    return by_mode


def update_effect(by_mode: dict[str, dict[int, dict]]) -> dict[str, float]:
    """Table 4's shares over the items evaluated in both NC and FT."""
    if "nc" not in by_mode or "ft" not in by_mode:
        raise ValueError("Table 4 needs predictions in both the nc and ft modes")
    items = sorted(set(by_mode["nc"]) & set(by_mode["ft"]))
    cells = {"always wrong": 0, "always right": 0, "right without the update only": 0, "right only with the update": 0}
    for i in items:
        nc, ft = by_mode["nc"][i]["correct"], by_mode["ft"][i]["correct"]
        key = (
            ("always right" if ft else "right without the update only")
            if nc
            else ("right only with the update" if ft else "always wrong")
        )
        cells[key] += 1
    return {k: v / max(len(items), 1) for k, v in cells.items()}


def diagnostics_markdown(predictions: Path) -> str:
    by_mode = read_predictions(predictions)
    lines = [
        f"Source: `{predictions}`",
        "",
        "**Table 4 (lower panel): effect of the update per item**",
        "",
        "| share | % |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {100 * v:.1f} |" for k, v in update_effect(by_mode).items()]
    lines += [
        "",
        "**Table 5: what the update is on**",
        "",
        "| condition | accuracy % | F1 % | NLL |",
        "|---|---:|---:|---:|",
    ]
    for mode, label in (
        ("ft", "FT, own context"),
        ("ft_irrelevant", "FT, irrelevant context"),
        ("nc", "no context (NC)"),
    ):
        if records := list(by_mode.get(mode, {}).values()):
            correct, f1, nll = (sum(float(r[key]) for r in records) / len(records) for key in ("correct", "f1", "nll"))
            lines.append(f"| {label} | {100 * correct:.1f} | {100 * f1:.1f} | {nll:.2f} |")
    return "\n".join(lines) + "\n"
