# The GPU checks issue 13 still needs, as one call of the `device` tool (~8 min on an H100):
#   run(command="bash benchmarks/gpu_check.sh", carry=["gpu"], timeout_s=560)
# gpu/ (git-ignored, under the 64 MiB a call carries) holds what the device machine cannot download: gpu/whl/ the
# faker and gguf wheels, gpu/tok/ SmolLM2's tokenizer files, gpu/squad.jsonl SQuAD triples (`load_task("squad", ...)`
# written as JSONL), gpu/wikitext/valid.txt WikiText-2's valid split (text for contexts of up to 1,024 tokens).
# Weights are random at Llama-3.2-1B's shapes (benchmarks/shaped_model.py): speed and memory depend only on shapes.
# 1. TF32 (model.tf32) against the exact meta-gradient, and the finite-difference tests, on CUDA;
# 2. end-to-end `promptgd train` per task in float32 without and with TF32 (implicit update, batch 16);
# 3. the cost curve up to 1,024 context tokens and 64 tasks per pass, bfloat16.
# Then, with device time left, benchmarks/gpu_sinks.sh (the memory target with gradient sinks off and on).
# gpu/ is lost with a fresh machine: `PROMPTGD_DATA=../shared/data bash benchmarks/gpu_kit.sh` makes it again.
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/device.txt
PROMPTGD_TEST_DEVICE=cuda timeout 120 python3 -m pytest -q -p no:cacheprovider -rA tests/test_tf32.py tests/test_metagrad.py \
  2>&1 | tee $OUT/pytest_tf32.txt | tail -4
python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer gpu/tok --out /tmp/llama1b 2>&1 | tail -1
COMMON="model.spec=/tmp/llama1b model.dtype=float32 task.name=jsonl:gpu/squad.jsonl task.n_train=0 task.n_test=0
 task.n_val=0 warmup.n_tasks=0 train.batch_size=16 train.val_every=0 train.ckpt_every=0 train.lm_corpus=builtin
 train.lm_seq_len=128 train.objective=lc train.prompt_weight=0 train.n_tasks=96 inner.implementation=implicit
 train.pass_tokens=2048"
for tf32 in false true; do
  timeout 110 python3 -m promptgd train configs/paper/squad.yaml $COMMON model.tf32=$tf32 --out /tmp/train_tf32_$tf32 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$" | grep -v "^\s*$" | tail -1
  cp /tmp/train_tf32_$tf32/metrics.jsonl $OUT/metrics_float32_tf32_$tf32.jsonl
done
timeout 200 python3 benchmarks/cost_curve.py --model /tmp/llama1b --dtype bfloat16 --corpus gpu/wikitext/valid.txt \
  --lengths 32,128,512,1024 --batches 1,4,16,64 --max-pass-tokens 16384 --out $OUT/cost_curve 2>&1 | tail -20
