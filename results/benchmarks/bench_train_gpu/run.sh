# End-to-end `promptgd train` (LC, second order, Prompt term, LM term, Adam) at Llama-3.2-1B shapes on SQuAD triples.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site runs/gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer runs/gpu/tok --out /tmp/llama1b 2>&1 | tail -1
timeout 170 python3 -m promptgd.cli train configs/paper/squad.yaml model.spec=/tmp/llama1b task.name=jsonl:runs/gpu/squad.jsonl \
  train.epochs=4 train.prompt_weight=1.0 warmup.n_tasks=0 train.val_every=0 train.ckpt_every=0 train.lm_corpus=builtin \
  train.lm_seq_len=128 train.objective=lc --out /tmp/train 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tail -5
cp /tmp/train/metrics.jsonl $OUT/ 2>/dev/null
python3 - <<'PY'
import json, os, statistics
rows = [json.loads(l) for l in open(os.environ["OUT"] + "/metrics.jsonl")]
steady = rows[1:]
print(json.dumps({"steps": len(rows), "median_step_s": statistics.median(r["seconds"] for r in steady),
                  "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
                  "peak_mem_gib": max(r["peak_mem_mb"] for r in rows) / 1024, "skipped": rows[-1]["skipped"]}))
PY
