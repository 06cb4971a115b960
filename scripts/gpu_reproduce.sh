#!/usr/bin/env bash
# Issue 8: Table 4 (Maze2D, Multi2D) and Table 24 (OGBench pointmaze-giant) on one lent GPU, then the
# speed benchmarks of issue 7. Run from the repo root:
#   [TABLES="4 24"] [DATASETS=a,b] [METHODS=a,b] [SEEDS=N] [BUDGET_S=seconds] [BENCH=1] [CPUS_PER_RUN=4] \
#     [GPUS_PER_RUN=0.25] [WORKERS=4] bash scripts/gpu_reproduce.sh [PROFILE]
# PROFILE defaults to h100-budget (harness/profiles.yaml). A lent machine runs one command for at most
# 10 minutes and starts bare each time, so a table takes several calls: BUDGET_S caps this call's
# training (runs still going then are lost: keep single runs well under it), DATASETS picks the rows
# of this call, and when $OUT is set (the device tool's return folder) every finished run's
# result.json, the tables and the logs are packed into $OUT/results.tgz. Unpack that here and carry
# `results/runs` into the next call: finished runs are never computed again.
# Four runs share the GPU (Ray: --gpus-per-run 0.25; without Ray: --workers 4 local processes); tables land
# in results/ and, with provenance, in results/reproduced/<plan>-<profile>/ (tracked: commit them).
# On a lent machine with no package index, carry .device-site (built by scripts/device_site.sh).
# Exit status: 0 all done; 1 some runs failed or not finished (tables still written and exported); else an error.
set -euo pipefail
profile="${1:-h100-budget}"
tables="${TABLES-4 24}"   # set but empty: no table (the benchmarks alone)
budget="${BUDGET_S:-0}"      # 0: no limit (timeout 0 runs the command unbounded)
cpus="${CPUS_PER_RUN:-4}"    # CPU threads per run: 4 runs share the lent machine's 16 cores
py="${PYTHON:-python3}"      # the lent image has python3 (the one with torch), maybe no `python`
rows="${DATASETS:+--datasets $DATASETS} ${METHODS:+--methods $METHODS} ${SEEDS:+--seeds $SEEDS}"

if [ -d .device-site ]; then
  export PYTHONPATH="$PWD/.device-site${PYTHONPATH:+:$PYTHONPATH}"
  export MUJOCO_GL=disable   # nothing here renders, and PyOpenGL (needed for egl/osmesa) is not carried
fi
# bench/run_gpu.sh calls `python`: make it this interpreter (a wrapper, not a symlink, so that a
# virtual environment's python still finds its own site-packages)
shim=$(mktemp -d); trap 'rm -rf "$shim"' EXIT
printf '#!/bin/sh\nexec %q "$@"\n' "$(command -v "$py")" >"$shim/python"
chmod +x "$shim/python"
export PATH="$shim:$PATH"

# (no nvidia-smi: a CPU rehearsal, as tests/test_gpu_script.py runs it)
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "nvidia-smi not found: no GPU, runs go to the CPU"
# fail in seconds, not after the training, when a package is missing
"$py" -c "import torch, gymnasium_robotics, minari, ogbench.locomaze, mujoco, diffusers, pandas
from rliable import library
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| mujoco', mujoco.__version__, '| pandas', pandas.__version__)"

pack() {   # finished runs, tables and logs (no checkpoints: too big to bring back) into $OUT
  [ -n "${OUT:-}" ] || return 0
  { find results/runs \( -name result.json -o -name failure.json \) 2>/dev/null || true
    find results -maxdepth 1 -type f
    find results/logs results/reproduced -type f 2>/dev/null || true; } | tar czf "$OUT/results.tgz" -T -
  echo "packed $(tar tzf "$OUT/results.tgz" | grep -c result.json || true) finished runs into \$OUT/results.tgz"
}

status=0
for table in $tables; do
  base="$py reproduce.py --table $table --profile $profile --gpus-per-run ${GPUS_PER_RUN:-0.25} --quiet $rows"
  if "$py" -c "import ray" 2>/dev/null; then
    rc=0; timeout "$budget" $base --cpus-per-run "$cpus" || rc=$?
    if [ "$rc" -gt 1 ] && [ "$rc" -ne 124 ]; then pack; exit "$rc"; fi
  else
    # No Ray (its wheel is too big to carry): the same sharing of the GPU and the cores by WORKERS
    # local worker processes, one run each at a time (reproduce.py --workers); logs in results/logs/
    logs="results/logs/table$table-$profile"
    mkdir -p "$logs"
    rc=0; timeout "$budget" $base --executor local --workers "${WORKERS:-4}" --cpus-per-run "$cpus" \
      >"$logs/local.log" 2>&1 || rc=$?
    echo "table $table: exit $rc (1: some runs failed; 124: stopped at BUDGET_S; log: $logs/local.log)"
    if [ "$rc" -gt 1 ] && [ "$rc" -ne 124 ]; then tail -n 20 "$logs/local.log"; pack; exit "$rc"; fi
  fi
  # The whole table (all rows, not only this call's) from every run finished so far: unfinished
  # cells show as missing, and the next call runs them
  cmd="$py reproduce.py --table $table --profile $profile --quiet --report-only ${SEEDS:+--seeds $SEEDS}"
  rc=0; $cmd || rc=$?
  if [ "$rc" -gt 1 ]; then pack; exit "$rc"; fi
  if [ "$rc" -eq 1 ]; then status=1; fi
  "$py" -m harness.export --plan "table$table" --profile "$profile" --command "$base"
done
pack
if [ "${BENCH:-1}" = 1 ]; then bash bench/run_gpu.sh results/reproduced/bench-cuda; fi
exit "$status"
