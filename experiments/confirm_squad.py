"""The confirmatory test of the committed SQuAD step-size result on fresh dev paragraphs, by its pre-written rule.

    python experiments/confirm_squad.py --base runs/confirm/base --steps8 runs/confirm/ss_steps8 \
        --steps4 runs/confirm/ss_steps4 [--committed results/.../lg-step-sizes-steps8 --rebuilt runs/confirm/check]

The rule, written before any of its evaluations ran (results/studies/squad_smollm2.md, "Confirmation on fresh paragraphs"): the result is
confirmed iff the lower end of the 95% interval (paragraph bootstrap, 10,000 draws, seed 0) of the F1 gap share
(FT with the learned sizes over 8 steps − base FT) / (base Prompt − base FT) is at least 0.25.
`--committed/--rebuilt` first checks that the rebuilt model answers the committed row's first questions as it did.
Prints a table, then one JSON line with every figure."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from promptgd.report.intervals import bootstrap, by_context, gap_share, mean

THRESHOLD = 0.25
METRICS = {"f1": False, "exact_match": False, "token_accuracy": False, "nll": True}  # metric -> lower is better


def records(eval_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]


def compare_to_committed(committed: Path, rebuilt: Path) -> dict:
    """The rebuilt model's FT answers beside the committed row's, question by question (same indices)."""
    import gzip

    with gzip.open(committed / "predictions.jsonl.gz", "rt") as f:
        old = {r["index"]: r for r in map(json.loads, f) if r["mode"] == "ft"}
    new = [r for r in records(rebuilt) if r["mode"] == "ft"]
    same = sum(r["prediction"] == old[r["index"]]["prediction"] for r in new)
    nll_diff = max(abs(r["nll"] - old[r["index"]]["nll"]) for r in new)
    return {"questions": len(new), "same_answer": same, "max_nll_difference": nll_diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="eval dir: the start model, modes nc,prompt,ft")
    parser.add_argument("--steps8", type=Path, required=True, help="eval dir: learned sizes, 8 steps, mode ft")
    parser.add_argument("--steps4", type=Path, required=True, help="eval dir: learned sizes, 4 steps, mode ft")
    parser.add_argument("--committed", type=Path, help="the committed row whose first questions --rebuilt re-asked")
    parser.add_argument("--rebuilt", type=Path, help="eval dir: the rebuilt model on those questions")
    args = parser.parse_args()
    base = records(args.base)
    arms_of = {
        "nc": [r for r in base if r["mode"] == "nc"],
        "prompt": [r for r in base if r["mode"] == "prompt"],
        "ft": [r for r in base if r["mode"] == "ft"],
        "steps8": [r for r in records(args.steps8) if r["mode"] == "ft"],
        "steps4": [r for r in records(args.steps4) if r["mode"] == "ft"],
    }
    figures: dict = {"paragraphs": len({r["context"] for r in arms_of["ft"]}), "questions": len(arms_of["ft"])}
    lines = [
        "| metric | NC | Prompt | FT, 1 plain step | FT, sizes × 4 steps | FT, sizes × 8 steps | gap share × 4 | gap share × 8 |"
    ]
    lines.append("|---|" + "---:|" * 7)
    for metric, lower in METRICS.items():
        arms = {name: by_context(rs, metric) for name, rs in arms_of.items()}
        means = {name: bootstrap(arms, mean(name)) for name in arms}
        shares = {k: bootstrap(arms, gap_share(k, "prompt", "ft")) for k in ("steps4", "steps8")}
        scale, digits = (1, 2) if lower else (100, 1)
        cells = [means[n].format(scale, digits) for n in ("nc", "prompt", "ft", "steps4", "steps8")]
        cells += [shares[k].format(100, 0) for k in ("steps4", "steps8")]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        figures[metric] = {
            **{n: vars(i) for n, i in means.items()},
            **{f"gap_share_{k}": vars(i) for k, i in shares.items()},
        }
    confirmed = figures["f1"]["gap_share_steps8"]["low"] >= THRESHOLD
    figures["rule"] = f"confirmed iff the lower end of the F1 gap share's 95% interval (8 steps) >= {THRESHOLD}"
    figures["confirmed"] = confirmed
    if args.committed and args.rebuilt:
        figures["rebuilt_vs_committed"] = compare_to_committed(args.committed, args.rebuilt)
    print("\n".join(lines))
    print(
        f"\nmetric means in % (NLL in nats), 95% paragraph-bootstrap intervals; {figures['paragraphs']} paragraphs, "
        f"{figures['questions']} questions. Rule: {figures['rule']}: {'CONFIRMED' if confirmed else 'NOT CONFIRMED'}"
    )
    json.dump(figures, sys.stdout)
    print()


if __name__ == "__main__":
    main()
