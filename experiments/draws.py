"""Mean and spread of one recipe over several draws: evaluation directories (each with the summary.json of
`promptgd eval`) of models trained alike but for the seed or the order of floating-point sums. A table of each
draw's cells, then mean, sample standard deviation, min and max per cell; last line one JSON object.

    python experiments/draws.py [--metric accuracy] [--at-least ft=0.40] NAME=DIR[,DIR...] [NAME=DIR ...]

A draw NAME=DIR,DIR2 reads its modes from both directories (e.g. the test evaluation and a held-out one written
apart); a mode found in both is a mistake and is refused. `--at-least` / `--at-most` COLUMN=VALUE count the draws whose
cell meets the bound.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path


def read_draw(spec: str, metric: str) -> tuple[str, dict[str, float]]:
    """`NAME=DIR[,DIR...]` → (NAME, {column: value}); a held-out (`ood`) evaluation's modes are named `ood ft`."""
    name, sep, dirs = spec.partition("=")
    if not sep or not dirs:
        sys.exit(f"draws.py: {spec!r}: expected NAME=DIR[,DIR...]")
    cells: dict[str, float] = {}
    for directory in dirs.split(","):
        summary_path = Path(directory) / "summary.json"
        if not summary_path.is_file():
            sys.exit(f"draws.py: {summary_path}: no such file")
        summary = json.loads(summary_path.read_text())
        prefix = "ood " if summary.get("split") == "ood" else ""
        for mode, values in summary["modes"].items():
            column = prefix + mode
            if column in cells:
                sys.exit(f"draws.py: {summary_path}: {column} was read for draw {name!r} already")
            if metric not in values:
                sys.exit(f"draws.py: {summary_path}: mode {mode} has no {metric!r}")
            cells[column] = values[metric]
    return name, cells


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metric", default="accuracy", help="a key of summary.json's modes: accuracy, f1, nll, …")
    parser.add_argument("--at-least", metavar="COLUMN=VALUE", help="count the draws whose cell is >= VALUE")
    parser.add_argument("--at-most", metavar="COLUMN=VALUE", help="count the draws whose cell is <= VALUE")
    parser.add_argument("draws", nargs="+", metavar="NAME=DIR[,DIR...]")
    args = parser.parse_args()
    draws = dict(read_draw(spec, args.metric) for spec in args.draws)
    columns = list(dict.fromkeys(c for cells in draws.values() for c in cells))
    scale = 1 if args.metric == "nll" else 100  # accuracies print in %

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{scale * value:.{2 if args.metric == 'nll' else 1}f}"

    print(f"| draw | {' | '.join(columns)} |")
    print("|---|" + "---:|" * len(columns))
    for name, cells in draws.items():
        print(f"| {name} | {' | '.join(fmt(cells.get(c)) for c in columns)} |")
    spread = {}
    for column in columns:
        values = [cells[column] for cells in draws.values() if column in cells]
        spread[column] = {
            "n": len(values),
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values),
            "max": max(values),
        }
    for stat in ("mean", "sd", "min", "max"):
        print(f"| **{stat}** | {' | '.join(fmt(spread[c][stat]) for c in columns)} |")
    figures = {"metric": args.metric, "draws": draws, "spread": spread}
    for flag, symbol, bound_text, meets in (
        ("--at-least", "≥", args.at_least, lambda value, bound: value >= bound),
        ("--at-most", "≤", args.at_most, lambda value, bound: value <= bound),
    ):
        if bound_text is None:
            continue
        column, sep, bound = bound_text.partition("=")
        if column not in columns or not sep:
            sys.exit(f"draws.py: {flag} {bound_text}: expected COLUMN=VALUE with a column of {', '.join(columns)}")
        met = [name for name, cells in draws.items() if column in cells and meets(cells[column], float(bound))]
        print(f"\n{len(met)} of {spread[column]['n']} draws have {column} {symbol} {bound}: {', '.join(met) or 'none'}")
        figures[flag[2:]] = {"column": column, "bound": float(bound), "met": met}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
