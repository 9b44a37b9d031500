#!/usr/bin/env bash
# The confirmatory evaluation of the committed SQuAD step-size row on 100 fresh dev paragraphs (the `confirm` range of
# data/squad.py DEV_RANGES, disjoint from the 101 test paragraphs); its rule is in results/studies/squad_smollm2.md,
# "Confirmation", written before it ran. Rerun the same command after a cut: finished evaluations are kept.
#   bash experiments/confirm_squad.sh OUT
# It runs the code of the checkout it lies in (PYTHONPATH), so start it from a worktree of the commit that holds it
# and later changes on main cannot reach it: git worktree add ../wt-confirm <commit>; bash ../wt-confirm/experiments/...
set -euo pipefail
out=$(realpath -m "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}  # any environment with promptgd's dependencies
promptgd() { "$py" -m promptgd "$@"; }
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p "$out"

stamp "start model: the preset's format warm-up (the base row's start model)"
promptgd run configs/squad.yaml 'pipeline.objectives=[]' eval.split=val eval.modes=nc eval.limit=1 --out "$out/start"
if [ ! -d "$out/ss_model" ]; then  # the learned sizes as committed, beside the start weights they were trained on
  cp -r "$out/start/start_model" "$out/ss_model.tmp"
  cp results/studies/squad_smollm2_levers/step_sizes/ss_2000/inner_lr_scales.safetensors "$out/ss_model.tmp/"
  "$py" -c "import sys; from pathlib import Path; from promptgd.config import load_config; \
from promptgd.models.update_settings import write_update_settings; write_update_settings(load_config('configs/squad_step_sizes.yaml'), Path(sys.argv[1]))" "$out/ss_model.tmp"
  mv "$out/ss_model.tmp" "$out/ss_model"
fi
evaluate() {  # OUT_NAME ARGS...: one evaluation, kept when already finished
  local name=$1; shift
  if [ -f "$out/$name/summary.json" ]; then stamp "$name: kept"; return; fi
  stamp "$name"; promptgd eval configs/squad.yaml "$@" --out "$out/$name"
}
stamp "check: the rebuilt model on the committed row's first 25 test questions"
evaluate check --model "$out/ss_model" --split test --modes ft --limit 25 inner.steps=8
[ -f "$out/squad_confirm.jsonl" ] || "$py" experiments/squad_dev_range.py confirm --out "$out/squad_confirm.jsonl"
confirm=(--task "jsonl:$out/squad_confirm.jsonl" --split test task.n_test=0)
evaluate base --model "$out/start/start_model" "${confirm[@]}" --modes nc,prompt,ft
evaluate ss_steps8 --model "$out/ss_model" "${confirm[@]}" --modes ft inner.steps=8
evaluate ss_steps4 --model "$out/ss_model" "${confirm[@]}" --modes ft inner.steps=4
"$py" experiments/confirm_squad.py --base "$out/base" --steps8 "$out/ss_steps8" --steps4 "$out/ss_steps4" \
  --committed results/studies/squad_smollm2/lg-step-sizes-steps8 --rebuilt "$out/check" | tee "$out/confirm.txt"
stamp done
