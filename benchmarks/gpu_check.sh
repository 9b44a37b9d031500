# The GPU checks issue 13 still needs, as one call of the `device` tool (~8 min on an H100):
#   run(command="bash benchmarks/gpu_check.sh", carry=["gpu"], timeout_s=560)
# and, with device time left, a second call for the memory target with gradient sinks off and on (~3 min):
#   run(command="bash benchmarks/gpu_check.sh sinks", carry=["gpu"], timeout_s=300)
# gpu/ (git-ignored, under the 64 MiB a call carries) holds what the device machine cannot download: gpu/whl/ the
# faker and gguf wheels, gpu/tok/ SmolLM2's tokenizer files, gpu/squad.jsonl SQuAD triples (`load_task("squad", ...)`
# written as JSONL), gpu/wikitext/valid.txt WikiText-2's valid split (text for contexts of up to 1,024 tokens).
# gpu/ is lost with a fresh machine: `PROMPTGD_DATA=../shared/data bash benchmarks/gpu_kit.sh` makes it again.
# Weights are random at Llama-3.2-1B's shapes (benchmarks/shaped_model.py): speed and memory depend only on shapes.
# 1. TF32 (model.tf32) against the exact meta-gradient, and the finite-difference tests, on CUDA;
# 2. end-to-end `promptgd train` per task in float32 without and with TF32 (implicit update, batch 16);
# 3. the cost curve up to 1,024 context tokens and 64 tasks per pass, bfloat16.
# `sinks`: end-to-end `promptgd train` in bfloat16, 1,024-token passes, train.gradient_sinks off and on: median
# seconds per outer step and peak GiB from each metrics.jsonl (targets: <= 50 ms per task, <= 20 GiB).
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/device.txt
python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer gpu/tok --out /tmp/llama1b 2>&1 | tail -1
COMMON="model.spec=/tmp/llama1b task.name=jsonl:gpu/squad.jsonl task.n_train=0 task.n_test=0 task.n_val=0
 warmup.n_tasks=0 train.batch_size=16 train.val_every=0 train.ckpt_every=0 train.lm_corpus=builtin
 train.lm_seq_len=128 train.objective=lc train.prompt_weight=0 train.n_tasks=96 inner.implementation=implicit"
train() {  # NAME OVERRIDES...: one end-to-end run; its metrics.jsonl lands as $OUT/metrics_NAME.jsonl
  local name=$1; shift
  timeout 110 python3 -m promptgd train configs/paper/squad.yaml $COMMON "$@" --out /tmp/train_$name 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$" | grep -v "^\s*$" | tail -1
  cp /tmp/train_$name/metrics.jsonl $OUT/metrics_$name.jsonl
  python3 -c "import json, statistics, sys; r = [json.loads(l) for l in open(sys.argv[1])][1:]
print(sys.argv[2], 'median s/step', round(statistics.median(x['seconds'] for x in r), 3),
      'peak GiB', round(max(x['peak_mem_mb'] for x in r) / 1024, 1))" $OUT/metrics_$name.jsonl $name
}
if [ "${1:-}" = sinks ]; then
  for sinks in false true; do
    train bfloat16_sinks_$sinks model.dtype=bfloat16 train.pass_tokens=1024 train.gradient_sinks=$sinks
  done
  exit
fi
PROMPTGD_TEST_DEVICE=cuda timeout 120 python3 -m pytest -q -p no:cacheprovider -rA tests/test_tf32.py tests/test_metagrad.py \
  2>&1 | tee $OUT/pytest_tf32.txt | tail -4
for tf32 in false true; do
  train float32_tf32_$tf32 model.dtype=float32 train.pass_tokens=2048 model.tf32=$tf32
done
timeout 200 python3 benchmarks/cost_curve.py --model /tmp/llama1b --dtype bfloat16 --corpus gpu/wikitext/valid.txt \
  --lengths 32,128,512,1024 --batches 1,4,16,64 --max-pass-tokens 16384 --out $OUT/cost_curve 2>&1 | tail -20
