#!/usr/bin/env bash
# The paper's method on SQuAD at the step-size row's budget: LG, full rank, second order, one inner step, 2,000 tasks,
# the outer lr chosen on validation by the rule in results/studies/squad_smollm2.md ("The paper's method at 2,000
# tasks"), written before it ran. Rerun the same command after a cut: every stage resumes or is kept.
#   bash experiments/squad_lg_2000.sh OUT START_MODEL
# START_MODEL: the preset's warmed-up start model (e.g. the one experiments/confirm_squad.sh builds). Runs the code
# of the checkout it lies in (PYTHONPATH), so start it from a worktree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1"); start=$(realpath "$2")
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
promptgd() { "$py" -m promptgd "$@"; }
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
common=(configs/squad.yaml train.objective=lg train.n_tasks=2000 train.val_every=100 train.val_size=0 train.ckpt_every=25)
scan=100  # outer steps (400 tasks) at which the outer lr is chosen
step_of() { local f=$1/checkpoints/latest; if [ -f "$f" ]; then sed 's/step_0*//' "$f"; else echo 0; fi; }
mkdir -p "$out"
[ -f "$out/start_val/summary.json" ] || promptgd eval configs/squad.yaml --model "$start" --split val \
  --modes prompt,ft --out "$out/start_val"
runs=()
for lr in 1e-5 3e-5 1e-4; do
  run=$out/lr$lr; runs+=("$run"); mkdir -p "$run"
  [ -e "$run/start_model" ] || ln -s "$start" "$run/start_model"
  done_steps=$(step_of "$run")
  if [ "$done_steps" -lt "$scan" ] && [ ! -d "$run/model" ]; then
    stamp "lr $lr: steps $done_steps..$scan"
    promptgd train "${common[@]}" train.lr=$lr --resume --stop-after $((scan - done_steps)) --out "$run"
  fi
done
"$py" experiments/choose_outer_lr.py --start "$out/start_val" --step $scan "${runs[@]}" | tee "$out/choice.txt"
chosen=$(tail -1 "$out/choice.txt" | "$py" -c "import json, sys; print(json.load(sys.stdin)['chosen'])")
lr=$(basename "$chosen" | sed 's/^lr//')
stamp "chosen $chosen: to the end"
promptgd train "${common[@]}" train.lr=$lr --resume --out "$chosen"
[ -f "$out/test/summary.json" ] || promptgd eval configs/squad.yaml --model "$chosen/model" --split test \
  --modes nc,prompt,ft --out "$out/test"
stamp done
