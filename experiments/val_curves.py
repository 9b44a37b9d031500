"""Validation curves of meta-training runs: FT and Prompt on the validation split against the tasks seen.

    python experiments/val_curves.py results/studies/wikitext_smollm2_levers/lc_2000 results/studies/wikitext_smollm2_levers/lg_2000 \
        --metric nll --step0-ft 6.32 --step0-prompt 4.13 --out results/studies/wikitext_smollm2_levers/val_curves

Each RUN is a `promptgd train` directory (or its committed rows) with metrics.jsonl and config.yaml; tasks seen =
outer step × train.batch_size. --step0-*: the start model's values on the same validation triples (metrics.jsonl
has no row before the first step). Writes OUT.png and OUT.json; prints a table and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from promptgd.run_dir import json_line, write_json  # noqa: E402


def curves(run: Path, metric: str) -> dict[str, list[tuple[int, float]]]:
    batch = yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val_ft" in r]
    return {mode: [(r["step"] * batch, r[f"val_{mode}"][metric]) for r in val] for mode in ("ft", "prompt")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metric", default="nll", choices=["accuracy", "f1", "token_accuracy", "nll"])
    parser.add_argument("--step0-ft", type=float, help="the start model's FT value on the same triples")
    parser.add_argument("--step0-prompt", type=float, help="the start model's Prompt value on the same triples")
    parser.add_argument("--out", required=True, type=Path, help="OUT.png and OUT.json are written")
    args = parser.parse_args()
    step0 = {"ft": args.step0_ft, "prompt": args.step0_prompt}
    figures = {"metric": args.metric, "step0": step0, "runs": {}}
    figure, axis = plt.subplots(figsize=(7, 4))
    for i, run in enumerate(args.runs):
        per_mode = curves(run, args.metric)
        figures["runs"][run.name] = per_mode
        for mode, style in (("ft", "-o"), ("prompt", "--s")):  # one colour per run: FT solid, Prompt dashed
            points = ([(0, step0[mode])] if step0[mode] is not None else []) + per_mode[mode]
            axis.plot(*zip(*points), style, color=f"C{i}", markersize=3, label=f"{run.name}: {mode.upper()}")
            print(f"{run.name:<28} {mode:<7}" + " ".join(f"{tasks}:{value:.3f}" for tasks, value in points))
    axis.set(xlabel="meta-training tasks seen", ylabel=f"validation {args.metric}")
    axis.legend(fontsize=7)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out.with_suffix(".png"), dpi=120)
    write_json(args.out.with_suffix(".json"), figures)
    print(json_line(figures), end="")


if __name__ == "__main__":
    main()
