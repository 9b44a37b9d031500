"""LoRA-inner calibration on the validation split: FT of the *untrained* adapter (B = 0) per LoRA α.

With B = 0 only B receives the inner gradient, and the step on the merged weight is ΔW = −η·s²·G·AᵀA
(s = α / r): at α = 1 it is a rank-r sliver of the full step −η·G, so the untrained adapter's FT is NC (inert),
whereas in the paper it starts close to the base model's FT (SQuAD 45.1 vs 47.3). α sets how far the factors'
step reaches; this scan picks the α whose untrained FT comes closest to full-rank FT on validation triples.

    python experiments/lora_alpha_scan.py configs/squad.yaml --model runs/eta_squad/start/start_model \
        --alphas 1,16,64,256,1024 --out runs/lora_alpha_squad [dotted overrides ...]

Prints a table and, last, one JSON object; writes OUT/alpha_<α>/summary.json (and OUT/full_rank/) per point.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from promptgd.config import load_config
from promptgd.data.partition import load_partition
from promptgd.evaluate.recipe import evaluate_model, write_eval
from promptgd.models.loading import load_configured
from promptgd.models.lora import init_factors, lora_inner


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--model", required=True, help="the warmed-up start model")
    parser.add_argument("--alphas", default="1,16,64,256,1024")
    parser.add_argument("--out", required=True)
    args, overrides = parser.parse_known_args()
    cfg = load_config(
        args.config, [f"model.spec={args.model}", "eval.split=val", "eval.modes=ft", "lora.variant=inner", *overrides]
    )
    model, tokenizer = load_configured(cfg.model)
    triples = load_partition(cfg).val
    out = Path(args.out)
    results = {
        "full_rank": write_eval(evaluate_model(model, tokenizer, triples, cfg), cfg, out / "full_rank")["modes"]["ft"]
    }
    for alpha in [float(a) for a in args.alphas.split(",")]:
        lora_cfg = replace(cfg, lora=replace(cfg.lora, alpha=alpha))
        param = lora_inner(model, init_factors(model, lora_cfg.lora, lora_cfg.train.seed), lora_cfg.lora)
        summary = write_eval(
            evaluate_model(model, tokenizer, triples, lora_cfg, param=param), lora_cfg, out / f"alpha_{alpha:g}"
        )
        results[f"alpha={alpha:g}"] = summary["modes"]["ft"]
    print(
        f"untrained LoRA-inner (rank {cfg.lora.rank}, η = {cfg.inner.lr:g}) vs full-rank FT, validation split, n = {len(triples[: cfg.eval.limit or None])}\n"
    )
    print("| inner step on | FT acc % | FT F1 % | FT tok % | FT NLL |")
    print("|---|---:|---:|---:|---:|")
    for name, ft in results.items():
        print(
            f"| {name} | {100 * ft['accuracy']:.1f} | {100 * ft['f1']:.1f} | {100 * ft['token_accuracy']:.1f} | {ft['nll']:.3f} |"
        )
    print(
        json.dumps(
            {name: {k: ft[k] for k in ("accuracy", "f1", "token_accuracy", "nll")} for name, ft in results.items()}
        )
    )


if __name__ == "__main__":
    main()
