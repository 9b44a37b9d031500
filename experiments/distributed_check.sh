#!/usr/bin/env bash
# One process vs two gloo processes (torchrun), replicated and sharded (train.fsdp), meta-training SmolLM2-135M on 12
# character descriptions (LC, second order, outer batch 4, λ·L_LM on): seconds per outer step, rank 0's peak
# resident memory and the largest difference of the final weights from one process's.
# Usage: experiments/distributed_check.sh --out DIR [override ...]   (prints a table, last line one JSON object)
# e.g. `model.dtype=float64 train.n_tasks=4`: one step in float64, where the three gradients must agree to ~1e-12.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = --out ] && [ -n "${2:-}" ] || { echo "usage: $0 --out DIR [override ...]" >&2; exit 2; }
out=$2
shift 2
[ -e "$out" ] && { echo "$0: $out exists" >&2; exit 2; }
mkdir -p "$out"
settings=(model.spec=packaged:smollm2-135m model.device=cpu task.name=character_descriptions task.n_train=400
          task.n_test=4 warmup.n_tasks=0 train.objective=lc train.batch_size=4 train.n_tasks=12 train.val_every=0
          train.ckpt_every=0 train.lm_corpus=builtin eval.max_new_tokens=10 "$@")
.venv/bin/promptgd train "${settings[@]}" --out "$out/one" > "$out/one.log" 2>&1
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 -m promptgd train \
  "${settings[@]}" --out "$out/two" > "$out/two.log" 2>&1
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 -m promptgd train \
  "${settings[@]}" train.fsdp=true --out "$out/fsdp" > "$out/fsdp.log" 2>&1
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
from safetensors.torch import load_file
out = Path(sys.argv[1])
runs = ("one", "two", "fsdp")
rows = {n: [json.loads(line) for line in (out / n / "metrics.jsonl").read_text().splitlines()] for n in runs}
weights = {n: load_file(out / n / "model" / "model.safetensors") for n in runs}
diff = {n: max(float((weights["one"][k] - w[k]).abs().max()) for k in w) for n, w in weights.items()}
mean = {n: sum(x["seconds"] for x in r) / len(r) for n, r in rows.items()}
print("| run | processes | threads each | sharded | s per outer step | outer loss per step | gradient norm per step | rank 0 peak RSS MiB | max abs weight diff from 1 process |")
print("|---|---:|---:|---|---|---|---|---:|---:|")
for n, threads in (("one", 2), ("two", 1), ("fsdp", 1)):
    r = rows[n]
    seconds = ", ".join(f"{x['seconds']:.1f}" for x in r)
    losses = ", ".join(f"{x['outer']:.9g}" for x in r)
    norms = ", ".join(f"{x['grad_norm']:.12g}" for x in r)
    print(f"| {n} | {r[0]['world']} | {threads} | {r[0].get('sharded', False)} | {seconds} | {losses} | {norms} | {r[-1]['peak_mem_mb']:.0f} | {diff[n]:.2e} |")
print(f"\nspeed-up of 2 processes: {mean['one'] / mean['two']:.2f}x replicated, {mean['one'] / mean['fsdp']:.2f}x sharded")
print(json.dumps({"seconds_per_step_1": mean["one"], "seconds_per_step_2": mean["two"], "speedup": mean["one"] / mean["two"],
                  "max_abs_weight_diff": diff["two"], "seconds_per_step_2_fsdp": mean["fsdp"],
                  "speedup_fsdp": mean["one"] / mean["fsdp"], "max_abs_weight_diff_fsdp": diff["fsdp"],
                  "peak_rss_mb_rank0": {n: rows[n][-1]["peak_mem_mb"] for n in runs},
                  "grad_norms": {n: [x["grad_norm"] for x in rows[n]] for n in runs}}))
PY
