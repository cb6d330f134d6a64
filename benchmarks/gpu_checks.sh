#!/usr/bin/env bash
# Every GPU measurement ganlib's issues ask for, in one short run on a lent GPU machine:
#   bash benchmarks/gpu_checks.sh        (writes $OUT/gpu_checks.txt, or ./gpu_checks.txt)
# 1. throughput of (a) the recipe's loop, (b) the Trainer, (c) the fast path, with the
#    recipe's whole run (2,000 steps of 50) timed on the fast path;
# 2. a tiny MNIST-example run on CUDA (stand-in data) that exercises every output file.
set -euo pipefail
out="${OUT:-.}/gpu_checks.txt"
python3 -m venv .venv >/dev/null 2>&1 || true
.venv/bin/pip install -q -e ".[dev]" >/dev/null 2>&1
{
  nvidia-smi --query-gpu=name,memory.total --format=csv
  .venv/bin/python benchmarks/throughput.py --device cuda --steps 50 --rounds 5 --warmup 20 --pieces --full-run
  .venv/bin/python - <<'PY'
from ganlib.data import fake_mnist
fake_mnist("/tmp/gpu_mnist", count=500)
PY
  .venv/bin/python examples/mnist.py --device cuda --data-dir /tmp/gpu_mnist --max-steps 20 \
    --width 16 --eval-samples 500 --out /tmp/gpu_run --no-download
} 2>&1 | tee "$out"
