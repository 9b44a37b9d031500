"""Apply the rule that chooses the absorber's method, on validation rows only, and say why.

    python experiments/absorber_choice.py VAL_DIR      (VAL_DIR/<method>/<task>/summary.json; `start` is the baseline)

The rule (results/studies/absorber_smollm2.md, "Rule"): a method's share on a task is how much of the start model's
Prompt − FT gap its FT closes on the task's metric (people: exact match; reversal: answer NLL; SQuAD: F1; WikiText:
NLL); a task where the start model's FT is already at its Prompt has no gap and is left out of the mean. Methods
whose Prompt is not kept on every task (accuracy-like metrics within 2 points of the start model's, NLL within 5%) are
out, and so are those with a diverged update on any validation context, unless every method that keeps Prompt has one
(then those with the fewest such contexts stay). Among the rest, the highest mean share over the tasks; a difference
under 0.05 goes to the earlier method of PREFERENCE (cheaper to train, smaller to ship). Prints a table, then one
JSON line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TASKS = {"character_descriptions": "exact_match", "reversal": "nll", "squad": "f1", "wikitext": "nll"}
PREFERENCE = ("ss_lg", "ss_lc", "lora_inner", "lora_outer")
PROMPT_POINTS, PROMPT_NLL_RATIO, RESOLVED = 0.02, 1.05, 0.05


def share(metric: str, start: dict, method: dict) -> float | None:
    """The part of the start model's Prompt − FT gap the method's FT closes; None where there is no gap."""
    sign = -1 if metric == "nll" else 1  # lower is better for NLL
    gap = sign * (start["prompt"][metric] - start["ft"][metric])
    return sign * (method["ft"][metric] - start["ft"][metric]) / gap if gap > 0 else None


def prompt_kept(metric: str, start: dict, method: dict) -> bool:
    if metric == "nll":
        return method["prompt"]["nll"] <= PROMPT_NLL_RATIO * start["prompt"]["nll"]
    return method["prompt"][metric] >= start["prompt"][metric] - PROMPT_POINTS


def modes(val: Path, method: str, task: str) -> dict:
    path = val / method / task / "summary.json"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run experiments/absorber_search.sh to the end first")
    return json.loads(path.read_text())["modes"]


def diverged_contexts(val: Path, method: str, task: str) -> int:
    """Validation contexts whose FT update diverged (evaluate/evaluator.py marks each FT record)."""
    lines = (val / method / task / "predictions.jsonl").read_text().splitlines()
    return len({r["update"] for r in map(json.loads, lines) if r["mode"] == "ft" and r.get("diverged")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("val", type=Path)
    args = parser.parse_args()
    start = {task: modes(args.val, "start", task) for task in TASKS}
    figures = {}
    for method in PREFERENCE:
        rows = {task: modes(args.val, method, task) for task in TASKS}
        shares = {task: share(metric, start[task], rows[task]) for task, metric in TASKS.items()}
        counted = [v for v in shares.values() if v is not None]
        figures[method] = {
            "shares": shares,
            "mean_share": sum(counted) / len(counted) if counted else 0.0,
            "prompt_kept": all(prompt_kept(metric, start[task], rows[task]) for task, metric in TASKS.items()),
            "diverged_contexts": sum(diverged_contexts(args.val, method, task) for task in TASKS),
        }
    kept = [m for m in PREFERENCE if figures[m]["prompt_kept"]]
    if not kept:
        raise SystemExit("no method keeps Prompt on every task: the rule chooses none")
    fewest = min(figures[m]["diverged_contexts"] for m in kept)  # 0 where any method never diverged
    eligible = [m for m in kept if figures[m]["diverged_contexts"] == fewest]
    best = max(figures[m]["mean_share"] for m in eligible)
    chosen = next(m for m in PREFERENCE if m in eligible and figures[m]["mean_share"] >= best - RESOLVED)
    print(
        "| method | " + " | ".join(f"{t} ({TASKS[t]})" for t in TASKS) + " | mean | Prompt kept | diverged contexts |"
    )
    print("|---|" + "---:|" * (len(TASKS) + 3))
    for method, f in figures.items():
        shares = " | ".join("no gap" if v is None else f"{100 * v:.1f}%" for v in f["shares"].values())
        mark = " (chosen)" if method == chosen else ""
        row = f"{100 * f['mean_share']:.1f}% | {f['prompt_kept']} | {f['diverged_contexts']}"
        print(f"| {method}{mark} | {shares} | {row} |")
    json.dump({"methods": figures, "chosen": chosen}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
