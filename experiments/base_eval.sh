#!/usr/bin/env bash
# Base SmolLM2-135M-Instruct (no warm-up) on 500 test triples of both synthetic tasks, all four modes.
# Usage: experiments/base_eval.sh RUN_ROOT  → writes results/base_smollm2_character_descriptions.md
set -euo pipefail
root=${1:-runs/base_eval}
for task in character_descriptions reversal; do
  .venv/bin/promptgd eval configs/eval_base.yaml --task "$task" --out "$root/$task" > "$root.$task.log" 2>&1
done
.venv/bin/python experiments/results_table.py \
  --title "Base SmolLM2-135M-Instruct (no warm-up, no meta-training), 500 test triples per task" \
  --command "experiments/base_eval.sh $root, i.e. promptgd eval configs/eval_base.yaml --task TASK --out $root/TASK for TASK in character_descriptions, reversal" \
  "$root/character_descriptions" "$root/reversal" > results/base_smollm2_character_descriptions.md
