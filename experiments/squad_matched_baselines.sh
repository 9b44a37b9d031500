#!/usr/bin/env bash
# Matched baselines for the SQuAD step-size row (8 steps of sizes meta-learned for one), on a validation stream of
# 100 whole training paragraphs (458 questions, data/squad.py validation_stream_paragraphs), then the winner(s) once on
# test; rule in results/studies/squad_smollm2.md ("Matched baselines"), written before it ran. Rerun after a cut:
# finished stages are kept. Runs the code of the checkout it lies in: start it from a worktree.
#   bash experiments/squad_matched_baselines.sh OUT START_MODEL STEP_SIZE_MODEL
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1"); start=$(realpath "$2"); sizes=$(realpath "$3")
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p "$out"
[ -f "$out/val.jsonl" ] || "$py" experiments/squad_dev_range.py val_stream --paragraphs 100 --out "$out/val.jsonl"
val=(--task "jsonl:$out/val.jsonl" --split test task.n_test=0)
evaluate() {  # NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  if [ -f "$out/$name/summary.json" ]; then stamp "$name: kept"; return; fi
  stamp "$name"; "$py" -m promptgd eval configs/squad.yaml --model "$model" "$@" --out "$out/$name"
}
train() {  # NAME OVERRIDES...: step sizes meta-trained with the weights frozen (configs/squad_step_sizes.yaml)
  local name=$1; shift
  mkdir -p "$out/$name"; [ -e "$out/$name/start_model" ] || ln -s "$start" "$out/$name/start_model"
  stamp "train $name"; "$py" -m promptgd train configs/squad_step_sizes.yaml "$@" --resume --out "$out/$name"
}
evaluate base "$start" "${val[@]}" --modes nc,prompt,ft
evaluate sizes8 "$sizes" "${val[@]}" --modes ft inner.steps=8
for lr in 3e-3 1e-2 3e-2; do evaluate "plain8_lr$lr" "$start" "${val[@]}" --modes ft inner.steps=8 inner.lr=$lr; done
train tensor_sizes inner.lr_scales=tensor
evaluate tensor8 "$out/tensor_sizes/model" "${val[@]}" --modes ft inner.steps=8
train sizes_for8 inner.steps=8 train.n_tasks=500 train.val_every=0
evaluate sizes_for8 "$out/sizes_for8/model" "${val[@]}" --modes ft
stamp "validation done: apply the rule (results/studies/squad_smollm2.md, Matched baselines), then the test rows"
