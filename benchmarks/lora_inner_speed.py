"""LoRA-inner meta-training speed, explicit inner update (factors merged into the weights per task) against the
implicit one (update/implicit_lora.py: each task's factors applied by hooks, many tasks per pass), in one run.

    python benchmarks/lora_inner_speed.py --batch-size 8 --out results/benchmarks/bench_lora_inner_speed

LG, second order, rank-1 factors on every projection (α 64, η 1e-2 as in the SQuAD levers), no LM term; the median
of 3 outer steps after a warm-up step. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from promptgd.config import load_config
from promptgd.data.tasks import load_task
from promptgd.models.loading import load_model
from promptgd.models.lora import init_factors, lora_inner
from promptgd.run_dir import json_line, write_json
from promptgd.train.trainer import MetaTrainer


def seconds_per_task(model_spec: str, task: str, batch_size: int, implementation: str) -> float:
    model, tokenizer = load_model(model_spec)
    cfg = load_config(
        None,
        [
            f"model.spec={model_spec}",
            f"inner.implementation={implementation}",
            f"train.batch_size={batch_size}",
            "train.objective=lg",
            "train.lm_weight=0",
            "train.val_every=0",
            "train.ckpt_every=0",
            "lora.variant=inner",
            "lora.alpha=64",
            "inner.lr=1e-2",
        ],
    )
    tasks = load_task(task, 4 * batch_size, 0, seed=0).train
    trainer = MetaTrainer(
        cfg,
        tokenizer,
        lora_inner(model, init_factors(model, cfg.lora), cfg.lora),
        tasks,
        [],
        Path("/tmp/promptgd-bench-unused"),
    )
    trainer.train_step()
    return statistics.median(trainer.train_step()["seconds"] for _ in range(3)) / batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--task", default="character_descriptions")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", required=True, help="directory for lora_inner_speed.json")
    args = parser.parse_args()
    per_task = {i: seconds_per_task(args.model, args.task, args.batch_size, i) for i in ("explicit", "implicit")}
    figures = {
        "model": args.model,
        "task": args.task,
        "batch_size": args.batch_size,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "seconds_per_task": per_task,
        "lora_inner_speedup": per_task["explicit"] / per_task["implicit"],
    }
    print(f"{'what':<36}{'explicit':>10}{'implicit':>10}")
    print(f"{'LoRA-inner meta-training, s per task':<36}{per_task['explicit']:>10.3f}{per_task['implicit']:>10.3f}")
    print(f"{'speed-up':<36}{figures['lora_inner_speedup']:>20.2f}")
    write_json(Path(args.out) / "lora_inner_speed.json", figures)
    print(json_line(figures), end="")


if __name__ == "__main__":
    main()
