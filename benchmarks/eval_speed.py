"""FT-mode evaluation speed, explicit inner update (a copy of the weights per context) against the implicit one
(update/implicit.py: many contexts per pass), in one run: examples per second, whether the predictions are the
same, and the cost of one FT evaluation relative to one plain forward+backward over the same tokens.

    python benchmarks/eval_speed.py --model packaged:smollm2-135m --n 50 --out results/benchmarks/bench_eval_speed

One FT evaluation = the inner update on the context (forward+backward+SGD step into reused buffers), one
forward over query ⊕ response that scores the response and checks greedy decoding against it, and as many
decoding steps as the model's disagreement with the gold answer requires. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from promptgd.config import load_config, with_overrides
from promptgd.data.encoding import Encoder
from promptgd.data.tasks import load_task
from promptgd.evaluate.recipe import evaluate_model
from promptgd.lm import TokenBatch, functional_forward, lm_loss
from promptgd.malloc import allocator
from promptgd.models.loading import load_model
from promptgd.run_dir import json_line, write_json


def plain_forward_backward_s(model, tokenizer, triples, cfg) -> float:
    """Median time of one forward+backward over context ⊕ query ⊕ response, one triple at a time."""
    encoder = Encoder(tokenizer, cfg.format)
    forward, params = functional_forward(model), dict(model.named_parameters())
    device = next(model.parameters()).device
    batches = [
        TokenBatch.from_lists(
            [encoder.context(t) + encoder.query(t) + encoder.response(t)], tokenizer.pad_token_id, device=device
        )
        for t in triples
    ]

    def forward_backward_s(batch: TokenBatch) -> float:
        start = time.perf_counter()
        lm_loss(forward, params, batch).backward()
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    forward_backward_s(batches[0])  # warm-up: first calls pay one-off allocation and dispatch costs
    return statistics.median(forward_backward_s(b) for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--task", default="character_descriptions")
    parser.add_argument("--n", type=int, default=50, help="test triples to evaluate")
    parser.add_argument("--out", required=True, help="directory for eval_speed.json")
    args = parser.parse_args()

    cfg = load_config(
        None,
        [
            f"model.spec={args.model}",
            f"task.name={args.task}",
            "task.n_train=0",
            f"task.n_test={args.n}",
            "eval.modes=ft",
        ],
    )
    model, tokenizer = load_model(cfg.model.spec)
    triples = load_task(cfg.task.name, cfg.task.n_train, cfg.task.n_test, cfg.task.seed).test
    results = {}
    for implementation in ("explicit", "implicit"):
        run_cfg = with_overrides(cfg, [f"inner.implementation={implementation}"])
        evaluate_model(model, tokenizer, triples[:2], run_cfg, progress=False)  # warm-up: allocations, stop tokens
        results[implementation] = evaluate_model(model, tokenizer, triples, run_cfg, progress=False)
    plain_s = plain_forward_backward_s(model, tokenizer, triples[: min(len(triples), 20)], cfg)
    per_example = {i: r.seconds["ft"] / len(triples) for i, r in results.items()}
    predictions = {i: [r["prediction"] for r in result.records] for i, result in results.items()}
    figures = {
        "model": args.model,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "allocator": allocator(),  # malloc.py: run under LD_PRELOAD=libtcmalloc_minimal.so.4 for tcmalloc
        "n": len(triples),
        "batch_size": cfg.eval.batch_size,
        "ft_examples_per_s": {i: 1 / s for i, s in per_example.items()},
        "ft_eval_s": per_example,
        "plain_fwd_bwd_s": plain_s,
        "ft_eval_speedup": per_example["explicit"] / per_example["implicit"],
        "ft_eval_ratio": per_example["implicit"] / plain_s,
        "ft_eval_ratio_explicit": per_example["explicit"] / plain_s,
        "predictions_differing": sum(a != b for a, b in zip(predictions["explicit"], predictions["implicit"])),
        "ft_accuracy": {i: r.modes["ft"]["accuracy"] for i, r in results.items()},
    }
    print(f"{'what':<40}{'explicit':>10}{'implicit':>10}")
    print(f"{'FT evaluation (examples/s)':<40}{1 / per_example['explicit']:>10.2f}{1 / per_example['implicit']:>10.2f}")
    print(f"{'one FT evaluation (s)':<40}{per_example['explicit']:>10.3f}{per_example['implicit']:>10.3f}")
    print(
        f"{'ratio to one forward+backward':<40}{figures['ft_eval_ratio_explicit']:>10.2f}{figures['ft_eval_ratio']:>10.2f}"
    )
    print(f"{'one forward+backward, same tokens (s)':<40}{plain_s:>10.3f}")
    print(f"{'speedup (target >= 3)':<40}{figures['ft_eval_speedup']:>20.2f}")
    print(f"{'predictions that differ':<40}{figures['predictions_differing']:>20d}")
    write_json(Path(args.out) / "eval_speed.json", figures)
    print(json_line(figures), end="")


if __name__ == "__main__":
    main()
