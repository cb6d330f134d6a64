#!/usr/bin/env bash
# Every GPU measurement ganlib's issues ask for, in one short run on a lent GPU machine:
#   bash benchmarks/gpu_checks.sh        (writes $OUT/gpu_checks.txt, or ./gpu_checks.txt)
# Nothing is installed: the machine's python3 (with torch, torchvision, typing-extensions)
# runs ganlib from src/ ($PYTHON overrides the interpreter).
# 1. throughput of (a) the recipe's loop, (b) the Trainer, (c) the fast path and each piece,
#    with the recipe's whole run (2,000 steps of 50) timed on the fast path; then what
#    torch.compile costs and saves there, and after how many steps it pays back (the
#    figure ganlib.runtime.COMPILE_PAYBACK_STEPS["cuda"] awaits);
# 2. DDP through torchrun on every GPU (NCCL, SyncBatchNorm, fast path): same weights on
#    every rank;
# 3. a tiny MNIST-example run on CUDA (stand-in data) that exercises every output file;
# 4. when real MNIST is at $GANLIB_DATA (default ./data: carry it, 55 MB), the quality
#    target's full budget: the recommended preset for 10 epochs of the 60k train split,
#    on the fast path with an EMA, and the recipe, each scored into metrics.json.
set -euo pipefail
out_dir="${OUT:-.}"
out="$out_dir/gpu_checks.txt"
data="${GANLIB_DATA:-./data}"
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
gpus="$(nvidia-smi -L | wc -l)"
{
  nvidia-smi --query-gpu=name,memory.total --format=csv
  "$py" -c "import torch, ganlib; print('torch', torch.__version__, 'ganlib', ganlib.__version__)"
  "$py" benchmarks/throughput.py --device cuda --steps 50 --rounds 5 --warmup 20 \
    --pieces bf16,channels_last,compile --full-run
  "$py" benchmarks/compile_cost.py --device cuda --widths 128
  "$py" -m torch.distributed.run --standalone --nproc_per_node "$gpus" \
    benchmarks/ddp_smoke.py --device cuda --sync-batchnorm --fast
  "$py" -c "from ganlib.data import fake_mnist; fake_mnist('/tmp/gpu_mnist', 500)"
  "$py" examples/mnist.py --device cuda --data-dir /tmp/gpu_mnist --max-steps 20 \
    --width 16 --eval-samples 500 --out /tmp/gpu_run --no-download
  ls /tmp/gpu_run
  if [ -f "$data/MNIST/raw/train-images-idx3-ubyte" ]; then
    "$py" examples/mnist.py --device cuda --data-dir "$data" --no-download \
      --fast --ema --out "$out_dir/mnist_recommended"
    "$py" examples/mnist.py --device cuda --data-dir "$data" --no-download \
      --recipe --ema --out "$out_dir/mnist_recipe"
  else
    echo "no MNIST under $data: skipping the full-budget quality runs"
  fi
} 2>&1 | tee "$out"
