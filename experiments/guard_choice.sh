#!/usr/bin/env bash
# The divergence guard for the step-size model over 8 steps, chosen on validation by the rule in
# results/studies/squad_smollm2.md ("The divergence guard"), written before it ran; then the committed row re-evaluated
# on test with today's code (its diverged share, and a check against the code that made it) and the chosen guard
# evaluated once on test and on the confirmation paragraphs as rows of their own. Rerun after a cut: finished
# evaluations are kept. Runs the code of the checkout it lies in (PYTHONPATH): start it from a worktree.
#   bash experiments/guard_choice.sh OUT CONFIRM_DIR      (CONFIRM_DIR: experiments/confirm_squad.sh's OUT)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1"); confirm=$(realpath "$2")
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
evaluate() {  # NAME ARGS...: one evaluation of the step-size model over 8 steps, kept when already finished
  local name=$1; shift
  if [ -f "$out/$name/summary.json" ]; then stamp "$name: kept"; return; fi
  stamp "$name"
  "$py" -m promptgd eval configs/squad.yaml --model "$confirm/ss_model" inner.steps=8 "$@" --out "$out/$name"
}
mkdir -p "$out"
for guard in none stop halve; do
  evaluate "val_$guard" --split val --modes ft inner.guard=$guard
done
"$py" experiments/guard_choice.py none="$out/val_none" stop="$out/val_stop" halve="$out/val_halve" | tee "$out/choice.txt"
chosen=$(tail -1 "$out/choice.txt" | "$py" -c "import json, sys; print(json.load(sys.stdin)['chosen'])")
evaluate test_none --split test --modes ft
[ "$chosen" = none ] || evaluate "test_$chosen" --split test --modes ft inner.guard=$chosen
[ "$chosen" = none ] || evaluate "confirm_$chosen" --task "jsonl:$confirm/squad_confirm.jsonl" --split test \
  task.n_test=0 --modes ft inner.guard=$chosen
stamp done
