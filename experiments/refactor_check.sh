#!/usr/bin/env bash
# Real-model refactor check: today's code re-evaluates what the pre-refactor code (experiments/confirm_squad.sh run
# from a worktree of 12c24d7 into runs/confirm/) evaluated on the same rebuilt models: the base model's NC, Prompt and
# one implicit plain step on the first 50 confirmation questions, and the learned sizes over 8 steps (explicit) on
# the committed row's first 25 test questions; prints how many answers are identical and the largest NLL difference.
#   bash experiments/refactor_check.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
export PROMPTGD_DATA=../shared/data
R=${1:-runs/refactor_check}; mkdir -p $R
[ -f $R/base/summary.json ] || .venv/bin/promptgd eval configs/squad.yaml --model runs/confirm/start/start_model \
  --task jsonl:runs/confirm/squad_confirm.jsonl --split test task.n_test=0 --limit 50 --modes nc,prompt,ft --out $R/base
[ -f $R/check/summary.json ] || .venv/bin/promptgd eval configs/squad.yaml --model runs/confirm/ss_model --split test \
  --modes ft --limit 25 inner.steps=8 --out $R/check
R=$R .venv/bin/python - <<'PY'
import json
def rows(path, limit=None):
    return {(r["mode"], r["index"]): r for r in map(json.loads, open(path)) if limit is None or r["index"] < limit}
import os
out = os.environ["R"]
for new, old, limit in ((f"{out}/base", "runs/confirm/base", 50), (f"{out}/check", "runs/confirm/check", 25)):
    a, b = rows(f"{new}/predictions.jsonl"), rows(f"{old}/predictions.jsonl", limit)
    same = sum(a[k]["prediction"] == b[k]["prediction"] for k in a)
    diff = max(abs(a[k]["nll"] - b[k]["nll"]) for k in a)
    print(f"{new} vs {old}: {len(a)} records, {same} identical answers, max |NLL difference| {diff:.3g}")
PY
