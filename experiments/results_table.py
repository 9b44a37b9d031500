"""A results markdown file from evaluation directories (each holding the summary.json of `promptgd eval`).

python experiments/results_table.py --title T --command "how it was made" [--rows WHERE] DIR [DIR ...]
"""

import argparse
import json
from pathlib import Path

from promptgd.report.tables import mode_table

SPLIT_NAMES = {"test": "test", "ood": "held-out families", "val": "validation"}


def row_name(summary: dict) -> str:
    split = summary.get("split", "test")  # summaries written before the validation split have no such key
    return f"{summary['task']}, {SPLIT_NAMES.get(split, split)}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", required=True)
    parser.add_argument("--command", required=True, help="the command that produced the directories")
    parser.add_argument("--rows", help="where the rows' committed data lie, said under the command")
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in args.dirs]
    rows = {row_name(s): s["modes"] for s in summaries}
    print(f"# {args.title}\n")
    print(
        f"Command: `{args.command}`"
        + (f"; rows (summary.json, config.yaml, predictions): `{args.rows}`" if args.rows else "")
        + "\n"
    )
    print(
        f"Model: `{summaries[0]['model']}`; "
        + "; ".join(f"{label}: {s['n']} triples" for label, s in zip(rows, summaries))
        + ".\n"
    )
    print(
        "Accuracy = exact match of the first generated line after SQuAD normalisation; prefix = the normalised "
        "generation starts with the answer; NLL = mean nats per response token, teacher-forced.\n"
    )
    print(mode_table(rows))
    print()
    for label, s in zip(rows, summaries):
        if "seconds" in s:
            print(f"- {label}: " + ", ".join(f"{m} {t / 60:.1f} min" for m, t in s["seconds"].items()))


if __name__ == "__main__":
    main()
