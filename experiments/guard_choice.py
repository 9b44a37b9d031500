"""Apply the rule that chooses the divergence guard (inner.guard) on validation rows only, and say why.

    python experiments/guard_choice.py none=DIR stop=DIR halve=DIR

The rule (results/studies/squad_smollm2.md, "The divergence guard"): the guard with the highest validation FT F1; a
difference under 2 F1 points (what 100 validation questions resolve at best) goes to the guard with the smaller
share of diverged updates, then to the simpler one (none, stop, halve in that order). Prints a table, then one JSON
line with the figures and the chosen guard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESOLVED = 0.02
ORDER = ("none", "stop", "halve")


def main() -> None:
    runs = dict(arg.split("=", 1) for arg in sys.argv[1:])
    figures = {}
    for guard in ORDER:
        ft = json.loads((Path(runs[guard]) / "summary.json").read_text())["modes"]["ft"]
        figures[guard] = {"f1": ft["f1"], "nll": ft["nll"], "diverged_share": ft["diverged_share"]}
    best = max(f["f1"] for f in figures.values())
    close = [g for g in ORDER if figures[g]["f1"] >= best - RESOLVED]
    chosen = min(close, key=lambda g: (figures[g]["diverged_share"], ORDER.index(g)))
    print("| inner.guard | val FT F1 | val FT NLL | diverged share |")
    print("|---|---:|---:|---:|")
    for guard, f in figures.items():
        mark = " (chosen)" if guard == chosen else ""
        print(f"| {guard}{mark} | {100 * f['f1']:.1f} | {f['nll']:.2f} | {100 * f['diverged_share']:.0f}% |")
    print(json.dumps({"guards": figures, "chosen": chosen}))


if __name__ == "__main__":
    main()
