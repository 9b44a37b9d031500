#!/usr/bin/env bash
# One process vs two gloo processes (torchrun) meta-training SmolLM2-135M on 12 character descriptions (LC, second
# order, outer batch 4, λ·L_LM on): seconds per outer step and the largest difference of the final weights.
# Usage: experiments/distributed_check.sh --out DIR   (prints a table, last line one JSON object)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = --out ] && [ -n "${2:-}" ] || { echo "usage: $0 --out DIR" >&2; exit 2; }
out=$2
[ -e "$out" ] && { echo "$0: $out exists" >&2; exit 2; }
mkdir -p "$out"
settings=(model.spec=packaged:smollm2-135m model.device=cpu task.name=character_descriptions task.n_train=400
          task.n_test=4 warmup.n_tasks=0 train.objective=lc train.batch_size=4 train.n_tasks=12 train.val_every=0
          train.ckpt_every=0 train.lm_corpus=builtin eval.max_new_tokens=10)
.venv/bin/promptgd train "${settings[@]}" --out "$out/one" > "$out/one.log" 2>&1
OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 -m promptgd train \
  "${settings[@]}" --out "$out/two" > "$out/two.log" 2>&1
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
from safetensors.torch import load_file
out = Path(sys.argv[1])
rows = {n: [json.loads(line) for line in (out / n / "metrics.jsonl").read_text().splitlines()] for n in ("one", "two")}
a, b = (load_file(out / n / "model" / "model.safetensors") for n in ("one", "two"))
diff = max(float((a[k] - b[k]).abs().max()) for k in a)
print("| processes | threads each | s per outer step (3 steps) | outer loss per step |")
print("|---:|---:|---|---|")
for n, threads in (("one", 2), ("two", 1)):
    r = rows[n]
    seconds = ", ".join(f"{x['seconds']:.1f}" for x in r)
    losses = ", ".join(f"{x['outer']:.5f}" for x in r)
    print(f"| {r[0]['world']} | {threads} | {seconds} | {losses} |")
mean = {n: sum(x["seconds"] for x in r) / len(r) for n, r in rows.items()}
print(f"\nlargest |Δ| of the final weights: {diff:.2e}; speed-up of 2 processes: {mean['one'] / mean['two']:.2f}x")
print(json.dumps({"seconds_per_step_1": mean["one"], "seconds_per_step_2": mean["two"], "speedup": mean["one"] / mean["two"],
                  "max_abs_weight_diff": diff}))
PY
