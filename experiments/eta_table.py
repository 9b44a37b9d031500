"""The η-scan table from experiments/eta_scan.sh's output: FT on the validation split per inner learning rate.

    python experiments/eta_table.py OUT [--export results/studies/NAME]

--export writes the row data (start-val/, ft-eta-<η>/: summary.json, config.yaml, predictions.jsonl.gz) for committing.
"""

import argparse
import json
from pathlib import Path

from promptgd.report.export import export_rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--export", type=Path, help="where to write the row data")
    args = parser.parse_args()
    out = args.out
    base = json.loads((out / "start" / "base" / "summary.json").read_text())
    print(
        f"Validation split, n = {base['n']}; NC / Prompt of the warmed-up start model: "
        + ", ".join(
            f"{m} acc {100 * base['modes'][m]['accuracy']:.1f}%, F1 {100 * base['modes'][m]['f1']:.1f}, "
            f"tok {100 * base['modes'][m]['token_accuracy']:.1f}%, NLL {base['modes'][m]['nll']:.2f}"
            for m in ("nc", "prompt")
        )
        + "\n"
    )
    print("| η | FT acc % | FT F1 % | FT tok % | FT NLL |")
    print("|---:|---:|---:|---:|---:|")
    for d in sorted(out.glob("eta_*"), key=lambda p: float(p.name.removeprefix("eta_"))):
        ft = json.loads((d / "summary.json").read_text())["modes"]["ft"]
        print(
            f"| {d.name.removeprefix('eta_')} | {100 * ft['accuracy']:.1f} | {100 * ft['f1']:.1f} | {100 * ft['token_accuracy']:.1f} | {ft['nll']:.2f} |"
        )
    if args.export:
        rows = {
            "start-val": out / "start" / "base",
            **{d.name.replace("eta_", "ft-eta-"): d for d in out.glob("eta_*")},
        }
        export_rows(rows, args.export)


if __name__ == "__main__":
    main()
