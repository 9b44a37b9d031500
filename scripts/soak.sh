#!/usr/bin/env bash
# Soak test: kill -9 a tiny meta-training at random moments, resume it each time with `promptgd train --resume`,
# and check that the finished model equals an uninterrupted run's bit for bit and that nothing is left behind.
# Usage: scripts/soak.sh [KILLS=20] [--out DIR]   (default DIR runs/soak; prints a table, last line one JSON object)
set -euo pipefail
cd "$(dirname "$0")/.."
kills_wanted=20; out=runs/soak
while [ $# -gt 0 ]; do
  case $1 in --out) out=$2; shift 2 ;; *) kills_wanted=$1; shift ;; esac
done
[ -e "$out" ] && { echo "soak.sh: $out exists; remove it or pass another --out" >&2; exit 2; }
mkdir -p "$out"
export OMP_NUM_THREADS=1  # keeps timings steady and the machine usable
cfg=(model.spec=tiny:llama model.device=cpu task.n_train=80 task.n_test=4 task.n_val=8 warmup.n_tasks=8
     train.n_tasks=40 train.batch_size=2 train.ckpt_every=1 train.val_every=5 train.val_size=4 train.lm_corpus=builtin
     train.lm_seq_len=32 eval.max_new_tokens=4 eval.batch_size=4)
promptgd=.venv/bin/promptgd

start=$(date +%s.%N)
$promptgd train "${cfg[@]}" --out "$out/reference" > "$out/reference.log" 2>&1
span=$(python3 -c "import time; print(time.time() - $start)")

kills=0 launches=0
while true; do
  launches=$((launches + 1))
  $promptgd train "${cfg[@]}" --resume --out "$out/killed" >> "$out/killed.log" 2>&1 &
  pid=$!
  if [ "$kills" -lt "$kills_wanted" ]; then
    # Anywhere in a whole run's span: start-up, warm-up, a step, a checkpoint, the final save.
    sleep "$(python3 -c "import random; print(random.uniform(0.05, 1.0) * $span)")"
    if kill -9 "$pid" 2> /dev/null; then
      kills=$((kills + 1))
      # Where it was hit: before the warmed-up start model was saved, during meta-training (at which logged step), or
      # after the final model was saved.
      if [ -e "$out/killed/model/.promptgd-complete" ]; then stage=finished
      elif [ -e "$out/killed/start_model/.promptgd-complete" ]; then
        stage="training@$(cat "$out/killed/metrics.jsonl" 2> /dev/null | wc -l)"
      else stage=start-up/warm-up; fi
      echo "$stage" >> "$out/kill_points.txt"
    fi
  fi
  status=0; wait "$pid" || status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 137 ]; then
    echo "soak.sh: a resume failed (exit $status) after $kills kills; see $out/killed.log" >&2; exit 1
  fi
  [ -e "$out/killed/model/.promptgd-complete" ] && [ "$kills" -ge "$kills_wanted" ] && break
done

.venv/bin/python - "$out" "$kills" "$launches" <<'PY'
import json, sys
from pathlib import Path
from safetensors.torch import load_file
out, kills, launches = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
reference, killed = load_file(out / "reference/model/model.safetensors"), load_file(out / "killed/model/model.safetensors")
equal = reference.keys() == killed.keys() and all((reference[k] == killed[k]).all() for k in reference)
rows = lambda run: [json.loads(line) for line in (out / run / "metrics.jsonl").read_text().splitlines()]
same_log = [r["step"] for r in rows("reference")] == [r["step"] for r in rows("killed")]
points = (out / "kill_points.txt").read_text().split()
stages = {stage: sum(p.split("@")[0] == stage for p in points) for stage in ("start-up/warm-up", "training", "finished")}
leftovers = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name.startswith((".staging-", ".tmp-")))
print("| kills -9 | in start-up / warm-up | in meta-training (at logged step) | after the final save | launches | final weights equal | metrics.jsonl steps equal | leftover temporaries |")
print("|---:|---:|---|---:|---:|---|---|---:|")
at = ", ".join(p.split("@")[1] for p in points if p.startswith("training"))
print(f"| {kills} | {stages['start-up/warm-up']} | {stages['training']} ({at}) | {stages['finished']} | {launches} | {equal} | {same_log} | {len(leftovers)} |")
print(json.dumps({"kills": kills, "kill_stages": stages, "launches": launches, "weights_equal": bool(equal),
                  "log_steps_equal": same_log, "leftovers": leftovers}))
sys.exit(0 if equal and same_log and not leftovers else 1)
PY
