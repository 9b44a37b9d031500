"""Cost of one meta-step relative to one plain forward+backward over the same tokens, and peak memory
against the outer batch size.

    python benchmarks/metastep.py --model packaged:smollm2-135m --out results/benchmarks/bench_metastep
    python benchmarks/metastep.py --model /tmp/llama1b --task jsonl:squad.jsonl --dtype bfloat16 --profile --out DIR

(`/tmp/llama1b` from benchmarks/shaped_model.py; `--profile` first prints torch.profiler tables by operator.)

The plain reference is what ordinary fine-tuning on the task's tokens would cost: one forward and one
backward over the context and over query ⊕ answer. The meta-step does the inner forward+backward on the
context, the outer forward on query ⊕ answer at θ', and the backward through both (second order: through
the inner gradient too). Peak memory runs each batch size in a fresh process; on CPU it is the peak RSS of two training steps
(model, Adam state and the steps' graphs), the load's own peak excluded (Linux: /proc/self/clear_refs).
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from promptgd.config import load_config
from promptgd.data.encoding import Encoder
from promptgd.data.tasks import load_task
from promptgd.lm import lm_loss
from promptgd.malloc import allocator
from promptgd.models.loading import load_model
from promptgd.models.parameterization import full_rank
from promptgd.objectives.lg import lg_task
from promptgd.run_dir import json_line, write_json
from promptgd.train.metastep import meta_loss
from promptgd.train.metrics_log import peak_memory_mb
from promptgd.train.trainer import MetaTrainer
from promptgd.update.explicit import ExplicitUpdate
from promptgd.update.step_sizes import StepSizes


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay one-off allocation and dispatch costs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Steps(NamedTuple):
    """One task's steps on one loaded model; each call runs one step and zeroes the gradients."""

    plain: Callable[[], None]
    second_order: Callable[[], None]
    first_order: Callable[[], None]
    tokens: int
    device: torch.device


def step_functions(model_spec: str, dtype: str, task_name: str) -> Steps:
    model, tokenizer = load_model(model_spec, dtype)
    cfg = load_config(None, [f"model.spec={model_spec}", f"model.dtype={dtype}"])
    encoder = Encoder(tokenizer, cfg.format)
    triple = load_task(task_name, 0, 1, seed=0).test[0]
    device = next(model.parameters()).device
    task = lg_task(encoder, [triple], device)  # LC and LG share the meta-step; LG needs no teacher here
    param = full_rank(model)
    update, step = ExplicitUpdate(), StepSizes(cfg.inner.lr)  # one task per step, as the paper's meta-step

    def plain():
        loss = lm_loss(param.forward, param.fast(), task.contexts[0]) + lm_loss(
            param.forward, param.fast(), task.queries
        )
        loss.backward()
        model.zero_grad(set_to_none=True)

    def meta(first_order: bool):
        meta_loss(param.forward, param.fast(), task, update, step, cfg.inner, first_order).backward()
        model.zero_grad(set_to_none=True)

    tokens = task.contexts[0].n_tokens + task.queries.n_tokens
    return Steps(plain, lambda: meta(False), lambda: meta(True), tokens, device)


def step_times(steps: Steps, repeats: int) -> dict:
    sync = torch.cuda.synchronize if steps.device.type == "cuda" else (lambda: None)
    t_plain = timed(lambda: (steps.plain(), sync()), repeats)
    t_second = timed(lambda: (steps.second_order(), sync()), repeats)
    t_first = timed(lambda: (steps.first_order(), sync()), repeats)
    return {"tokens": steps.tokens, "plain_s": t_plain, "second_order_s": t_second, "first_order_s": t_first}


def print_profile(steps: Steps) -> None:
    """Where one plain step and one second-order step spend their time, by operator (torch.profiler)."""
    device = steps.device
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for name, step in (("plain forward+backward", steps.plain), ("second-order meta-step", steps.second_order)):
        step()  # warm-up outside the profile
        with torch.profiler.profile(activities=activities) as prof:
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
        print(f"== profile: {name}")
        print(prof.key_averages().table(sort_by=sort_by, row_limit=12))
        if device.type == "cuda":  # and where the host spends its time while the GPU waits
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def trainer_for(
    model_spec: str,
    dtype: str,
    task_name: str,
    batch_size: int,
    implementation: str,
    n_steps: int,
    pass_tokens: int,
    gradient_sinks: bool = True,
):
    """LG meta-training (no LM term) at this outer batch size with the explicit or the implicit inner update."""
    model, tokenizer = load_model(model_spec, dtype)
    cfg = load_config(
        None,
        [
            f"model.spec={model_spec}",
            f"model.dtype={dtype}",
            f"train.batch_size={batch_size}",
            f"inner.implementation={implementation}",
            f"train.pass_tokens={pass_tokens}",
            f"train.gradient_sinks={str(gradient_sinks).lower()}",
            "train.objective=lg",
            "train.val_every=0",
            "train.ckpt_every=0",
            "train.lm_weight=0",
        ],
    )
    splits = load_task(task_name, n_steps * batch_size, n_steps * batch_size, seed=0)
    tasks = (splits.train + splits.test)[: n_steps * batch_size]  # a jsonl task may hold only a test split
    if len(tasks) < n_steps * batch_size:  # a short jsonl task: its triples again, as further epochs would
        tasks = (tasks * (n_steps * batch_size // len(tasks) + 1))[: n_steps * batch_size]
    return MetaTrainer(cfg, tokenizer, full_rank(model), tasks, [], Path("/tmp/promptgd-bench-unused"))


def tasks_per_s(model_spec, dtype, task_name, batch_size, implementation, repeats, pass_tokens, sinks) -> float:
    """Median outer-step time of LG meta-training, in tasks per second (first step: warm-up, not counted)."""
    trainer = trainer_for(model_spec, dtype, task_name, batch_size, implementation, repeats + 1, pass_tokens, sinks)
    trainer.train_step()
    return batch_size / statistics.median(trainer.train_step()["seconds"] for _ in range(repeats))


def peak_memory(model_spec, dtype, task_name, batch_size, implementation, pass_tokens, sinks) -> float:
    """Peak memory of two outer steps of LG meta-training at this batch size (run in a fresh process)."""
    trainer = trainer_for(model_spec, dtype, task_name, batch_size, implementation, 2, pass_tokens, sinks)
    device = next(trainer.param.model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        trainer.train_step()
        trainer.train_step()
        return peak_memory_mb(device)
    # On CPU the peak resident set size of the training steps alone: loading a model (the packaged one is
    # de-quantised from GGUF) peaks higher than a step, and ru_maxrss would report that load for every setting.
    Path("/proc/self/clear_refs").write_text("5")  # resets the kernel's peak RSS (VmHWM) to the current RSS
    trainer.train_step()
    trainer.train_step()
    return peak_rss_mib()


def peak_rss_mib() -> float:
    """This process's peak resident set size since start or the last reset through /proc/self/clear_refs (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--task", default="character_descriptions", help="registry name or jsonl:<path>")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--out", required=True, help="directory for metastep.json")
    parser.add_argument(
        "--profile", action="store_true", help="print torch.profiler tables of one step of each kind first"
    )
    parser.add_argument("--outer-batch", type=int, default=8, help="outer batch of the tasks-per-second comparison")
    parser.add_argument("--pass-tokens", type=int, default=512, help="train.pass_tokens of the implicit update")
    parser.add_argument(
        "--no-gradient-sinks",
        dest="gradient_sinks",
        action="store_false",
        help="train.gradient_sinks=false: autograd sums each weight's meta-gradient before .grad (the older path)",
    )
    parser.add_argument("--peak-memory-for", type=int, help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--implementation", default="explicit", help=argparse.SUPPRESS)  # child-process mode
    args = parser.parse_args()
    if args.peak_memory_for is not None:
        peak = peak_memory(
            args.model,
            args.dtype,
            args.task,
            args.peak_memory_for,
            args.implementation,
            args.pass_tokens,
            args.gradient_sinks,
        )
        print(json.dumps({"peak_mb": peak}))
        return

    steps = step_functions(args.model, args.dtype, args.task)
    if args.profile:
        print_profile(steps)
    times = step_times(steps, args.repeats)
    del steps  # frees the model before the next ones load theirs
    speed = {
        implementation: tasks_per_s(
            args.model,
            args.dtype,
            args.task,
            args.outer_batch,
            implementation,
            args.repeats,
            args.pass_tokens,
            args.gradient_sinks,
        )
        for implementation in ("explicit", "implicit")
    }
    peaks: dict[str, dict[int, float]] = {"explicit": {}, "implicit": {}}
    for implementation, b in [(i, int(x)) for i in peaks for x in args.batch_sizes.split(",")]:
        child = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--dtype", args.dtype, "--task", args.task]
            + ["--out", args.out, "--peak-memory-for", str(b), "--implementation", implementation]
            + ["--pass-tokens", str(args.pass_tokens)]
            + ([] if args.gradient_sinks else ["--no-gradient-sinks"]),
            check=True,
            capture_output=True,
            text=True,
        )
        peaks[implementation][b] = json.loads(child.stdout.strip().splitlines()[-1])["peak_mb"]
    sizes = sorted(peaks["explicit"])
    first, last = sizes[0], sizes[-1]
    result = {
        "model": args.model,
        "dtype": args.dtype,
        "task": args.task,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "allocator": allocator(),  # malloc.py: run under LD_PRELOAD=libtcmalloc_minimal.so.4 for tcmalloc
        "tokens_per_task": times["tokens"],
        "plain_fwd_bwd_s": times["plain_s"],
        "second_order_s": times["second_order_s"],
        "first_order_s": times["first_order_s"],
        "ratio_second_order": times["second_order_s"] / times["plain_s"],
        "ratio_first_order": times["first_order_s"] / times["plain_s"],
        "outer_batch": args.outer_batch,
        "pass_tokens": args.pass_tokens,
        "gradient_sinks": args.gradient_sinks,  # train.gradient_sinks of the implicit path (update/gradient_sinks.py)
        "tasks_per_s": speed,
        "batched_speedup": speed["implicit"] / speed["explicit"],
        "peak_mem_mb": {i: {str(b): peaks[i][b] for b in sizes} for i in peaks},
        # The new path at the largest batch against the old one at the smallest (the memory target) ...
        f"peak_mem_ratio_b{last}_b{first}": peaks["implicit"][last] / peaks["explicit"][first],
        # ... and each path's own growth with the batch.
        **{f"peak_mem_ratio_{i}_b{last}_b{first}": peaks[i][last] / peaks[i][first] for i in peaks},
    }
    print(f"{'what':<34}{'value':>12}")
    print(f"{'plain forward+backward (s)':<34}{result['plain_fwd_bwd_s']:>12.3f}")
    print(
        f"{'second-order meta-step (s)':<34}{result['second_order_s']:>12.3f}   ratio {result['ratio_second_order']:.2f}x (target <= 4)"
    )
    print(
        f"{'first-order meta-step (s)':<34}{result['first_order_s']:>12.3f}   ratio {result['ratio_first_order']:.2f}x (target <= 2)"
    )
    for i in ("explicit", "implicit"):
        print(f"{f'{i}: tasks/s at outer batch {args.outer_batch}':<34}{speed[i]:>12.2f}")
    print(f"{'batched speedup (target >= 1.5)':<34}{result['batched_speedup']:>12.2f}")
    for i in ("explicit", "implicit"):
        for b in sizes:
            print(f"{f'{i}: peak memory, batch {b} (MiB)':<34}{peaks[i][b]:>12.0f}")
    print(f"{f'implicit b{last} / explicit b{first} (<= 1)':<34}{result[f'peak_mem_ratio_b{last}_b{first}']:>12.2f}")
    write_json(Path(args.out) / "metastep.json", result)
    print(json_line(result), end="")


if __name__ == "__main__":
    main()
