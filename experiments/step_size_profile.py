"""Where meta-learning put the inner step: the learned step sizes of a model, summarised per kind of tensor and layer.

    python experiments/step_size_profile.py runs/x/model [--out DIR]

For each tensor, the mean step-size multiplier exp(r_i + c_j) over its entries (factored) or exp(s) (tensor) — the
factor by which the learned step moves that tensor relative to the plain step of inner.lr, on average. Prints a table
of kinds (q_proj, …, down_proj, norms, embedding) against layer groups, and as its last line one JSON object with
every tensor's multiplier; with --out, writes that object to DIR/step_size_profile.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

from promptgd.update.step_sizes import COLS, FILE, ROWS, load_log_scales


def multipliers(log_scales: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each tensor's mean multiplier over its entries: mean(exp r) · mean(exp c) for a factored matrix."""
    out = {}
    for key, value in log_scales.items():
        if key.endswith(COLS):
            continue
        if key.endswith(ROWS):
            name = key[: -len(ROWS)]
            out[name] = float(value.exp().mean() * log_scales[name + COLS].exp().mean())
        else:
            out[key] = float(value.exp().mean())
    return out


def table(mults: dict[str, float], groups: int = 5) -> str:
    layers = sorted({int(m.group(1)) for name in mults if (m := re.search(r"layers\.(\d+)\.", name))})
    kinds = sorted(
        {re.sub(r".*layers\.\d+\.", "", name).removesuffix(".weight") for name in mults if "layers." in name}
    )
    size = -(-len(layers) // groups) if layers else 1
    spans = [layers[i : i + size] for i in range(0, len(layers), size)]
    header = "| tensor | " + " | ".join(f"layers {s[0]}–{s[-1]}" for s in spans) + " |"
    lines = [header, "|---|" + "---:|" * len(spans)]
    for kind in kinds:
        cells = []
        for span in spans:
            values = [
                v for n, v in mults.items() if re.search(rf"layers\.({'|'.join(map(str, span))})\.{re.escape(kind)}", n)
            ]
            cells.append(f"{sum(values) / len(values):.2f}" if values else "")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    others = {n: v for n, v in mults.items() if "layers." not in n}
    lines += [f"| {n} | {v:.2f} |" + " |" * (len(spans) - 1) for n, v in sorted(others.items())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    log_scales = load_log_scales(args.model, torch.device("cpu"))
    if log_scales is None:
        sys.exit(f"step_size_profile.py: {args.model / FILE}: no learned step sizes there")
    mults = multipliers(log_scales)
    print(table(mults))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "step_size_profile.json").write_text(json.dumps(mults, indent=1) + "\n")
    print(json.dumps(mults))


if __name__ == "__main__":
    main()
