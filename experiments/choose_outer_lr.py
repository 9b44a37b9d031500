"""Apply the rule that chooses the paper's-method run to continue, on validation rows only, and say why.

    python experiments/choose_outer_lr.py --start START_VAL_EVAL --step 100 RUN [RUN ...]

The rule (results/studies/squad_smollm2.md, "The paper's method at 2,000 tasks"): among the runs whose validation
Prompt F1 at `--step` is within 5 points of the start model's, the one with the highest validation FT F1; a
difference under 3 F1 points is within what 100 validation questions resolve, so it goes to the lower outer lr
(the smaller change to the model); if no run keeps Prompt, the one with the highest Prompt F1. Prints a table, then
one JSON line with the figures and the chosen run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

PROMPT_KEPT = 0.05
RESOLVED = 0.03


def at_step(run: Path, step: int) -> dict:
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["step"] == step and "val_ft" in row:
            return row
    raise SystemExit(f"{run}/metrics.jsonl: no validation row at step {step}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, required=True, help="eval dir: the start model on val, prompt and ft")
    parser.add_argument("--step", type=int, required=True)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    start = json.loads((args.start / "summary.json").read_text())["modes"]
    figures = {"start": {"ft_f1": start["ft"]["f1"], "prompt_f1": start["prompt"]["f1"]}, "runs": {}}
    for run in args.runs:
        row = at_step(run, args.step)
        lr = yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"]
        figures["runs"][str(run)] = {"lr": lr, "ft_f1": row["val_ft"]["f1"], "prompt_f1": row["val_prompt"]["f1"]}
    runs = figures["runs"]
    kept = [r for r, f in runs.items() if f["prompt_f1"] >= start["prompt"]["f1"] - PROMPT_KEPT]
    if kept:
        best = max(runs[r]["ft_f1"] for r in kept)
        close = [r for r in kept if runs[r]["ft_f1"] >= best - RESOLVED]
        chosen = min(close, key=lambda r: runs[r]["lr"])
    else:
        chosen = max(runs, key=lambda r: runs[r]["prompt_f1"])
    figures["chosen"] = chosen
    print(f"| run | outer lr | val FT F1 at step {args.step} | val Prompt F1 |")
    print("|---|---:|---:|---:|")
    print(f"| start model | – | {100 * start['ft']['f1']:.1f} | {100 * start['prompt']['f1']:.1f} |")
    for run, f in runs.items():
        mark = " (chosen)" if run == chosen else ""
        print(f"| {Path(run).name}{mark} | {f['lr']:g} | {100 * f['ft_f1']:.1f} | {100 * f['prompt_f1']:.1f} |")
    json.dump(figures, sys.stdout)
    print()


if __name__ == "__main__":
    main()
