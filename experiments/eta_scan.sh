#!/usr/bin/env bash
# The inner learning rate η chosen on the validation split (never test): FT of a warmed-up start model per η.
# Usage: experiments/eta_scan.sh PRESET OUT "1e-3 3e-3 1e-2" [dotted overrides ...]
# Builds OUT/start/start_model with the preset's format warm-up (promptgd run with no objective, which also
# evaluates NC and Prompt on val once), then evaluates FT on val for each η into OUT/eta_<η>/;
# `python experiments/eta_table.py OUT` prints the table.
set -euo pipefail
preset=$1; out=$2; etas=$3; shift 3
.venv/bin/promptgd run "$preset" "$@" pipeline.objectives= eval.split=val eval.modes=nc,prompt,ft --out "$out/start" > "$out.start.log" 2>&1
for eta in $etas; do
  .venv/bin/promptgd eval "$preset" "$@" inner.lr="$eta" --model "$out/start/start_model" --split val --modes ft \
    --out "$out/eta_$eta" > "$out.eta_$eta.log" 2>&1
done
