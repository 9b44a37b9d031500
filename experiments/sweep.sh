#!/usr/bin/env bash
# Small logged sweep of meta-training settings on SmolLM2-135M (character descriptions), each run starting
# from the same warmed-up model. Usage: experiments/sweep.sh RUN_ROOT START_MODEL NAME "overrides" [NAME "overrides" ...]
# Each run writes RUN_ROOT/NAME/{metrics.jsonl,config.yaml}; experiments/sweep_table.py summarises them.
set -euo pipefail
root=$1; start=$2; shift 2
while [ $# -gt 0 ]; do
  name=$1; overrides=$2; shift 2
  mkdir -p "$root/$name"
  [ -e "$root/$name/start_model" ] || cp -r "$start" "$root/$name/start_model"
  # shellcheck disable=SC2086
  .venv/bin/promptgd train configs/quickstart.yaml $overrides --out "$root/$name" > "$root/$name.log" 2>&1
  rm -rf "$root/$name/checkpoints" "$root/$name/model"
done
