# GPU check 2 for issue 13: where an implicit outer step spends its time (profile), and FT evaluation speed on
# character descriptions (short contexts), Llama-3.2-1B shapes.
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
python3 benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer gpu/tok --out /tmp/llama1b 2>&1 | tail -1
timeout 200 python3 benchmarks/step_flops.py --model /tmp/llama1b --dtype bfloat16 --task jsonl:gpu/squad.train.jsonl \
  --batch-size 16 --pass-tokens 4096 --implementation implicit --profile --out $OUT/profile 2>&1 | grep -v "^\s*$" | tail -45
timeout 150 python3 benchmarks/eval_speed.py --model /tmp/llama1b --task character_descriptions --n 32 --out $OUT/eval_cd 2>&1 | tail -9 | head -8
