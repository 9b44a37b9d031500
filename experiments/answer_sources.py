"""How often a mode's greedy answer (first line) occurs verbatim in the item's own context: whether FT answers are
drawn from the absorbed paragraph, as Prompt answers are, or only from its topic. Reads committed prediction files.

    python experiments/answer_sources.py results/squad_smollm2/base results/squad_smollm2/base-steps16
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import defaultdict
from pathlib import Path


def answer_in_context(record: dict) -> bool:
    answer = record["prediction"].split("\n", 1)[0].strip().lower()
    return bool(answer) and answer in record["context"].lower()


def shares(rows: list[Path]) -> dict[str, float]:
    """`row/mode` -> the share of its answers found in their own context."""
    found: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        with gzip.open(row / "predictions.jsonl.gz", "rt") as f:
            for record in map(json.loads, f):
                found[f"{row.name}/{record['mode']}"].append(answer_in_context(record))
    return {key: sum(hits) / len(hits) for key, hits in found.items()}


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
