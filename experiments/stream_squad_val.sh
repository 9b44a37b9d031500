#!/usr/bin/env bash
# Streams of SQuAD paragraphs on validation (issue: many documents kept in one model): 100 whole training paragraphs
# that no preset training triple comes from (data/squad.py validation_stream_paragraphs), each method absorbing them
# one after another, every question asked at the end, beside single-document FT, NC, Prompt, BM25 retrieval and
# ordinary fine-tuning. Its rule is in results/studies/stream_smollm2.md, written before it ran. Rerun after a cut:
# finished evaluations are kept. Runs the code of the checkout it lies in (PYTHONPATH): start it from a worktree.
#   bash experiments/stream_squad_val.sh OUT START_MODEL STEP_SIZE_MODEL GUARD
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1"); start=$(realpath "$2"); sizes=$(realpath "$3"); guard=$4
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p "$out"
[ -f "$out/val_stream.jsonl" ] || "$py" experiments/squad_dev_range.py val_stream --paragraphs 100 --out "$out/val_stream.jsonl"
stream=(--task "jsonl:$out/val_stream.jsonl" --split test task.n_test=0 eval.locality_corpus=wikitext:$PROMPTGD_DATA/wikitext-2)
evaluate() {  # NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  if [ -f "$out/$name/summary.json" ]; then stamp "$name: kept"; return; fi
  stamp "$name"; "$py" -m promptgd eval configs/squad.yaml --model "$model" "${stream[@]}" "$@" --out "$out/$name"
}
evaluate base "$start" --modes nc,prompt,ft,prompt_bm25
for lr in 1e-3 3e-3 1e-2; do evaluate "plain_lr$lr" "$start" --modes ft,ft_stream inner.lr=$lr; done
evaluate sizes8 "$sizes" --modes ft,ft_stream inner.steps=8 inner.guard=$guard
evaluate sizes8_at_theta "$sizes" --modes ft_stream inner.steps=8 inner.guard=$guard eval.stream_mode=at_theta
for lr in 1e-5 1e-4; do evaluate "finetuned_lr$lr" "$start" --modes finetuned eval.finetune_lr=$lr; done
stamp done
