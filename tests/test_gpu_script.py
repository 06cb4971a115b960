"""scripts/gpu_reproduce.sh as a lent GPU machine runs it, rehearsed on the CPU: no Ray (its wheel
is not carried there), so the plan's runs go to local worker processes (--workers), and no tensorboardX,
so they write no TensorBoard files; the table, its export with provenance and the packed results
come back; a second call computes nothing again."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import yaml

from tests.harness_support import DATASET, REPO_ROOT, fit_events

PLAN = {"name": "table905", "kind": "table", "title": "GPU script rehearsal", "paper_table": None,
        "rows": [{"label": "Maze2D U-maze", "dataset": DATASET}],
        "columns": [{"label": "IQL", "method": "iql"}, {"label": "Toy", "method": "toy"},
                    {"label": "BC", "method": "bc"}]}


def _workspace(tmp_path):
    """A folder that looks like the repo root to the script (its code linked, its own results/)."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("reproduce.py", "harness", "suites", "mage", "baselines", "bench", "scripts", "tests"):
        (work / name).symlink_to(REPO_ROOT / name)
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "table905.yaml").write_text(yaml.safe_dump(PLAN))
    absent = tmp_path / "absent"   # `import ray` and `import tensorboardX` fail, as on the lent machine
    for package in ("ray", "tensorboardX"):
        (absent / package).mkdir(parents=True)
        (absent / package / "__init__.py").write_text(f"raise ImportError('{package} is not on the lent machine')\n")
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(absent),
           "MAGE_PLANS_DIR": str(plans), "MAGE_HARNESS_EXTRA_METHODS": "toy=tests.toy_agent:ToyAgent",
           "MAGE_TOY_FIT_LOG": str(tmp_path / "fit.log"), "TABLES": "905", "BENCH": "0",
           "GPUS_PER_RUN": "0", "CPUS_PER_RUN": "1", "OUT": str(tmp_path / "out")}
    (tmp_path / "out").mkdir()
    return work, env


def _call(work, env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/gpu_reproduce.sh", "smoke"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)


def test_gpu_script_without_ray_runs_packs_and_resumes(tmp_path):
    work, env = _workspace(tmp_path)
    first = _call(work, env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "table 905: exit 0" in first.stdout

    with tarfile.open(tmp_path / "out" / "results.tgz") as packed:
        names = packed.getnames()
        provenance = json.load(packed.extractfile("results/reproduced/table905-smoke/provenance.json"))
    finished = sorted(name.split("/")[2].split("-")[0] for name in names if name.endswith("result.json"))
    assert finished == ["bc", "iql", "toy"]
    assert "results/table905.csv" in names and "results/logs/table905-smoke/local.log" in names
    assert provenance["runs"] == 3 and provenance["devices"] == ["cpu"]
    table = (work / "results" / "table905.md").read_text()
    assert "missing" not in table and "failed" not in table
    # no tensorboardX: the runs write no TensorBoard files, and each worker process says so once
    assert not list((work / "results" / "runs").glob("*/events.out.tfevents.*"))
    log = (work / "results" / "logs" / "table905-smoke" / "local.log").read_text()
    assert 1 <= log.count("live metrics off: tensorboardX is not installed") <= 3

    results = {p: p.stat().st_mtime_ns for p in (work / "results" / "runs").glob("*/result.json")}
    second = _call(work, env)   # the next device call: results/runs carried, nothing trained again
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert fit_events(tmp_path / "fit.log") == {("start", "-", "0"): 1, ("end", "-", "0"): 1}
    assert {p: p.stat().st_mtime_ns for p in (work / "results" / "runs").glob("*/result.json")} == results
