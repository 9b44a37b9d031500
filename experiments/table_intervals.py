"""Re-render committed `promptgd reproduce` tables with 95% intervals over contexts, from their committed rows.

    python experiments/table_intervals.py (--in-place | --out DIR) results/paper/*_small.md

For `results/paper/<name>_<scale>.md` every cell is recomputed from its row folder,
`results/paper/<name>_<scale>/<task>/<model>/<evaluation>/` (summary.json, predictions.jsonl.gz), by the code that
renders `promptgd reproduce`'s tables (reproduce/runner.py `table_lines`), so the file gets the table a rerun would
write. Only the generated table (the first one, under the wall time) is replaced and the line on its intervals put
under it; every other line is kept as it is, the tables added by hand included. A recomputed value that differs
from the one in the table is a bug: every such cell is listed and nothing is written (exit status 1).
Prints each changed cell, then, last, one JSON line: file -> {"changed": cells that got an interval,
"mismatches": [...], "written": where it went}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promptgd.reproduce.experiments import experiments
from promptgd.reproduce.runner import Reproduction, cell_places, cell_value, table_lines
from promptgd.run_dir import json_line

CONFIGS = Path(__file__).parents[1] / "configs"
NOTE_PREFIXES = ("Intervals:", "No intervals:")  # the line under a table that this script or reproduce wrote


def recomputed_table(path: Path, configs: Path) -> list[str]:
    """The table `promptgd reproduce` would write for `path` (…/<name>_<scale>.md), with its intervals line, from
    the rows committed beside it."""
    name, scale = path.stem.rsplit("_", 1)
    experiment = experiments(scale)[name]
    places = cell_places(experiment, Reproduction(configs, path.parent / path.stem, scale, progress=False))
    values: dict[str, dict[str, float]] = {}
    for (label, header), place in places.items():
        if not (place.eval_dir / "summary.json").is_file():
            raise FileNotFoundError(f"{path}: the row of cell ({label}, {header}) is missing: {place.eval_dir}")
        values.setdefault(label, {})[header] = cell_value(place.eval_dir, place.metric, place.task)
    return table_lines(experiment, values, places)  # cell_places lists the rows in the table's order


def cells(row: str) -> list[str]:
    """'| a | b (1–2) |' -> ['a', 'b (1–2)']."""
    return row.strip().strip("|").strip().split(" | ")


def compare(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    """(changed cells, mismatches) between the committed table's lines and the recomputed one's: a mismatch is a
    header or a row label that differs, or a value (a cell without its interval) that does."""
    if len(old) != len(new) or cells(old[0]) != cells(new[0]):
        return [], [f"the table's shape or header differs:\n  {old[0]}\n  {new[0]}"]
    headers = cells(old[0])
    changed, mismatches = [], []
    for old_row, new_row in zip(old[2:], new[2:]):
        before, after = cells(old_row), cells(new_row)
        if before[0] != after[0]:
            mismatches.append(f"row {before[0]!r} is {after[0]!r} now")
            continue
        for header, was, now in zip(headers[1:], before[1:], after[1:]):
            if now.split(" (")[0] != was.split(" (")[0]:
                mismatches.append(f"{before[0]} / {header}: {was} in the table, {now} recomputed")
            elif now != was:
                changed.append(f"{before[0]} / {header}: {was} → {now}")
    return changed, mismatches


def rerendered(text: str, table: list[str]) -> tuple[str, list[str], list[str]]:
    """`text` with its first table replaced by `table` (the table, a blank line and the intervals line); the
    intervals line goes first in the paragraph under the table, replacing one written before. Returns the new text,
    the changed cells and the mismatches."""
    lines = text.split("\n")  # split on "\n" alone, so every other line comes back byte for byte
    start = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    if end == len(lines) or lines[end]:
        raise ValueError(f"line {end + 1}: a blank line was expected under the table")
    changed, mismatches = compare(lines[start:end], table[:-2])
    rest = lines[end + 1 :]  # after the blank line under the table
    if rest and rest[0].startswith(NOTE_PREFIXES):
        rest = rest[1:]
    return "\n".join(lines[:start] + table + rest), changed, mismatches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--in-place", action="store_true", help="rewrite each file where it is")
    where.add_argument("--out", type=Path, help="write each file under DIR, by its name")
    parser.add_argument("--configs", type=Path, default=CONFIGS, help="the presets the tables were made with")
    parser.add_argument("files", type=Path, nargs="+", help="committed tables, results/paper/<name>_<scale>.md")
    args = parser.parse_args()
    report, pending = {}, {}
    for path in args.files:
        text, changed, mismatches = rerendered(path.read_text(), recomputed_table(path, args.configs))
        print(f"{path}: {len(changed)} cells get an interval, {len(mismatches)} values differ")
        print("".join(f"  {line}\n" for line in changed + mismatches), end="")
        pending[path] = text
        report[str(path)] = {"changed": len(changed), "mismatches": mismatches}
    if not any(r["mismatches"] for r in report.values()):
        for path, text in pending.items():
            target = path if args.in_place else args.out / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            report[str(path)]["written"] = str(target)
    print(json_line(report), end="")
    sys.exit(1 if any(r["mismatches"] for r in report.values()) else 0)


if __name__ == "__main__":
    main()
