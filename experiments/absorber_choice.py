"""Apply the rule that chooses the absorber's method, on validation rows only, and say why.

    python experiments/absorber_choice.py VAL_DIR      (VAL_DIR/<method>/<task>/summary.json; `start` is the baseline)

The rule (results/studies/absorber_smollm2.md, "Rule"): a method's share on a task is how much of the start model's
Prompt − FT gap its FT closes on the task's metric (people: exact match; reversal: answer NLL; SQuAD: F1; WikiText:
NLL). Methods whose Prompt is not kept on every task (accuracy-like metrics within 2 points of the start model's, NLL
within 5%) are out, and so are those with a diverged update on any validation context, unless that leaves none (then
the fewest diverged). Among the rest, the highest mean share over the four tasks; a difference under 0.05 goes to the
earlier method of PREFERENCE (cheaper to train, smaller to ship). Prints a table, then one JSON line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TASKS = {"character_descriptions": "exact_match", "reversal": "nll", "squad": "f1", "wikitext": "nll"}
PREFERENCE = ("ss_lg", "ss_lc", "lora_inner", "lora_outer")
PROMPT_POINTS, PROMPT_NLL_RATIO, RESOLVED = 0.02, 1.05, 0.05


def share(metric: str, start: dict, method: dict) -> float:
    if metric == "nll":
        return (start["ft"]["nll"] - method["ft"]["nll"]) / (start["ft"]["nll"] - start["prompt"]["nll"])
    return (method["ft"][metric] - start["ft"][metric]) / (start["prompt"][metric] - start["ft"][metric])


def prompt_kept(metric: str, start: dict, method: dict) -> bool:
    if metric == "nll":
        return method["prompt"]["nll"] <= PROMPT_NLL_RATIO * start["prompt"]["nll"]
    return method["prompt"][metric] >= start["prompt"][metric] - PROMPT_POINTS


def modes(val: Path, method: str, task: str) -> dict:
    path = val / method / task / "summary.json"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run experiments/absorber_search.sh to the end first")
    return json.loads(path.read_text())["modes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("val", type=Path)
    args = parser.parse_args()
    start = {task: modes(args.val, "start", task) for task in TASKS}
    figures = {}
    for method in PREFERENCE:
        rows = {task: modes(args.val, method, task) for task in TASKS}
        figures[method] = {
            "shares": {task: share(metric, start[task], rows[task]) for task, metric in TASKS.items()},
            "prompt_kept": all(prompt_kept(metric, start[task], rows[task]) for task, metric in TASKS.items()),
            "diverged": sum(rows[task]["ft"].get("diverged_share", 0.0) for task in TASKS),
        }
        figures[method]["mean_share"] = sum(figures[method]["shares"].values()) / len(TASKS)
    kept = [m for m in PREFERENCE if figures[m]["prompt_kept"]]
    if not kept:
        raise SystemExit("no method keeps Prompt on every task: the rule chooses none")
    fewest = min(figures[m]["diverged"] for m in kept)  # 0 where any method never diverged
    eligible = [m for m in kept if figures[m]["diverged"] == fewest]
    best = max(figures[m]["mean_share"] for m in eligible)
    chosen = next(m for m in PREFERENCE if m in eligible and figures[m]["mean_share"] >= best - RESOLVED)
    print("| method | " + " | ".join(f"{t} share ({TASKS[t]})" for t in TASKS) + " | mean | Prompt kept | diverged |")
    print("|---|" + "---:|" * (len(TASKS) + 3))
    for method, f in figures.items():
        shares = " | ".join(f"{100 * f['shares'][t]:.1f}%" for t in TASKS)
        mark = " (chosen)" if method == chosen else ""
        print(f"| {method}{mark} | {shares} | {100 * f['mean_share']:.1f}% | {f['prompt_kept']} | {f['diverged']:g} |")
    json.dump({"methods": figures, "chosen": chosen}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
