# GPU check for issue 13: implicit vs explicit inner update at Llama-3.2-1B shapes, bfloat16, SQuAD, batch 16.
# DRY=1 runs the same steps on CPU with SmolLM2-135M and few tasks (a check of this script).
set -o pipefail
export PYTHONUNBUFFERED=1
if [ -z "$DRY" ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu/whl/*.whl || exit 1
  export PYTHONPATH=$PWD/src:/tmp/site
  python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
  python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer gpu/tok --out /tmp/llama1b 2>&1 | tail -1
  MODEL=/tmp/llama1b; FEW=""; EXPLICIT_TASKS=64; EVAL_N=30
else
  MODEL=runs/eta_squad/start/start_model; FEW="train.n_tasks=32"; EXPLICIT_TASKS=32; EVAL_N=4
fi
COMMON="model.spec=$MODEL model.dtype=bfloat16 task.name=jsonl:gpu/squad.jsonl task.n_train=0 task.n_test=0 task.n_val=0
 warmup.n_tasks=0 train.batch_size=16 train.val_every=0 train.ckpt_every=0 train.lm_corpus=builtin train.lm_seq_len=128
 train.objective=lc train.prompt_weight=0"
train() {
  name=$1; limit=$2; shift 2
  rm -rf /tmp/train_$name
  timeout $limit python3 -m promptgd train configs/paper/squad.yaml $COMMON "$@" --out /tmp/train_$name 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$" | grep -v "^\s*$" | tail -2
  cp /tmp/train_$name/metrics.jsonl $OUT/metrics_$name.jsonl
}
train implicit 150 inner.implementation=implicit train.pass_tokens=${PASS:-4096} $FEW
train explicit 150 inner.implementation=explicit train.n_tasks=$EXPLICIT_TASKS
python3 benchmarks/eval_speed.py --model $MODEL --task jsonl:gpu/squad.jsonl --n $EVAL_N --out $OUT/eval 2>&1 | tail -9 | head -8
train implicit_1024 120 inner.implementation=implicit train.pass_tokens=1024 $FEW
python3 benchmarks/step_flops.py --model $MODEL --dtype bfloat16 --task jsonl:gpu/squad.train.jsonl --batch-size 16 \
  --implementation implicit --out $OUT/flops 2>&1 | tail -3 | head -2
python3 - <<'PY'
import json, os, statistics
out = os.environ["OUT"]
summary = {}
for name in ("implicit", "explicit", "implicit_1024"):
    path = f"{out}/metrics_{name}.jsonl"
    if not os.path.exists(path):
        continue
    rows = [r for r in map(json.loads, open(path)) if "seconds" in r]
    if not rows:
        continue
    steady = rows[1:] or rows
    step = statistics.median(r["seconds"] for r in steady)
    summary[name] = {"steps": len(rows), "median_step_s": step, "ms_per_task": 1000 * step / 16,
                     "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
                     "peak_mem_gib": max(r["peak_mem_mb"] for r in rows) / 1024, "skipped": rows[-1]["skipped"],
                     "loss": [round(r["outer"], 3) for r in rows]}
print(json.dumps(summary))
PY
