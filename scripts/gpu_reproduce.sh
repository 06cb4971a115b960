#!/usr/bin/env bash
# Issue 8: Table 4 (Maze2D, Multi2D) and Table 24 (OGBench pointmaze-giant) on one lent H100,
# within its ~30 minutes of device time, then the speed benchmarks of issue 7. Run from the repo root:
#   bash scripts/gpu_reproduce.sh [PROFILE]      (default PROFILE: h100-budget, see harness/profiles.yaml)
# Four runs share the GPU (--gpus-per-run 0.25); tables land in results/ and, with provenance,
# in results/reproduced/<plan>-<profile>/ (tracked: commit them).
set -euo pipefail
profile="${1:-h100-budget}"
nvidia-smi --query-gpu=name,memory.total --format=csv
for table in 4 24; do
  cmd="python reproduce.py --table $table --profile $profile --gpus-per-run 0.25 --cpus-per-run 4 --quiet"
  $cmd || [ $? -eq 1 ]          # exit 1 = some runs failed: the table is still written, failed cells marked
  python -m harness.export --plan "table$table" --profile "$profile" --command "$cmd"
done
bash bench/run_gpu.sh results/reproduced/bench-cuda
