"""How often a mode's greedy answer (first line) occurs verbatim in the item's own context: whether FT answers are
drawn from the absorbed paragraph, as Prompt answers are, or only from its topic. Reads committed prediction files.

    python experiments/answer_sources.py results/studies/squad_smollm2/base results/studies/squad_smollm2/base-steps16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from promptgd.report.diagnostics import read_predictions


def answer_in_context(record: dict) -> bool:
    answer = record["prediction"].split("\n", 1)[0].strip().lower()
    return bool(answer) and answer in record["context"].lower()


def shares(rows: list[Path]) -> dict[str, float]:
    """`row/mode` -> the share of its answers found in their own context."""
    found: dict[str, float] = {}
    for row in rows:
        for mode, records in read_predictions(row / "predictions.jsonl.gz").items():
            found[f"{row.name}/{mode}"] = sum(map(answer_in_context, records.values())) / len(records)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="+", type=Path, help="row folders holding predictions.jsonl.gz")
    args = parser.parse_args()
    result = shares(args.rows)
    print("| row / mode | answers found in their own context |\n|---|---:|")
    for key, share in result.items():
        print(f"| {key} | {100 * share:.1f}% |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
