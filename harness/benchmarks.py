"""Plans measured by a benchmark instead of training runs (Table 8: inference time).

The benchmark script does the measuring; this module picks its settings per profile, runs it as
a subprocess (bench/ is a folder of scripts, not a package) and keeps its table in the results
folder, written atomically by the script's --out and printed as the script prints it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.plan import Plan

REPO_ROOT = Path(__file__).resolve().parent.parent

# Per profile: how long to measure. smoke times MAGE's smoke-size model so it stays a first look
# on a laptop CPU; quick and paper time the paper's Adroit configuration, as Table 8 does.
BENCH_ARGS: dict[str, list[str]] = {
    "smoke": ["--batch-sizes", "1", "--n-actions", "20", "--warmup", "3", "--methods", "mage", "dt",
              "--mage-profile", "smoke"],
    "quick": ["--batch-sizes", "1", "100", "--n-actions", "50", "--methods", "mage", "dt"],
    "paper": ["--batch-sizes", "1", "100", "--n-actions", "200"],
}


def benchmark_command(plan: Plan, profile: str, results_dir: Path, device: str) -> list[str]:
    """The command that measures ``plan`` for ``profile`` on ``device``, its CSV at results_dir/<plan>.csv."""
    script = REPO_ROOT / plan.benchmark
    if not script.exists():
        raise ValueError(f"plan {plan.name} names benchmark {plan.benchmark}, which does not exist")
    out = results_dir / f"{plan.name}.csv"
    return [sys.executable, str(script), "--device", device, "--out", str(out), *BENCH_ARGS[profile]]


def run_benchmark_plan(plan: Plan, profile: str, results_dir: Path, device: str) -> int:
    """Run ``plan.benchmark``; returns the script's exit code (0 done, 2 bad input)."""
    command = benchmark_command(plan, profile, results_dir, device)
    results_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=REPO_ROOT).returncode
