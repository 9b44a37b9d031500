#!/usr/bin/env bash
# Measures the GPU rates `promptgd reproduce --plan --scale paper` prices its estimate with, once per kind of run,
# at Llama-3.2-1B shapes (random weights: time and memory depend only on shapes), as one call of the `device` tool:
#   run(command="bash benchmarks/gpu_calibrate.sh", carry=["gpu"], timeout_s=560)      (~7 min on an H100)
# gpu/ comes from `PROMPTGD_DATA=../shared/data bash benchmarks/gpu_kit.sh`. Each kind trains the paper preset for
# 5 outer steps of 16 tasks (LC, second order, float32, the preset's implicit update); the evaluation rates come from
# 32 triples per context length. $OUT/gpu_rates.json is the new rates file: copy it over
# results/benchmarks/gpu_rates.json and commit it with $OUT's logs.
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/device.txt
python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer gpu/tok --out /tmp/llama1b 2>&1 | tail -1
SIZES="model.spec=/tmp/llama1b warmup.n_tasks=0 task.n_val=0 train.val_every=0 train.ckpt_every=0 train.n_tasks=80"
LONG="task.name=jsonl:gpu/squad.jsonl task.n_train=0 task.n_test=0 train.lm_corpus=builtin"
SHORT="task.name=character_descriptions task.n_train=200 train.lm_corpus=builtin"
train() {  # KEY PRESET OVERRIDES...: KEY as in the rates file with / written as __
  local key=$1 preset=$2; shift 2
  timeout 100 python3 -m promptgd train configs/paper/$preset.yaml $SIZES "$@" --out $OUT/train_$key 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$" | grep -v "^\s*$" | tail -1
  rm -rf $OUT/train_$key/model $OUT/train_$key/checkpoints  # weights: gigabytes, and not what is measured
}
train full__long squad $LONG
train full__short character_descriptions $SHORT
train full_first_order__long squad $LONG train.first_order=true
train lora_outer__long squad $LONG lora.variant=outer lora.rank=1
train lora_inner__long squad $LONG lora.variant=inner lora.rank=1
train full_k4__long squad $LONG inner.contexts=4 train.batch_size=4
python3 -m promptgd eval configs/paper/squad.yaml model.spec=/tmp/llama1b $LONG --split test --limit 32 \
  --modes nc,prompt,ft --out $OUT/eval_long 2>&1 | tail -2
python3 -m promptgd eval configs/paper/character_descriptions.yaml model.spec=/tmp/llama1b $SHORT --split test \
  --limit 32 --modes nc,prompt,ft --out $OUT/eval_short 2>&1 | tail -2
python3 benchmarks/gpu_rates.py --runs $OUT --base results/benchmarks/gpu_rates.json --out $OUT/gpu_rates.json
