#!/usr/bin/env bash
# A logged sweep of meta-training settings, each run starting from the same warmed-up model and validated on the
# preset's validation split (val_ft / val_prompt rows in metrics.jsonl); never on test.
# Usage: experiments/sweep.sh PRESET RUN_ROOT START_MODEL NAME "overrides" [NAME "overrides" ...]
# Each run writes RUN_ROOT/NAME/{metrics.jsonl,config.yaml,model}; experiments/sweep_table.py summarises them.
set -euo pipefail
preset=$1; root=$2; start=$3; shift 3
[ -e "$start/.promptgd-complete" ] || { echo "sweep.sh: $start is not a finished start model (no completion marker)" >&2; exit 2; }
while [ $# -gt 0 ]; do
  name=$1; overrides=$2; shift 2
  mkdir -p "$root/$name"
  # Linked, not copied: every run of the sweep reads the very same warmed-up weights (and 0.5 GB is not copied).
  [ -e "$root/$name/start_model" ] || ln -s "$(realpath "$start")" "$root/$name/start_model"
  # shellcheck disable=SC2086
  # --resume: a sweep stopped part-way (a session ending) continues where it stopped when run again.
  .venv/bin/promptgd train "$preset" $overrides --resume --out "$root/$name" >> "$root/$name.log" 2>&1
  rm -rf "$root/$name/checkpoints"
done
