"""Cost of one second-order meta-training task against context length and the number of tasks per pass, explicit
inner update (a copy of the weights per task) against the implicit one (update/implicit.py), with a plot.

    python benchmarks/cost_curve.py --lengths 32,128,512,1024 --batches 1,2,4,8 \
        --corpus wikitext:../shared/data/wikitext-2 --out results/benchmarks/bench_cost_curve

Each point: B LG tasks whose contexts are exactly L tokens of generic text (--corpus), a 12-token query ⊕ answer;
the outer loss of all B and its backward (no optimiser step), timed once after a warm-up at that length; seconds
per task and the peak resident memory of that point (Linux: /proc/self/clear_refs resets the peak before it). The
explicit update runs its tasks one after another, so its cost per task does not depend on B: it is measured at B = 1.
Points where B·L exceeds --max-pass-tokens are skipped (memory). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from promptgd.config import InnerConfig  # noqa: E402
from promptgd.data.lm_corpus import read_corpus  # noqa: E402
from promptgd.lm import TokenBatch  # noqa: E402
from promptgd.models.loading import load_model  # noqa: E402
from promptgd.models.parameterization import full_rank  # noqa: E402
from promptgd.objectives.meta_task import MetaTask  # noqa: E402
from promptgd.run_dir import json_line, write_json  # noqa: E402
from promptgd.train.metastep import meta_loss  # noqa: E402
from promptgd.update.explicit import ExplicitUpdate  # noqa: E402
from promptgd.update.step_sizes import StepSizes  # noqa: E402


def tasks(tokenizer, text: str, length: int, count: int, device) -> list[MetaTask]:
    ids = tokenizer(text)["input_ids"]
    pad = tokenizer.pad_token_id
    made = []
    for i in range(count):
        start = (i * 997) % (len(ids) - length - 12)  # different text for every task
        context, query = ids[start : start + length], ids[start + length : start + length + 12]
        queries = TokenBatch.answered([query[:8]], [query[8:]], pad, device)
        made.append(
            MetaTask(
                contexts=[TokenBatch.from_lists([context], pad, device=device)],
                queries=queries,
                prompts=queries,  # unused: no Prompt term here
                target=queries.input_ids[queries.loss_mask.bool()],
            )
        )
    return made


def plot(points: list[dict], path: Path, title: str) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    for line in dict.fromkeys((p["path"], p["tasks_per_pass"]) for p in points):
        mine = [p for p in points if (p["path"], p["tasks_per_pass"]) == line]
        label = "explicit (any batch)" if line[0] == "explicit" else f"implicit, {line[1]} per pass"
        axis.plot([p["context_tokens"] for p in mine], [p["s_per_task"] for p in mine], marker="o", label=label)
    lengths = sorted({p["context_tokens"] for p in points})
    axis.set(xscale="log", yscale="log", xlabel="context tokens", ylabel="seconds per task (second order)")
    axis.set_xticks(lengths, [str(n) for n in lengths])
    axis.minorticks_off()
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets the kernel's peak RSS (VmHWM) to the current RSS


def peak_mb(device: torch.device) -> float:
    """Peak since `reset_peak`: memory allocated by torch on a GPU, the resident set on a CPU (Linux)."""
    if device.type == "cuda":
        torch.cuda.synchronize()  # also ends the timed work: CUDA kernels run asynchronously
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--lengths", default="32,128,512")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--max-pass-tokens", type=int, default=2048)
    parser.add_argument("--corpus", default="builtin", help="where contexts come from: train.lm_corpus's values")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--tf32", action="store_true", help="float32 matrix products in TF32 on CUDA (model.tf32)")
    parser.add_argument("--out", required=True, help="directory for cost_curve.json and cost_curve.png")
    parser.add_argument("--replot", action="store_true", help="only redraw cost_curve.png from --out's JSON")
    args = parser.parse_args()
    if args.replot:
        figures = json.loads((Path(args.out) / "cost_curve.json").read_text())
        plot(figures["points"], Path(args.out) / "cost_curve.png", f"{figures['model']}, {figures['device']}")
        return

    model, tokenizer = load_model(args.model, args.dtype, tf32=args.tf32)
    device = next(model.parameters()).device
    param = full_rank(model)
    update, explicit = param.inner_update("implicit"), ExplicitUpdate()
    inner = InnerConfig(lr=1e-2)
    text = read_corpus(args.corpus)

    def run(batch: list[MetaTask], implicit: bool) -> None:
        passes = [MetaTask.merge(batch)] if implicit else batch
        for task in passes:
            meta_loss(
                param.forward, param.fast(), task, update if implicit else explicit, StepSizes(inner.lr), inner, False
            ).backward()
        model.zero_grad(set_to_none=True)

    points = []
    lengths, batches = [int(x) for x in args.lengths.split(",")], [int(x) for x in args.batches.split(",")]
    for length in lengths:
        run(tasks(tokenizer, text, length, 1, device), implicit=True)  # warm-up at this length
        cases = [("explicit", 1)] + [("implicit", b) for b in batches if b * length <= args.max_pass_tokens]
        for path, b in cases:
            batch = tasks(tokenizer, text, length, b, device)
            reset_peak(device)
            start = time.perf_counter()
            run(batch, implicit=path == "implicit")
            peak = peak_mb(device)
            seconds = (time.perf_counter() - start) / b
            # peak_rss_mb: the resident set on a CPU; on a GPU, torch's allocated device memory.
            points.append({"path": path, "context_tokens": length, "tasks_per_pass": b, "s_per_task": seconds,
                           "peak_rss_mb": peak})  # fmt: skip
            print(f"{path:<9} L={length:<5} B={b:<3} {seconds:8.3f} s/task  peak {peak:7.0f} MiB")

    figures = {"model": args.model, "device": device.type, "dtype": args.dtype, "tf32": args.tf32, "points": points}
    write_json(Path(args.out) / "cost_curve.json", figures)
    plot(points, Path(args.out) / "cost_curve.png", f"{args.model}, {device.type}")
    print(json_line(figures), end="")


if __name__ == "__main__":
    main()
