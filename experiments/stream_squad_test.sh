#!/usr/bin/env bash
# SQuAD streams on test, once, with the method the validation stream chose (experiments/stream_squad_choice.py on the
# rows of experiments/stream_squad_val.sh; the rule in results/studies/stream_smollm2.md, written before either ran):
# - 100 of the test paragraphs (~500 questions) absorbed one after another, beside NC, Prompt, single-document FT,
#   BM25 over the absorbed paragraphs, Prompt after the stream, the plain step's stream (row base) and fine-tuning;
# - 10 and 1,000 paragraphs of the dev range `stream` (data/squad.py DEV_RANGES, beyond the test and confirmation
#   samples): the 10-paragraph stream, with all 10 in the prompt, is also the first 10 of the 1,000-paragraph one (the
#   same seeded order), so its FT is the reference of the 1,000-paragraph stream's probes after 10, 100, 1,000.
# Rerun after a cut: finished evaluations are kept. Runs the code of the checkout it lies in: start it from a worktree.
#   bash experiments/stream_squad_test.sh OUT START_MODEL STEP_SIZE_MODEL VAL_DIR
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: bash experiments/stream_squad_test.sh OUT START_MODEL STEP_SIZE_MODEL VAL_DIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1"); start=$(realpath "$2"); sizes=$(realpath "$3"); val=$(realpath "$4")
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p "$out"
[ -f "$val/choice.args" ] || "$py" experiments/stream_squad_choice.py "$val" | tee "$val/choice.txt"
{ read -r kind overrides; read -r plain_lr finetune_lr; } < "$val/choice.args"  # stream_squad_choice.py writes it
case $kind in
  start) model=$start ;;
  sizes) model=$sizes ;;
  *) echo "$val/choice.args: unknown model '$kind'" >&2; exit 1 ;;
esac
read -ra chosen <<< "$overrides"
locality=eval.locality_corpus=wikitext:$PROMPTGD_DATA/wikitext-2
evaluate() {  # NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  if [ -f "$out/$name/summary.json" ]; then stamp "$name: kept"; return; fi
  stamp "$name"; "$py" -m promptgd eval configs/squad.yaml --model "$model" "$locality" "$@" --out "$out/$name"
}
test100=(--split test eval.stream=100)
evaluate test_chosen "$model" "${test100[@]}" --modes nc,prompt,ft,ft_stream,prompt_stream,prompt_bm25 "${chosen[@]}"
# The plain step's stream (row base) is test_chosen itself when the plain step was chosen.
[ "$kind" = start ] || evaluate test_base "$start" "${test100[@]}" --modes ft,ft_stream inner.lr="$plain_lr"
evaluate test_finetuned "$start" "${test100[@]}" --modes finetuned eval.finetune_lr="$finetune_lr"
[ -f "$out/squad_stream.jsonl" ] || "$py" experiments/squad_dev_range.py stream --out "$out/squad_stream.jsonl"
long=(--task "jsonl:$out/squad_stream.jsonl" --split test task.n_test=0)
evaluate stream10 "$model" "${long[@]}" eval.stream=10 --modes nc,prompt,ft,ft_stream,prompt_all "${chosen[@]}"
evaluate stream1000 "$model" "${long[@]}" eval.stream=1000 --modes nc,ft_stream "${chosen[@]}"
stamp done
