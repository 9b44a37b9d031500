#!/usr/bin/env bash
# The absorber's stage 2 (results/studies/absorber_smollm2.md), after experiments/absorber_search.sh chose the method
# on validation: the four leave-one-task-out models with that method, then, once each, every model on test: the start
# model (NC, Prompt, FT with each task's own plain step), the absorber (Prompt, FT; and on the people tasks' held-out
# families), each leave-one-out model on the task it left out, and start model and absorber on the notes task that
# nothing trains on; finally the absorber packed against the packaged base. Rerun after a cut: finished stages are
# kept. Runs the code of the checkout it lies in (PYTHONPATH): start it from a worktree.
#   bash experiments/absorber_test.sh OUT [OVERRIDE ...]      (OUT and OVERRIDEs: those absorber_search.sh ran with)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash experiments/absorber_test.sh OUT [OVERRIDE ...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath "$1"); shift
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
promptgd() { "$py" -m promptgd "$@"; }
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
asked="$* ABSORBER_EVAL_LIMIT=${ABSORBER_EVAL_LIMIT:-0}"
if [ "$(cat "$out/asked.txt" 2>/dev/null)" != "$asked" ]; then
  echo "$out: not a finished absorber_search.sh run with these arguments ($asked)" >&2; exit 2
fi
limit=eval.limit=${ABSORBER_EVAL_LIMIT:-0}
chosen=$(tail -1 "$out/choice.txt" | "$py" -c "import json, sys; print(json.load(sys.stdin)['chosen'])")
read -ra settings < "$out/$chosen/method.txt"
eta=$("$py" -c "import sys; from promptgd.config import load_config; print(load_config(sys.argv[1], sys.argv[2:]).inner.lr)" \
  configs/absorber/mixture.yaml warmup.lora_rank=4 "$@")
stamp "chosen on validation: $chosen (${settings[*]}), η $eta"
tasks=(character_descriptions:configs/quickstart.yaml reversal:configs/metatrain/reversal.yaml
  squad:configs/squad.yaml wikitext:configs/wikitext.yaml)

evaluate() {  # DIR PRESET MODEL SPLIT MODES OVERRIDE...: one test evaluation, kept when finished
  local dir=$1 preset=$2 model=$3 split=$4 modes=$5; shift 5
  if [ -f "$dir/summary.json" ]; then return; fi
  stamp "test $(basename "$(dirname "$dir")")/$(basename "$dir") $split"
  promptgd eval "$preset" --model "$model" --split "$split" --modes "$modes" $limit "$@" --out "$dir"
}

for entry in "${tasks[@]}"; do
  task=${entry%%:*}; run=$out/without_$task; mkdir -p "$run"
  [ -e "$run/start_model" ] || ln -s "$out/start/start_model" "$run/start_model"
  if [ ! -d "$run/model" ]; then
    stamp "train without $task"
    promptgd train "configs/absorber/without_$task.yaml" warmup.lora_rank=4 "${settings[@]}" "$@" --resume --out "$run"
  fi
done

absorber=$out/$chosen/model
for entry in "${tasks[@]}"; do
  task=${entry%%:*}; preset=${entry#*:}
  evaluate "$out/test/start/$task" "$preset" "$out/start/start_model" test nc,prompt,ft
  evaluate "$out/test/absorber/$task" "$preset" "$absorber" test prompt,ft "inner.lr=$eta"
  evaluate "$out/test/without_$task/$task" "$preset" "$out/without_$task/model" test prompt,ft "inner.lr=$eta"
  case $task in character_descriptions | reversal)
    evaluate "$out/ood/start/$task" "$preset" "$out/start/start_model" ood nc,prompt,ft
    evaluate "$out/ood/absorber/$task" "$preset" "$absorber" ood prompt,ft "inner.lr=$eta" ;;
  esac
done
notes=(--task notes task.n_train=0 task.n_test=200 task.n_val=0)
evaluate "$out/test/start/notes" configs/quickstart.yaml "$out/start/start_model" test nc,prompt,ft "${notes[@]}"
evaluate "$out/test/absorber/notes" configs/quickstart.yaml "$absorber" test prompt,ft "inner.lr=$eta" "${notes[@]}"
[ -d "$out/packed" ] || promptgd pack "$absorber" --base packaged:smollm2-135m --out "$out/packed"
stamp done
