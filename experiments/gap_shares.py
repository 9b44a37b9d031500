"""FT rows against one base row: each row's FT metric and its share of the base's Prompt − FT gap, with 95% intervals
over paragraphs (people), and the share of updates that diverged.

    python experiments/gap_shares.py --base results/studies/squad_smollm2/base NAME=EVAL_DIR [NAME=EVAL_DIR ...]

The base directory holds the start model's `prompt` and `ft` records (a committed row's predictions.jsonl.gz or a
run's predictions.jsonl); every row the same questions in mode `ft`. Prints a table, then one JSON line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from promptgd.report.intervals import arm, bootstrap, evaluation_records, gap_share, mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="eval dir of the start model: modes prompt and ft")
    parser.add_argument("--metric", default="f1", help="a summary metric: f1, accuracy, token_accuracy, nll")
    parser.add_argument("rows", nargs="+", help="NAME=EVAL_DIR, each with mode ft on the base's questions")
    args = parser.parse_args()
    base = evaluation_records(args.base)
    arms = {"prompt": arm(base, "prompt", args.metric), "base_ft": arm(base, "ft", args.metric)}
    figures = {}
    print(f"| row | FT {args.metric} (95%) | gap share (95%) | diverged updates |")
    print("|---|---:|---:|---:|")
    for name, directory in (row.split("=", 1) for row in args.rows):
        ft = arm(evaluation_records(Path(directory)), "ft", args.metric)
        value = bootstrap({"ft": ft}, mean("ft"))
        share = bootstrap({**arms, "ft": ft}, gap_share("ft", "prompt", "base_ft"))
        diverged = json.loads((Path(directory) / "summary.json").read_text())["modes"]["ft"].get("diverged_share")
        scale = 1 if args.metric == "nll" else 100
        shown = "–" if diverged is None else f"{100 * diverged:.1f}%"
        print(f"| {name} | {value.format(scale)} | {share.format(100, 0, '%')} | {shown} |")
        figures[name] = {
            args.metric: [value.value, value.low, value.high],
            "gap_share": [share.value, share.low, share.high],
            "diverged_share": diverged,
            "contexts": share.contexts,
        }
    print(json.dumps({"base": str(args.base), "metric": args.metric, "rows": figures}))


if __name__ == "__main__":
    main()
