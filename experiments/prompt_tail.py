"""How much of Prompt mode's advantage on a task comes from the last words before the query rather than from the
passage's content: Prompt with the whole context, with only its last k words, and NC, on the same triples.

    python experiments/prompt_tail.py configs/wikitext.yaml --model runs/eta_wikitext2/start/start_model \
        --words 2,4,8 --out runs/prompt_tail_wikitext [dotted overrides, e.g. eval.split=test]
    # each condition's rows then: promptgd export runs/prompt_tail_wikitext/<condition> --out results/studies/...

On WikiText the query ("the") continues the sentence the context stops in, so Prompt sees the words right before
the continuation, which a step on the passage does not hand to the query: if a few last words give most of Prompt's
gain over NC, the Prompt − FT gap is mostly local continuation, not stored content. The validation split by default
(a diagnostic; nothing is chosen with it). Writes OUT/<condition>/ (summary.json, predictions.jsonl, config.yaml)
per condition; prints a table and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from promptgd.config import load_config, with_overrides
from promptgd.data.partition import load_partition
from promptgd.evaluate.recipe import evaluate_model, write_eval
from promptgd.models.loading import load_configured

METRICS = ("token_accuracy", "nll", "f1")


def last_words(context: str, k: int) -> str:
    return " ".join(context.split()[-k:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--model", required=True, help="the model to evaluate, e.g. the warmed-up start model")
    parser.add_argument("--words", default="2,4,8", help="comma-separated k: Prompt with the context's last k words")
    parser.add_argument("--out", required=True, type=Path, help="a new directory; one subdirectory per condition")
    args, overrides = parser.parse_known_args()
    cfg = load_config(args.config, [f"model.spec={args.model}", "eval.split=val", *overrides])
    model, tokenizer = load_configured(cfg.model)
    triples = load_partition(cfg).split(cfg.eval.split)  # evaluate() takes the first eval.limit of them
    conditions = {"nc": ("nc", triples), "prompt": ("prompt", triples)}
    for k in map(int, args.words.split(",")):
        conditions[f"prompt_last{k}"] = ("prompt", [replace(t, context=last_words(t.context, k)) for t in triples])
    results = {}
    for name, (mode, items) in conditions.items():
        run_cfg = with_overrides(cfg, [f"eval.modes={mode}"])
        summary = write_eval(evaluate_model(model, tokenizer, items, run_cfg), run_cfg, args.out / name)
        results[name] = {m: summary["modes"][mode][m] for m in METRICS}
        n = summary["n"]  # the same triples in every condition
    nc, full = results["nc"]["nll"], results["prompt"]["nll"]
    print(f"{cfg.task.name}, {cfg.eval.split} split, n = {n}, model {args.model}\n")
    print("| condition | token acc % | NLL | share of Prompt's NLL gain over NC |\n|---|---:|---:|---:|")
    for name, r in results.items():
        share = (nc - r["nll"]) / (nc - full)
        results[name]["share_of_prompt_gain"] = share
        print(f"| {name} | {100 * r['token_accuracy']:.1f} | {r['nll']:.3f} | {100 * share:.0f}% |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
