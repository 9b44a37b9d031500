"""Whether a mode's gain depends on the gold continuation's words being in the passage: WikiText triples split by
whether any content word of the gold continuation occurs in the context, then each mode's continuation NLL and token
accuracy per group, and the share of the base model's Prompt − FT gap each row closes per group. Reads committed
prediction files; no model is run.

    python experiments/continuation_in_passage.py --base results/studies/wikitext_smollm2/base \
        results/studies/wikitext_smollm2/lc results/studies/wikitext_smollm2/lg results/studies/wikitext_smollm2/lg-step-sizes \
        --out results/studies/wikitext_smollm2/continuation_in_passage

A step on the passage can only make likelier what the passage holds; if the gains sit in the group whose
continuation words are in the passage, what the step stores is those words. Writes OUT/continuation_in_passage.json
and .md; prints the table and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from statistics import mean

from promptgd.report.diagnostics import read_predictions
from promptgd.report.tables import gap_share
from promptgd.run_dir import json_line, write_json, write_text_atomically

# Words that occur in nearly every passage, so finding one there says nothing about the passage's content.
FUNCTION_WORDS = frozenset(
    "a an the and or but of to in on at by for with from as into that this these those it its is was were be been "
    "are has had have he she they his her their them which who whom not no than then there".split()
)
GROUPS = ("in passage", "not in passage")


def percent(share: float | None) -> str:
    return "–" if share is None else f"{round(100 * share)}%"  # None: Prompt no better than FT, no gap to close


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in FUNCTION_WORDS and w != "unk"}


def group_of(record: dict) -> str:
    """'in passage' when a content word of the gold continuation also occurs in the item's context."""
    return GROUPS[0] if content_words(record["gold"]) & content_words(record["context"]) else GROUPS[1]


def by_group(row: Path) -> dict[str, dict[str, dict[str, float]]]:
    """group -> mode -> {n, nll, token_accuracy}: means over the group's triples."""
    table: dict[str, dict[str, dict[str, float]]] = {g: {} for g in GROUPS}
    for mode, records in read_predictions(row / "predictions.jsonl.gz").items():
        groups = {index: group_of(r) for index, r in records.items()}
        for group in GROUPS:
            members = [r for index, r in records.items() if groups[index] == group]
            table[group][mode] = {
                "n": len(members),
                "nll": mean(float(r["nll"]) for r in members),
                "token_accuracy": mean(float(r["token_accuracy"]) for r in members),
            }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, type=Path, help="the base row (its FT and Prompt define the gap)")
    parser.add_argument("rows", nargs="+", type=Path, help="row folders holding predictions.jsonl.gz")
    parser.add_argument("--out", required=True, type=Path, help="a new directory for the table and its JSON")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=False)  # a result already written is never replaced
    base = by_group(args.base)
    result = {"base": base, "rows": {row.name: by_group(row) for row in args.rows}, "gap_closed": {}}
    lines = [
        "| row | group | triples | NC NLL | Prompt NLL | FT NLL | FT NLL gap closed | FT tok % | FT tok gap closed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, table in [("base", base), *result["rows"].items()]:
        for group in GROUPS:
            cells, ref = table[group], base[group]
            closed = {
                metric: gap_share(ref["prompt"][metric], ref["ft"][metric], cells["ft"][metric], metric == "nll")
                for metric in ("nll", "token_accuracy")
            }
            result["gap_closed"].setdefault(name, {})[group] = closed
            lines.append(
                f"| {name} | {group} | {cells['ft']['n']} | {cells['nc']['nll']:.2f} | {cells['prompt']['nll']:.2f} | "
                f"{cells['ft']['nll']:.2f} | {percent(closed['nll'])} | {100 * cells['ft']['token_accuracy']:.1f} | "
                f"{percent(closed['token_accuracy'])} |"
            )
    table_md = "\n".join(lines) + "\n"
    command = "python experiments/continuation_in_passage.py " + " ".join(sys.argv[1:])
    write_text_atomically(args.out / "continuation_in_passage.md", f"Command: `{command}`\n\n{table_md}")
    write_json(args.out / "continuation_in_passage.json", result)
    print(table_md, end="")
    print(json_line(result["gap_closed"]))


if __name__ == "__main__":
    main()
