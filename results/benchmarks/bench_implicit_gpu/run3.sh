# GPU check 3 for issue 13: SQuAD FT evaluation after the padded-rows change (update/implicit.py `_Rows`), and the
# implicit end-to-end step again (4096-token passes).
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu/whl/*.whl 2>/dev/null || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer gpu/tok --out /tmp/llama1b 2>&1 | tail -1
timeout 100 python3 benchmarks/eval_speed.py --model /tmp/llama1b --task jsonl:gpu/squad.jsonl --n 30 --out $OUT/eval_squad 2>&1 | tail -9 | head -8
COMMON="model.spec=/tmp/llama1b model.dtype=bfloat16 task.name=jsonl:gpu/squad.jsonl task.n_train=0 task.n_test=0 task.n_val=0
 warmup.n_tasks=0 train.batch_size=16 train.val_every=0 train.ckpt_every=0 train.lm_corpus=builtin train.lm_seq_len=128
 train.objective=lc train.prompt_weight=0 train.n_tasks=112"
timeout 100 python3 -m promptgd train configs/paper/squad.yaml $COMMON inner.implementation=implicit train.pass_tokens=4096 --out /tmp/t4096 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | grep -v "^\s*$" | tail -1
cp /tmp/t4096/metrics.jsonl $OUT/metrics_implicit_4096_after.jsonl
