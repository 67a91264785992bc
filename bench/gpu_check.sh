#!/usr/bin/env bash
# The prepared GPU check (about 5 minutes on an H100/H200): the kernel and augmentation tests
# with real CUDA kernels, then the augmentation throughput table on the device and the CPU.
# Results go to $OUT (default bench/out/gpu). Optional wheels the image lacks (kornia for the
# comparison rows) are installed from bench/wheels/ when that folder was carried along.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
unset NUMBA_ENABLE_CUDASIM
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch, numba; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numba', numba.__version__)"
} | tee "$OUT/device.txt"
if [ -d bench/wheels ]; then
  python -m pip install -q --no-deps bench/wheels/*.whl || true
fi
python -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD
timeout 240 python -m pytest -q -p no:cacheprovider tests/kernels tests/augment 2>&1 | tail -15 | tee "$OUT/tests.txt"
timeout 240 python bench/augment.py --device all --json "$OUT/augment.json" 2>&1 | tee "$OUT/augment.txt"
