#!/usr/bin/env bash
# Builds gpu/ (git-ignored, ~5 MiB), what benchmarks/gpu_check.sh needs on a device machine that cannot download:
# gpu/whl/ the faker and gguf wheels (the venv's versions), gpu/tok/ SmolLM2's tokenizer, gpu/squad.jsonl (40 SQuAD
# v1.1 test triples) with gpu/squad.train.jsonl (176 training triples), gpu/wikitext/valid.txt. A fresh machine loses
# gpu/ with everything else that is ignored; this script makes it again in a minute.
# Usage: PROMPTGD_DATA=../shared/data bash benchmarks/gpu_kit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -e gpu ] && { echo "gpu_kit.sh: gpu/ exists; remove it first" >&2; exit 2; }
: "${PROMPTGD_DATA:?set PROMPTGD_DATA to the folder with squad-v1.1/ and wikitext-2/}"
mkdir -p gpu/whl gpu/wikitext
versions=$(.venv/bin/pip freeze 2>/dev/null | grep -i -E "^(faker|gguf)==")
# shellcheck disable=SC2086  # one requirement per word
.venv/bin/pip download -q --no-deps -d gpu/whl $versions
cp "$PROMPTGD_DATA/wikitext-2/valid.txt" gpu/wikitext/valid.txt
.venv/bin/python - <<'PY'
from promptgd.data.tasks import load_task
from promptgd.data.triples import write_jsonl
from promptgd.models.loading import load_model

_, tokenizer = load_model("packaged:smollm2-135m", device="cpu")
tokenizer.save_pretrained("gpu/tok")
splits = load_task("squad", 176, 40, 0)
write_jsonl(splits.train, "gpu/squad.train.jsonl")
write_jsonl(splits.test, "gpu/squad.jsonl")
PY
du -sh gpu
