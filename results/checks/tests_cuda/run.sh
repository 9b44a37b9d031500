# The test suite on CUDA (issue 3): PROMPTGD_TEST_DEVICE=cuda puts every tiny model and batch on the GPU.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site runs/gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/device.txt
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a $OUT/device.txt
PROMPTGD_TEST_DEVICE=cuda timeout 240 python3 -m pytest -q -m "not slow" -n 8 -p no:cacheprovider -rA tests 2>&1 | tee $OUT/pytest_cuda.txt | tail -15  # results/checks/tests_cuda/pytest_cuda.txt keeps the summary (-rA)
