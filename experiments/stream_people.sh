#!/usr/bin/env bash
# Streams of people (issue: many documents kept in one model): the quickstart's LC model and a retention-trained
# variant at the same budget absorb every validation person one after another; the choice among them and the
# baselines' rates follow the rule in results/studies/stream_smollm2.md ("People"), written before this ran; then the
# chosen method's stream of the 200 test people and of the 200 held-out-family people, once. Rerun after a cut:
# finished trainings and evaluations are kept. Runs the code of the checkout it lies in (PYTHONPATH): start it from a
# worktree.
#   bash experiments/stream_people.sh OUT [OVERRIDE ...]
# OVERRIDEs go to both trainings (a smoke run: warmup.n_tasks=8 train.n_tasks=8 train.val_every=0, with
# STREAM_PEOPLE_EVAL_LIMIT=8 for 8 people per evaluation).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash experiments/stream_people.sh OUT [OVERRIDE ...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1"); shift
cd "$root"
export PYTHONPATH=$root/src PROMPTGD_DATA=${PROMPTGD_DATA:-$root/../shared/data}
py=${PROMPTGD_PYTHON:-/work/main/.venv/bin/python}
promptgd() { "$py" -m promptgd "$@"; }
stamp() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p "$out"

# The quickstart preset's LC model (the committed draw's preset and seed, results/studies/quickstart.md; a rebuild can
# differ in the last bits). The streams below evaluate it themselves, so the run evaluates one NC triple only.
stamp "quickstart model"
promptgd run configs/quickstart.yaml "$@" eval.modes=nc eval.limit=1 --out "$out/quickstart"
start=$out/quickstart/start_model quickstart=$out/quickstart/lc/model
# Retention-trained: the same preset, warm start and triples (640), but 4 people absorbed one after another per task
# and the 4 queries asked after the last update: 160 outer steps of 4 queries, as the quickstart's 160 of 4 tasks.
stamp "retention-trained model"
mkdir -p "$out/retention"
[ -e "$out/retention/start_model" ] || ln -s "$start" "$out/retention/start_model"  # its warm-up, not another
promptgd train configs/quickstart.yaml "$@" inner.contexts=4 inner.mode=sequential train.batch_size=1 --resume \
  --out "$out/retention"
retention=$out/retention/model

# One document per update everywhere: the retention-trained model's saved settings say 4 contexts an update.
stream=(inner.contexts=1 inner.mode=batched eval.locality_corpus=wikitext:$PROMPTGD_DATA/wikitext-2 eval.limit=${STREAM_PEOPLE_EVAL_LIMIT:-0})
evaluate() {  # NAME MODEL SPLIT ARGS...: one evaluation, kept when already finished
  local name=$1 model=$2 split=$3; shift 3
  if [ -f "$out/$name/summary.json" ]; then stamp "$name: kept"; return; fi
  stamp "$name"; promptgd eval configs/quickstart.yaml --model "$model" --split "$split" "${stream[@]}" "$@" --out "$out/$name"
}
evaluate val_base "$start" val --modes nc,prompt,prompt_bm25
for lr in 1e-3 3e-3 1e-2; do evaluate "val_plain_lr$lr" "$start" val --modes ft,ft_stream inner.lr=$lr; done
for lr in 1e-5 1e-4 1e-3; do evaluate "val_finetuned_lr$lr" "$start" val --modes finetuned eval.finetune_lr=$lr; done
# Each model's sequential row holds its own NC, Prompt and single-document FT; its at-θ row the stream alone.
modes_of() { [ "$1" = sequential ] && echo nc,prompt,ft,ft_stream,prompt_stream || echo ft_stream,prompt_stream; }
for lr in 1e-2 3e-3; do
  for how in sequential at_theta; do
    evaluate "val_quickstart_${how}_lr$lr" "$quickstart" val --modes "$(modes_of $how)" inner.lr=$lr \
      eval.stream_mode=$how
  done
done
for how in sequential at_theta; do
  evaluate "val_retention_$how" "$retention" val --modes "$(modes_of $how)" eval.stream_mode=$how
done
"$py" experiments/stream_people_choice.py "$out" | tee "$out/choice.txt"
read -r model lr how plain_lr finetune_lr < "$out/choice.args"
case $model in
  quickstart) model_dir=$quickstart ;;
  retention) model_dir=$retention ;;
  *) echo "$out/choice.args: unknown model '$model'" >&2; exit 1 ;;
esac
evaluate test_chosen "$model_dir" test --modes nc,prompt,ft,ft_stream,prompt_stream,prompt_bm25 inner.lr=$lr \
  eval.stream_mode=$how
evaluate ood_chosen "$model_dir" ood --modes nc,prompt,ft,ft_stream,prompt_stream,prompt_bm25 inner.lr=$lr \
  eval.stream_mode=$how
evaluate test_base "$start" test --modes nc,prompt,ft,ft_stream inner.lr=$plain_lr
evaluate test_finetuned "$start" test --modes finetuned eval.finetune_lr=$finetune_lr
stamp done
