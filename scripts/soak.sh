#!/usr/bin/env bash
# Soak test: kill -9 a tiny meta-training at random moments, resume it each time with `promptgd train --resume`,
# and check that every finished model equals an uninterrupted run's bit for bit, that its metrics.jsonl logs the
# same steps, and that nothing temporary is left behind. A run that finishes before KILLS kills were made is
# checked and followed by a fresh one, so every kill hits an unfinished run.
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
cfg=(model.spec=tiny:llama model.device=cpu task.n_train=300 task.n_test=4 task.n_val=8 warmup.n_tasks=8
     train.n_tasks=160 train.batch_size=2 train.ckpt_every=1 train.val_every=20 train.val_size=4
     train.lm_corpus=builtin train.lm_seq_len=32 eval.max_new_tokens=4 eval.batch_size=4)
promptgd=.venv/bin/promptgd
rows() { if [ -f "$1/metrics.jsonl" ]; then wc -l < "$1/metrics.jsonl"; else echo 0; fi; }

start=$(date +%s.%N)
$promptgd train "${cfg[@]}" --out "$out/reference" > "$out/reference.log" 2>&1
span=$(python3 -c "import time; print(time.time() - $start)")

kills=0 launches=0 round=1
while [ "$kills" -lt "$kills_wanted" ]; do
  run="$out/run_$round"
  launches=$((launches + 1))
  before=$(rows "$run")
  $promptgd train "${cfg[@]}" --resume --out "$run" >> "$run.log" 2>&1 &
  pid=$!
  # Anywhere in a whole run's span: start-up, warm-up, a step, a checkpoint, a validation, the final save.
  sleep "$(python3 -c "import random; print(random.uniform(0.02, 1.0) * $span)")"
  if [ ! -e "$run/model/.promptgd-complete" ] && kill -9 "$pid" 2> /dev/null; then
    kills=$((kills + 1))
    if [ ! -e "$run/start_model/.promptgd-complete" ]; then echo "start-up/warm-up"
    elif [ "$(rows "$run")" -gt "$before" ]; then echo "meta-training@$(rows "$run")"
    else echo "start-up of a resume"; fi >> "$out/kill_points.txt"
  fi
  status=0; wait "$pid" 2> /dev/null || status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 137 ]; then
    echo "soak.sh: a resume failed (exit $status) after $kills kills; see $run.log" >&2; exit 1
  fi
  if [ -e "$run/model/.promptgd-complete" ] && [ "$kills" -lt "$kills_wanted" ]; then round=$((round + 1)); fi
done
# Finish the last run.
$promptgd train "${cfg[@]}" --resume --out "$out/run_$round" >> "$out/run_$round.log" 2>&1

.venv/bin/python - "$out" "$kills" "$launches" <<'PY'
import json, sys
from pathlib import Path
from safetensors.torch import load_file
out, kills, launches = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
reference = load_file(out / "reference/model/model.safetensors")
steps = lambda run: [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
runs = sorted(p for p in out.glob("run_*") if p.is_dir())
equal = [all((reference[k] == w[k]).all() for k in reference) and w.keys() == reference.keys()
         for w in (load_file(r / "model/model.safetensors") for r in runs)]
same_log = [steps(r) == steps(out / "reference") for r in runs]
points = (out / "kill_points.txt").read_text().splitlines()
stages = {s: sum(p.split("@")[0] == s for p in points) for s in ("start-up/warm-up", "meta-training", "start-up of a resume")}
at = sorted(int(p.split("@")[1]) for p in points if "@" in p)
leftovers = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name.startswith((".staging-", ".tmp-")))
print("| kills -9 | in start-up / warm-up | in meta-training (logged rows at the kill) | in a resume's start-up | launches | finished runs | weights equal | logged steps equal | leftover temporaries |")
print("|---:|---:|---|---:|---:|---:|---|---|---:|")
print(f"| {kills} | {stages['start-up/warm-up']} | {stages['meta-training']} ({', '.join(map(str, at))}) | "
      f"{stages['start-up of a resume']} | {launches} | {len(runs)} | {sum(equal)}/{len(runs)} | {sum(same_log)}/{len(runs)} | {len(leftovers)} |")
print(json.dumps({"kills": kills, "kill_stages": stages, "launches": launches, "runs": len(runs),
                  "weights_equal": all(equal), "log_steps_equal": all(same_log), "leftovers": leftovers}))
sys.exit(0 if all(equal) and all(same_log) and not leftovers else 1)
PY
