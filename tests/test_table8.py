"""`reproduce.py --table 8` measures inference time with bench/latency.py instead of training runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def test_table8_smoke_writes_latency_rows_beside_the_paper(tmp_path):
    done = subprocess.run([sys.executable, "reproduce.py", "--table", "8", "--profile", "smoke",
                           "--results-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "table8.csv")
    assert set(zip(table.method, table.path)) == {("mage", "eager"), ("mage", "optimised"), ("dt", "eager")}
    assert (table.mean_ms > 0).all() and (table.n_actions == 20).all()
    assert table.paper_ms[table.method == "mage"].eq(27.30).all()   # the paper's Table 8 beside ours
    assert "Table 8 latency on" in done.stdout


def test_table8_dry_run_names_the_benchmark_and_runs_nothing(tmp_path):
    done = subprocess.run([sys.executable, "reproduce.py", "--table", "8", "--profile", "smoke", "--dry-run",
                           "--results-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "bench/latency.py" in done.stdout
    assert not (tmp_path / "table8.csv").exists()
