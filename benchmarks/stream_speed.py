"""Seconds per document over a stream of absorptions, saves included: each document's update from the previous one's
θ' (sequential) and every update at θ applied together (at θ), against one plain forward+backward over the same
document; the cost of storing a corpus in the weights, the way `promptgd absorb --sequential` does it.

    python benchmarks/stream_speed.py --model packaged:smollm2-135m --task squad --n 20 --out results/benchmarks/bench_stream

The documents are the distinct contexts of the task's first test triples. Each mode runs `api.absorb_each` over them
with the state saved every `--save-every` documents (a safetensors file of the weights, as `promptgd absorb` writes
it). Prints a table, then, as its last line, one JSON object with `seconds_per_doc` (per mode), `fwd_bwd_seconds`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from promptgd.api import absorb_each, context_batches
from promptgd.config import InnerConfig
from promptgd.data.tasks import load_task
from promptgd.lm import functional_forward, lm_loss
from promptgd.malloc import allocator
from promptgd.models.loading import load_model
from promptgd.run_dir import json_line, write_json


def documents(task: str, n: int) -> list[str]:
    # Real-text tasks draw whole paragraphs; 5 triples a document is SQuAD's mean, and more than people's one.
    triples = load_task(task, 0 if task.startswith("jsonl:") else 10, 0 if task.startswith("jsonl:") else 5 * n, 0).test
    return list(dict.fromkeys(t.context for t in triples))[:n]


def stream_seconds(model, tokenizer, texts: list[str], inner: InnerConfig, every: int, at_theta: bool) -> float:
    """Wall seconds per document of one whole stream, each save writing the weights to disk."""
    with tempfile.TemporaryDirectory() as tmp:

        def save(done: int, params) -> None:
            save_file({k: v.contiguous() for k, v in params.items()}, str(Path(tmp) / "state.safetensors"))

        start = time.perf_counter()
        absorb_each(model, tokenizer, texts, inner, save=save, every=every, progress=False, at_theta=at_theta)
        return (time.perf_counter() - start) / len(texts)


def forward_backward_seconds(model, tokenizer, texts: list[str]) -> float:
    """Median time of one forward+backward over a document."""
    forward, params = functional_forward(model), dict(model.named_parameters())
    device = next(model.parameters()).device
    times = []
    for batch in context_batches(tokenizer, texts, 1024, device):
        start = time.perf_counter()
        lm_loss(forward, params, batch).backward()
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] or times)  # the first call pays one-off allocations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--task", default="character_descriptions", help="task name or jsonl:<path>")
    parser.add_argument("--n", type=int, default=20, help="documents in the stream")
    parser.add_argument("--lr", type=float, default=1e-2, help="the inner step's η")
    parser.add_argument("--save-every", type=int, default=5)
    parser.add_argument("--out", required=True, help="directory for stream_speed.json")
    args = parser.parse_args()
    model, tokenizer = load_model(args.model)
    texts = documents(args.task, args.n)
    inner = InnerConfig(lr=args.lr)
    figures = {
        "model": args.model,
        "task": args.task,
        "documents": len(texts),
        "device": str(next(model.parameters()).device),
        "allocator": allocator(),
        "fwd_bwd_seconds": forward_backward_seconds(model, tokenizer, texts),
        "seconds_per_doc": {
            mode: stream_seconds(model, tokenizer, texts, inner, args.save_every, mode == "at_theta")
            for mode in ("sequential", "at_theta")
        },
    }
    print("| what | seconds per document | × forward+backward |")
    print("|---|---:|---:|")
    print(f"| plain forward+backward | {figures['fwd_bwd_seconds']:.3f} | 1.00 |")
    for mode, seconds in figures["seconds_per_doc"].items():
        print(f"| {mode}, saves every {args.save_every} | {seconds:.3f} | {seconds / figures['fwd_bwd_seconds']:.2f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "stream_speed.json", figures)
    print(json_line(figures), end="")


if __name__ == "__main__":
    main()
