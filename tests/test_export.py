"""harness.export: a finished table goes to results/reproduced/ with the provenance of its own runs."""
from __future__ import annotations

import json

from harness.export import export


def _result(runs_dir, run_id, method, dataset, profile, gpu_seconds):
    (runs_dir / run_id).mkdir(parents=True)
    (runs_dir / run_id / "result.json").write_text(json.dumps(
        {"method": method, "dataset": dataset, "profile": profile, "device": "cuda",
         "gpu_seconds": gpu_seconds, "wall_s": gpu_seconds}))


def test_provenance_counts_only_the_plans_runs(tmp_path):
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "table4.md").write_text("| table |\n")
    _result(results / "runs", "a", "mage", "maze2d-umaze", "h100-budget", 100.0)
    _result(results / "runs", "b", "iql", "multi2d-large", "h100-budget", 50.0)
    _result(results / "runs", "c", "mage", "pointmaze-giant", "h100-budget", 999.0)   # Table 24's
    _result(results / "runs", "d", "mage", "maze2d-umaze", "smoke", 7.0)               # another profile
    out = export("table4", "h100-budget", "python reproduce.py --table 4", results, tmp_path / "reproduced")
    provenance = json.loads((out / "provenance.json").read_text())
    assert out.name == "table4-h100-budget" and (out / "table4.md").exists()
    assert provenance["runs"] == 2 and provenance["gpu_seconds_total"] == 150.0
    assert provenance["command"] == "python reproduce.py --table 4" and provenance["devices"] == ["cuda"]
