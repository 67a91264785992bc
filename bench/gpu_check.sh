#!/usr/bin/env bash
# The prepared GPU check, sized to one lease: every step runs under one deadline (GPU_CHECK_SECONDS,
# default 540) in the order of what it tells us, and a step that no longer fits is skipped and said so.
#   1. CIFAR-100, the recipe per epoch: fastnet_s for a fixed 8 epochs, held-out (when a copy was carried)
#   2. the kernel, augmentation and loader tests with real CUDA kernels
#   3. the time-to-80% attempt: fastnet_l for a fixed 24 epochs, held-out, with the curve's times
#   4. a training step's time (Muon orthogonalising in bf16 and float32), augmentation, JPEG loading and
#      Poisson blending throughput on the device
#   5. CIFAR-10 training throughput (when that copy was carried), then a short CIFAR-100 budget run
# What comes back: $OUT/log.txt (everything printed) and $OUT/results.tgz (each run's summary, metrics
# and report, each benchmark's JSON; no checkpoints), rebuilt after every step so that a run stopped
# early still returns what it finished.
#
# Data to carry (the tree travels in 64 MiB): bench/data/c100-q85.beton, the real CIFAR-100 training
# split stored as JPEG of quality 85 (a lossy copy; say so when quoting it), made with
#   python bench/pack_cifar100.py ../shared/data/cifar-100-python-train.tar.gz bench/data/c100-q85.beton \
#       --quality 85 --no-verify
# and optionally bench/data/cifar10-jpeg.tar.xz. Wheels the image lacks (kornia and kornia_rs for the
# comparison rows) are installed from bench/wheels/ when that folder was carried along.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu}
RUNS=${RUNS:-$(mktemp -d)}
DEADLINE=${GPU_CHECK_SECONDS:-540}
PY=${PYTHON:-$(command -v python3 || command -v python)}
mkdir -p "$OUT" "$RUNS"
unset NUMBA_ENABLE_CUDASIM
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1

pack() {  # the small results, again after every step
  tar czf "$OUT/results.tgz" -C "$RUNS" --exclude='*.pt' --exclude='.fastvis.lock' . 2>/dev/null || true
}
# step NAME CAP_SECONDS MIN_SECONDS COMMAND...: runs COMMAND under min(CAP, time left), or skips it
step() {
  local name=$1 cap=$2 need=$3; shift 3
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt "$need" ]; then
    echo "== $name: skipped, ${left}s left of ${DEADLINE}s (needs ${need}s)"
    return 0
  fi
  local t=$((cap < left ? cap : left))
  echo "== $name (at ${SECONDS}s, limit ${t}s)"
  timeout "$t" "$@"
  local rc=$?
  echo "== $name: rc $rc after ${SECONDS}s"
  pack
}
summary() {  # summary RUN LABEL: one line from a run's summary.json, when the run finished
  [ -f "$1/summary.json" ] || { echo "$2: no summary (the run did not finish)"; return 0; }
  "$PY" - "$1" "$2" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))
print(sys.argv[2], s["model"], round(s["epochs"], 1), "epochs", round(s["images_per_second"]), "img/s",
      round(s["train_seconds"], 1), "s training", "held-out top1", s["top1"], "top5", s.get("top5"))
PY
}

date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d bench/wheels ] && ls bench/wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/fastvis-site bench/wheels/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/fastvis-site
fi
"$PY" -c "import torch, numba; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numba', numba.__version__)"
# The lent image's numba-cuda (0.30.4) calls np.row_stack, which its numpy (2.5) removed: without help
# every kernel fails to compile and fastvis runs its torch forms (measured so on 2026-12-04). The check
# measures the kernels themselves: fastvis puts the alias back (FASTVIS_NUMPY_ALIASES=0 to leave it out).
export FASTVIS_NUMPY_ALIASES=${FASTVIS_NUMPY_ALIASES:-1}
"$PY" -c "from fastvis.kernels.cuda_ready import cuda_kernels_problem as p; print('numba CUDA kernels:', p() or 'usable')"
C100=$(ls bench/data/c100-q*.beton 2>/dev/null | head -1)

if [ -n "$C100" ]; then
  step "c100 fastnet_s 8 epochs" 150 60 "$PY" -m fastvis.cli.train --data "$C100" --holdout 5000 \
    --model fastnet_s --epochs 8 --out "$RUNS/c100-s8" -q
  summary "$RUNS/c100-s8" "c100 8 epochs"
fi
step "tests (kernels, augment, loader)" 150 60 "$PY" -m pytest -q -p no:cacheprovider -rs \
  tests/kernels tests/augment tests/loader
if [ -n "$C100" ]; then
  step "c100 fastnet_l 24 epochs" 220 90 "$PY" -m fastvis.cli.train --data "$C100" --holdout 5000 \
    --model fastnet_l --epochs 24 --out "$RUNS/c100-l24" -q
  summary "$RUNS/c100-l24" "c100 24 epochs"
  [ -f "$RUNS/c100-l24/metrics.jsonl" ] && "$PY" - "$RUNS/c100-l24" <<'PY' || true
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl") if line.strip()]
first = {t: next((r for r in rows if r.get("top1", 0) >= t), None) for t in (0.7, 0.75, 0.8)}
print("c100 fastnet_l: seconds of training to 70/75/80% held-out:",
      {t: (r or {}).get("time") for t, r in first.items()}, "best", max(r.get("top1", 0) for r in rows))
PY
fi
mkdir -p "$RUNS/bench"
step "bench step" 60 30 "$PY" -m fastvis.cli.bench step --device cuda --models fastnet,fastnet_l --steps 5 \
  --json "$RUNS/bench/step.json"
step "bench augment" 90 45 "$PY" -m fastvis.cli.bench augment --device cuda --json "$RUNS/bench/augment.json"
# JPEG loading: JpegLoader (nvjpeg + roi_align) against the DataLoader (pinned copies); DALI's wheel
# (424 MB) is too large to carry, so its row is skipped
step "bench loader" 90 45 "$PY" -m fastvis.cli.bench loader --suite jpeg --device cuda --jpeg-n 4096 \
  --json "$RUNS/bench/loader.json"
step "bench poisson" 60 30 "$PY" -m fastvis.cli.bench poisson --device all --batch 256 \
  --json "$RUNS/bench/poisson.json"
if [ -f bench/data/cifar10-jpeg.tar.xz ]; then
  D=$(mktemp -d)
  "$PY" -m fastvis.cli.convert bench/data/cifar10-jpeg.tar.xz "$D/train.beton" -q
  "$PY" -m fastvis.cli.convert bench/data/cifar10-jpeg.tar.xz "$D/test.beton" --split test -q
  for m in fastnet resnet18; do
    step "c10 $m 2 epochs" 120 60 "$PY" -m fastvis.cli.train --data "$D/train.beton" --val "$D/test.beton" \
      --model $m --epochs 2 --batch-size 512 --out "$RUNS/c10-$m" -q
    summary "$RUNS/c10-$m" "c10 2 epochs"
  done
fi
if [ -n "$C100" ]; then
  # the default recipe under a budget: the ladder picks the model from the measured speed
  step "c100 budget 2m" 200 170 "$PY" -m fastvis.cli.train --data "$C100" --holdout 5000 --budget 2m \
    --out "$RUNS/c100-2m" -q
  summary "$RUNS/c100-2m" "c100 2 minutes"
fi
echo "== done at ${SECONDS}s"
pack
