# Issue 13's GPU memory target with gradient sinks, as a second `device` call after gpu_check.sh (~3 min on an H100):
#   run(command="bash benchmarks/gpu_sinks.sh", carry=["gpu"], timeout_s=300)
# gpu/ as for gpu_check.sh (benchmarks/gpu_kit.sh builds it). End-to-end `promptgd train` at Llama-3.2-1B shapes,
# bfloat16, LC, outer batch 16, 1,024-token passes, train.gradient_sinks off and on: peak GPU memory and seconds per
# outer step in each metrics.jsonl (target: <= 20 GiB, <= 50 ms per task).
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/device.txt
python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer gpu/tok --out /tmp/llama1b 2>&1 | tail -1
COMMON="model.spec=/tmp/llama1b model.dtype=bfloat16 task.name=jsonl:gpu/squad.jsonl task.n_train=0 task.n_test=0
 task.n_val=0 warmup.n_tasks=0 train.batch_size=16 train.val_every=0 train.ckpt_every=0 train.lm_corpus=builtin
 train.lm_seq_len=128 train.objective=lc train.prompt_weight=0 train.n_tasks=96 inner.implementation=implicit
 train.pass_tokens=1024"
for sinks in false true; do
  timeout 120 python3 -m promptgd train configs/paper/squad.yaml $COMMON train.gradient_sinks=$sinks \
    --out /tmp/train_sinks_$sinks 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | grep -v "^\s*$" | tail -1
  cp /tmp/train_sinks_$sinks/metrics.jsonl $OUT/metrics_bfloat16_sinks_$sinks.jsonl
  python3 -c "import json,statistics,sys; r=[json.loads(l) for l in open(sys.argv[1])][1:]; \
print(sys.argv[2], 'median s/step', round(statistics.median(x['seconds'] for x in r),3), \
'peak GiB', round(max(x['peak_mem_mb'] for x in r)/1024,1))" $OUT/metrics_bfloat16_sinks_$sinks.jsonl "sinks=$sinks"
done
