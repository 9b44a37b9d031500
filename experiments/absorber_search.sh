#!/usr/bin/env bash
# The absorber's method, chosen on every task's validation split (issue: one meta-trained model for every task) by the
# rule in results/studies/absorber_smollm2.md ("Rule"), written before it ran: one start model (the mixture's rank-4
# format warm-up), four methods meta-trained on the mixture of configs/absorber/mixture.yaml, each evaluated on the
# validation triples of the four tasks with the tasks' own presets, then experiments/absorber_choice.py. Rerun the same
# command after a cut: finished stages are kept, a training resumes. Runs the code of the checkout it lies in
# (PYTHONPATH): start it from a worktree.
#   bash experiments/absorber_search.sh OUT [OVERRIDE ...]
# OVERRIDEs go to the warm-up and every training (a smoke run: warmup.n_tasks=8 train.n_tasks=8 train.val_every=0,
# with ABSORBER_EVAL_LIMIT=4 for 4 validation triples per task).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash experiments/absorber_search.sh OUT [OVERRIDE ...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1"); shift
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
promptgd() { "$py" -m promptgd "$@"; }
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
mixture=(configs/absorber/mixture.yaml warmup.lora_rank=4 "$@")
limit=eval.limit=${ABSORBER_EVAL_LIMIT:-0}
# task name : its preset, whose sizes are the mixture entry's, so its validation triples are the mixture's
tasks=(character_descriptions:configs/quickstart.yaml reversal:configs/metatrain/reversal.yaml
  squad:configs/squad.yaml wikitext:configs/wikitext.yaml)
# name : overrides of each method (results/studies/absorber_smollm2.md, "Methods")
methods=(
  "ss_lg:inner.lr_scales=factored train.freeze_weights=true train.objective=lg"
  "ss_lc:inner.lr_scales=factored train.freeze_weights=true train.objective=lc"
  "lora_inner:lora.variant=inner lora.rank=1 lora.alpha=64 train.objective=lg"
  "lora_outer:lora.variant=outer lora.rank=1 train.objective=lc"
)
mkdir -p "$out"
# Finished stages are kept by their files alone, so a rerun must ask for the same run (a smoke run's 8-task models and
# 4-triple evaluations must never stand in for the real ones).
asked="$* ABSORBER_EVAL_LIMIT=${ABSORBER_EVAL_LIMIT:-0}"
if [ -f "$out/asked.txt" ] && [ "$(cat "$out/asked.txt")" != "$asked" ]; then
  echo "$out was started with: $(cat "$out/asked.txt"); this run asks: $asked; use another OUT" >&2; exit 2
fi
echo "$asked" > "$out/asked.txt"

evaluate() {  # NAME MODEL MODES OVERRIDE...: the model on each task's validation triples, kept when finished
  local name=$1 model=$2 modes=$3; shift 3
  for entry in "${tasks[@]}"; do
    local dir=$out/val/$name/${entry%%:*}
    if [ -f "$dir/summary.json" ]; then continue; fi
    stamp "val $name ${entry%%:*}"
    promptgd eval "${entry#*:}" --model "$model" --split val --modes "$modes" $limit "$@" --out "$dir"
  done
}

if [ ! -d "$out/start/start_model" ]; then
  stamp "start model: the mixture's rank-4 format warm-up"
  promptgd run "${mixture[@]}" 'pipeline.objectives=[]' eval.split=val eval.modes=nc eval.limit=1 --out "$out/start"
fi
# The plain step at each task's own η (its preset's), the baseline every share is counted from.
evaluate start "$out/start/start_model" nc,prompt,ft
eta=$("$py" -c "import sys; from promptgd.config import load_config; print(load_config(sys.argv[1], sys.argv[2:]).inner.lr)" \
  "${mixture[@]}")
for method in "${methods[@]}"; do
  name=${method%%:*}; read -ra settings <<< "${method#*:}"
  run=$out/$name; mkdir -p "$run"
  echo "${settings[*]}" > "$run/method.txt"  # what experiments/absorber_test.sh trains the leave-one-out models with
  [ -e "$run/start_model" ] || ln -s "$out/start/start_model" "$run/start_model"
  if [ ! -d "$run/model" ]; then
    stamp "train $name"
    promptgd train "${mixture[@]}" "${settings[@]}" --resume --out "$run"
  fi
  # The presets set their own η; a method is evaluated at the η it was meta-trained with.
  evaluate "$name" "$run/model" prompt,ft "inner.lr=$eta"
done
"$py" experiments/absorber_choice.py "$out/val" | tee "$out/choice.txt"
stamp done
