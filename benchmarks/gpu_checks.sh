#!/usr/bin/env bash
# Every GPU measurement ganlib's issues ask for, in one short run on a lent GPU machine:
#   bash benchmarks/gpu_checks.sh        (writes $OUT/gpu_checks.txt, or ./gpu_checks.txt)
# 1. throughput of (a) the recipe's loop, (b) the Trainer, (c) the fast path and each piece,
#    with the recipe's whole run (2,000 steps of 50) timed on the fast path;
# 2. a tiny MNIST-example run on CUDA (stand-in data) that exercises every output file;
# 3. when real MNIST is at $GANLIB_DATA (default ./data: carry it, 55 MB), the quality
#    target's full budget: the recommended preset for 10 epochs of the 60k train split,
#    on the fast path with an EMA, and the recipe, each scored into metrics.json.
set -euo pipefail
out_dir="${OUT:-.}"
out="$out_dir/gpu_checks.txt"
data="${GANLIB_DATA:-./data}"
python3 -m venv .venv >/dev/null 2>&1 || true
.venv/bin/pip install -q -e ".[dev]" >/dev/null 2>&1
{
  nvidia-smi --query-gpu=name,memory.total --format=csv
  .venv/bin/python benchmarks/throughput.py --device cuda --steps 50 --rounds 5 --warmup 20 \
    --pieces --full-run
  .venv/bin/python -c "from ganlib.data import fake_mnist; fake_mnist('/tmp/gpu_mnist', 500)"
  .venv/bin/python examples/mnist.py --device cuda --data-dir /tmp/gpu_mnist --max-steps 20 \
    --width 16 --eval-samples 500 --out /tmp/gpu_run --no-download
  if [ -f "$data/MNIST/raw/train-images-idx3-ubyte" ]; then
    .venv/bin/python examples/mnist.py --device cuda --data-dir "$data" --no-download \
      --fast --ema --out "$out_dir/mnist_recommended"
    .venv/bin/python examples/mnist.py --device cuda --data-dir "$data" --no-download \
      --recipe --ema --out "$out_dir/mnist_recipe"
  else
    echo "no MNIST under $data: skipping the full-budget quality runs"
  fi
} 2>&1 | tee "$out"
