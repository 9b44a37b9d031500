"""Summarise sweep runs: one row per run with its overrides and the validation FT curve.

    python experiments/sweep_table.py runs/sweep > results/sweep_quickstart.md
"""

import json
import sys
from pathlib import Path

import yaml


def main(root: Path) -> None:
    print("| run | η (inner lr) | outer lr | λ | tasks | first order | val FT acc % by step | val FT NLL by step | mean outer loss, last 10 steps |")
    print("|---|---:|---:|---:|---:|:-:|---|---|---:|")
    for run in sorted(p for p in root.iterdir() if (p / "metrics.jsonl").is_file()):
        full = yaml.safe_load((run / "config.yaml").read_text())
        cfg = full["train"]
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        val = [r for r in rows if "val_ft" in r]
        acc = ", ".join(f"{r['step']}: {100 * r['val_ft']['accuracy']:.0f}" for r in val)
        nll = ", ".join(f"{r['step']}: {r['val_ft']['nll']:.2f}" for r in val)
        tail = rows[-10:]
        print(f"| {run.name} | {full['inner']['lr']:g} | {cfg['lr']:g} | {cfg['lm_weight']:g} | {cfg['n_tasks']} | {cfg['first_order']} | {acc} | {nll} | "
              f"{sum(r['outer'] for r in tail) / len(tail):.2f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
