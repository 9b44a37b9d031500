"""Summarise sweep runs (experiments/sweep.sh, or any `promptgd train` directories under one root): one row per run
with the settings that differ between the runs and its validation curves (FT and Prompt, every `train.val_every`).

    python experiments/sweep_table.py runs/sweep [--metric accuracy|f1|token_accuracy|nll]
"""

import argparse
import json
from pathlib import Path

import yaml


def flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fmt(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric == "nll" else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--metric", default="accuracy", choices=["accuracy", "f1", "token_accuracy", "nll"])
    args = parser.parse_args()
    runs = sorted(p for p in args.root.iterdir() if (p / "metrics.jsonl").is_file())
    configs = {run: flatten(yaml.safe_load((run / "config.yaml").read_text())) for run in runs}
    keys = sorted({k for c in configs.values() for k in c if len({repr(d.get(k)) for d in configs.values()}) > 1})
    metric = args.metric
    print(f"| run | {' | '.join(keys)} | val FT {metric} by step | val Prompt {metric} by step | train min |")
    print("|---|" + "---:|" * len(keys) + "---|---|---:|")
    for run in runs:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        val = [r for r in rows if "val_ft" in r]
        ft = ", ".join(f"{r['step']}: {fmt(metric, r['val_ft'][metric])}" for r in val)
        prompt = ", ".join(f"{r['step']}: {fmt(metric, r['val_prompt'][metric])}" for r in val if "val_prompt" in r)
        seconds = run / "train_seconds.json"
        minutes = f"{json.loads(seconds.read_text())['seconds'] / 60:.1f}" if seconds.is_file() else "–"
        print(
            f"| {run.name} | "
            + " | ".join(str(configs[run].get(k)) for k in keys)
            + f" | {ft} | {prompt} | {minutes} |"
        )


if __name__ == "__main__":
    main()
