"""Meta-training and FT evaluation on glibc's allocator against tcmalloc (src/promptgd/malloc.py), same machine,
same run: seconds per outer step, FT evaluation time, peak RSS, and whether the losses are bit-identical.

    python benchmarks/allocator.py --out results/benchmarks/bench_allocator

Each allocator runs in fresh processes (a library can only be preloaded at process start), alternating
glibc, tcmalloc, glibc, tcmalloc, … so that a drift in the machine's speed hits both. One process: LG meta-training
with the implicit update at outer batch 4 (the presets' batch), one warm-up step, then `--steps` timed steps; then
FT evaluation of `--eval-n` test triples. Peak RSS is taken after the model has loaded (Linux: /proc/self/clear_refs).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from promptgd.malloc import allocator, preload_environment, tcmalloc_library
from promptgd.run_dir import json_line, write_json


def measure(args: argparse.Namespace) -> dict:
    """One process's figures (run under whichever allocator it was started with)."""
    from metastep import peak_rss_mib, trainer_for

    from promptgd.config import load_config
    from promptgd.data.tasks import load_task
    from promptgd.evaluate.recipe import evaluate_model

    trainer = trainer_for(args.model, "float32", args.task, args.outer_batch, "implicit", args.steps + 1, 512)
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on: training and evaluation, not the load
    rows = [trainer.train_step() for _ in range(args.steps + 1)]  # the first is the warm-up, not timed
    model, tokenizer = trainer.param.model, trainer.tokenizer
    cfg = load_config(None, [f"model.spec={args.model}", "eval.modes=[ft]", "inner.implementation=implicit"])
    triples = load_task(args.task, 0, args.eval_n, seed=0).test
    start = time.perf_counter()
    evaluate_model(model, tokenizer, triples, cfg, progress=False)
    return {
        "allocator": allocator(),
        "step_s": [r["seconds"] for r in rows[1:]],
        "losses": [r["loss"] for r in rows],
        "eval_s": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--task", default="character_descriptions")
    parser.add_argument("--outer-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="timed outer steps per process")
    parser.add_argument("--eval-n", type=int, default=32, help="test triples of the FT evaluation")
    parser.add_argument("--rounds", type=int, default=2, help="processes per allocator, alternating")
    parser.add_argument("--out", required=True, help="directory for allocator.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # child-process mode
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args)))
        return
    if tcmalloc_library() is None:
        sys.exit("allocator.py: tcmalloc is not installed (Debian/Ubuntu: apt install libtcmalloc-minimal4)")
    plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    environments = {"system": plain, "tcmalloc": preload_environment(plain, sys.platform)}
    command = [sys.executable, __file__, "--worker"] + sys.argv[1:]
    runs: dict[str, list[dict]] = {name: [] for name in environments}
    for _ in range(args.rounds):
        for name, env in environments.items():
            child = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            run = json.loads(child.stdout.strip().splitlines()[-1])
            if run["allocator"] != name:
                sys.exit(f"allocator.py: a process meant for {name} ran on {run['allocator']}")
            runs[name].append(run)
    figures = {
        name: {
            "median_step_s": statistics.median(s for r in rs for s in r["step_s"]),
            "eval_s": statistics.median(r["eval_s"] for r in rs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
        }
        for name, rs in runs.items()
    }
    losses = {json.dumps(r["losses"]) for rs in runs.values() for r in rs}
    result = {
        "model": args.model,
        "task": args.task,
        "outer_batch": args.outer_batch,
        "steps_per_process": args.steps,
        "eval_n": args.eval_n,
        "rounds": args.rounds,
        **{f"{name}_{key}": value for name, f in figures.items() for key, value in f.items()},
        "tcmalloc_step_speedup": figures["system"]["median_step_s"] / figures["tcmalloc"]["median_step_s"],
        "tcmalloc_eval_speedup": figures["system"]["eval_s"] / figures["tcmalloc"]["eval_s"],
        "peak_rss_ratio": figures["tcmalloc"]["peak_rss_mib"] / figures["system"]["peak_rss_mib"],
        "losses_identical": len(losses) == 1,
        "runs": runs,
    }
    print(f"{'allocator':<10}{'s per outer step':>18}{'FT eval s':>11}{'peak RSS MiB':>14}")
    for name, f in figures.items():
        print(f"{name:<10}{f['median_step_s']:>18.2f}{f['eval_s']:>11.1f}{f['peak_rss_mib']:>14.0f}")
    print(
        f"tcmalloc: {result['tcmalloc_step_speedup']:.2f}x the meta-step speed, {result['tcmalloc_eval_speedup']:.2f}x "
        f"the FT evaluation speed, {result['peak_rss_ratio']:.2f}x the peak RSS; "
        f"losses bit-identical: {result['losses_identical']}"
    )
    write_json(Path(args.out) / "allocator.json", result)
    print(json_line(result), end="")


if __name__ == "__main__":
    main()
