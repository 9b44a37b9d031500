#!/usr/bin/env bash
# Base SmolLM2-135M-Instruct (no warm-up, no meta-training) on both synthetic tasks, all four modes, on the 500 test
# people and on the people of the held-out description families (the ood split).
# Usage: experiments/base_eval.sh RUN_ROOT OUT
#   evaluations in RUN_ROOT/<task>-<split>/ (a finished one is kept, so rerunning continues), then
#   OUT/base_smollm2_character_descriptions.md and its rows OUT/base_smollm2_character_descriptions/<task>-<split>/
set -euo pipefail
if [ $# -ne 2 ]; then echo "usage: $0 RUN_ROOT OUT" >&2; exit 2; fi
root=$1 out=$2 name=base_smollm2_character_descriptions
if [ -e "$out/$name.md" ] || [ -e "$out/$name" ]; then
  echo "$out/$name.md or $out/$name/ already exists; move it away first" >&2; exit 1
fi
mkdir -p "$root" "$out"
dirs=()
for task in character_descriptions reversal; do
  for split in test ood; do
    dir="$root/$task-$split"
    dirs+=("$dir")
    [ -f "$dir/summary.json" ] && continue
    promptgd eval configs/eval_base.yaml --task "$task" --split "$split" --out "$dir" > "$dir.log" 2>&1
  done
done
for dir in "${dirs[@]}"; do promptgd export "$dir" --out "$out/$name/$(basename "$dir")"; done
python experiments/results_table.py \
  --title "Base SmolLM2-135M-Instruct (no warm-up, no meta-training): test people and held-out description families" \
  --command "experiments/base_eval.sh $root $out" \
  --rows "results/studies/$name/<task>-<split>/" \
  "${dirs[@]}" > "$out/$name.md.partial"
mv "$out/$name.md.partial" "$out/$name.md"
