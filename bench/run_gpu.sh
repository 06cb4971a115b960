#!/usr/bin/env bash
# Issue 7's GPU measurements in one go (run from the repository root on a CUDA machine):
#   bash bench/run_gpu.sh [OUT_DIR]      (default OUT_DIR: results/bench)
# Prints Table 8 latency (MAGE paper size, DT, Diffuser; B=1 and B=100; eager and optimised),
# the same for MAGE's smoke size, MAGE's stage-2 training throughput at batch 512 against a plain
# transformer, and runs the CUDA equivalence tests. CSVs land in OUT_DIR.
set -euo pipefail
out="${1:-results/bench}"
mkdir -p "$out"
python -m pytest -q -p no:cacheprovider tests/test_fast_act.py
python bench/latency.py --device cuda --batch-sizes 1 100 --n-actions 300 --methods mage dt --out "$out/table8_cuda.csv"
python bench/latency.py --device cuda --batch-sizes 1 100 --n-actions 300 --methods mage --mage-profile smoke --out "$out/latency_smoke_cuda.csv"
python bench/train_throughput.py --device cuda --batch-size 512 --steps 50 --out "$out/train_cuda.csv"
# Diffuser last: 64 value-guided plans x 20 denoising steps per action; 200 actions at B=100 take minutes
python bench/latency.py --device cuda --batch-sizes 1 100 --n-actions 200 --warmup 3 --methods diffuser --out "$out/table8_diffuser_cuda.csv"
