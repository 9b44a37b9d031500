"""Floating-point work of one outer meta-training step, counted by torch's FlopCounterMode (matrix products and
attention; elementwise work is not counted), so that a measured step time becomes an achieved TFLOP/s.

    python benchmarks/step_flops.py --model /tmp/llama1b --dtype bfloat16 --task jsonl:squad.jsonl \
        --batch-size 16 --implementation implicit --out DIR

LC meta-training as `promptgd train` runs it (teacher answers, second order, LM term off). The first outer step is
counted, after a warm-up step whose teacher decoding is excluded. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from promptgd.config import load_config
from promptgd.data.tasks import load_task
from promptgd.models.loading import load_model
from promptgd.models.parameterization import full_rank
from promptgd.run_dir import json_line, write_json
from promptgd.train.trainer import MetaTrainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--task", default="character_descriptions", help="registry name or jsonl:<path>")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--implementation", default="implicit", choices=["implicit", "explicit"])
    parser.add_argument("--pass-tokens", type=int, default=512, help="train.pass_tokens of the implicit update")
    parser.add_argument("--profile", action="store_true", help="then print torch.profiler tables of one more step")
    parser.add_argument("--out", required=True, help="directory for step_flops.json")
    args = parser.parse_args()

    model, tokenizer = load_model(args.model, args.dtype)
    cfg = load_config(
        None,
        [
            f"model.spec={args.model}",
            f"model.dtype={args.dtype}",
            f"train.batch_size={args.batch_size}",
            f"inner.implementation={args.implementation}",
            f"train.pass_tokens={args.pass_tokens}",
            "train.objective=lc",
            "train.val_every=0",
            "train.ckpt_every=0",
            "train.lm_weight=0",
        ],
    )
    splits = load_task(args.task, 2 * args.batch_size, 2 * args.batch_size, seed=0)
    tasks = (splits.train + splits.test)[: 2 * args.batch_size]
    tasks = (tasks * (2 * args.batch_size // len(tasks) + 1))[: 2 * args.batch_size]
    trainer = MetaTrainer(cfg, tokenizer, full_rank(model), tasks, [], Path("/tmp/promptgd-bench-unused"))
    trainer._meta_tasks(trainer.order[args.batch_size : 2 * args.batch_size])  # teacher answers of step 2, uncounted
    trainer.train_step()
    counter = FlopCounterMode(display=False)
    with counter:
        row = trainer.train_step()
    figures = {
        "model": args.model,
        "dtype": args.dtype,
        "implementation": args.implementation,
        "batch_size": args.batch_size,
        "pass_tokens": args.pass_tokens,
        "step_flops": counter.get_total_flops(),
        "flops_per_task": counter.get_total_flops() / args.batch_size,
        "step_s_under_counter": row["seconds"],
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if args.profile:
        trainer.step = 0  # step 1's tasks again: their teacher answers are cached, so only the step is profiled
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            trainer.train_step()
        averages = prof.key_averages()
        if torch.cuda.is_available():
            print(averages.table(sort_by="self_cuda_time_total", row_limit=15))
            figures["kernel_launches"] = sum(e.count for e in averages if e.key.startswith("cudaLaunchKernel"))
        print(averages.table(sort_by="self_cpu_time_total", row_limit=15))
    print(f"{'one outer step (TFLOP)':<32}{figures['step_flops'] / 1e12:>12.3f}")
    print(f"{'per task (TFLOP)':<32}{figures['flops_per_task'] / 1e12:>12.4f}")
    write_json(Path(args.out) / "step_flops.json", figures)
    print(json_line(figures), end="")


if __name__ == "__main__":
    main()
