"""End-to-end sweeps of reproduce.py on real generated maze2d-umaze data with the toy agent:
a Ray sweep killed with SIGKILL midway and resumed, against an uninterrupted local sweep;
a corrupt result.json redone."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.harness_support import fit_events, harness_env, reproduce, results, start_reproduce, write_plans

SWEEP = ["--table", "901", "--profile", "smoke", "--seeds", "2"]
RUNS = {(tag, str(seed)) for tag in ("a", "b") for seed in (0, 1)}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """A Ray sweep killed midway then resumed, and the same sweep uninterrupted on the local executor."""
    root = tmp_path_factory.mktemp("sweeps")
    env = harness_env(write_plans(root / "plans"), root / "ray_fit.log")
    resumed_dir = root / "resumed"

    driver = start_reproduce([*SWEEP, "--results-dir", str(resumed_dir)], env)
    deadline = time.time() + 150
    while time.time() < deadline and driver.poll() is None and not results(resumed_dir / "runs"):
        time.sleep(0.1)
    finished_before_kill = set(results(resumed_dir / "runs"))
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    events_before_kill = fit_events(root / "ray_fit.log")
    resumed = reproduce([*SWEEP, "--results-dir", str(resumed_dir)], env)

    local_env = harness_env(root / "plans", root / "local_fit.log")
    uninterrupted = reproduce([*SWEEP, "--executor", "local", "--results-dir", str(root / "uninterrupted")], local_env)
    return {"root": root, "env": local_env, "resumed": resumed, "uninterrupted": uninterrupted,
            "finished_before_kill": finished_before_kill, "events_before_kill": events_before_kill}


def test_killed_ray_sweep_resumes_without_recomputing(sweeps):
    root = sweeps["root"]
    assert 1 <= len(sweeps["finished_before_kill"]) < 4, "the driver was not killed midway through the sweep"
    assert sweeps["resumed"].returncode == 0, sweeps["resumed"].stderr[-2000:]
    finished = results(root / "resumed" / "runs")
    assert len(finished) == 4 and len(list((root / "resumed" / "runs").iterdir())) == 4
    events = fit_events(root / "ray_fit.log")
    assert {(tag, seed) for _, tag, seed in events} == RUNS
    for tag, seed in RUNS:
        assert events["end", tag, seed] == 1, f"run {tag}/{seed} was trained to the end {events['end', tag, seed]} times"
    # runs finished before the kill were not started again by the second invocation
    for run_id in sweeps["finished_before_kill"]:
        tag, seed = finished[run_id]["config"]["tag"], str(finished[run_id]["seed"])
        assert events["start", tag, seed] == sweeps["events_before_kill"]["start", tag, seed] == 1


def test_resumed_table_equals_uninterrupted_table(sweeps):
    root = sweeps["root"]
    assert sweeps["uninterrupted"].returncode == 0, sweeps["uninterrupted"].stderr[-2000:]
    resumed, uninterrupted = results(root / "resumed" / "runs"), results(root / "uninterrupted" / "runs")
    assert resumed.keys() == uninterrupted.keys()
    for run_id in resumed:
        assert resumed[run_id]["normalized"] == uninterrupted[run_id]["normalized"]
        assert len(resumed[run_id]["normalized"]) == 4 and max(resumed[run_id]["lengths"]) <= 100
    assert sweeps["resumed"].stdout == sweeps["uninterrupted"].stdout
    assert "Toy A" in sweeps["resumed"].stdout and "Toy B" in sweeps["resumed"].stdout
    assert (root / "resumed" / "table901.csv").read_text() == (root / "uninterrupted" / "table901.csv").read_text()


def test_result_json_records_the_run(sweeps):
    result = next(iter(results(sweeps["root"] / "uninterrupted" / "runs").values()))
    assert result["dataset"] == "maze2d-umaze" and result["method"] == "toy" and result["steps"] == 200
    assert result["device"] == "cpu" and result["gpu_seconds"] == 0.0 and result["wall_s"] > 0
    assert result["score"] == pytest.approx(sum(result["normalized"]) / len(result["normalized"]))
    assert [point[0] for point in result["training_curves"]["loss"]][-1] == 200
    assert {"torch", "ray", "minari"} <= result["versions"].keys() and result["git_commit"]


@pytest.mark.parametrize("damage", ["truncate", "schema"])
def test_corrupt_result_json_is_redone(sweeps, damage):
    runs_dir = sweeps["root"] / "uninterrupted" / "runs"
    run_id, before = sorted(results(runs_dir).items())[0]
    path = runs_dir / run_id / "result.json"
    if damage == "truncate":
        path.write_text(path.read_text()[: len(path.read_text()) // 2])
    else:
        path.write_text(json.dumps({**before, "normalized": "not a list"}))
    events_before = fit_events(sweeps["root"] / "local_fit.log")
    again = reproduce([*SWEEP, "--executor", "local", "--results-dir", str(runs_dir.parent)], sweeps["env"])
    assert again.returncode == 0, again.stderr[-2000:]
    redone = json.loads(path.read_text())
    assert redone["normalized"] == before["normalized"]
    new_events = fit_events(sweeps["root"] / "local_fit.log") - events_before
    assert sum(new_events.values()) == 2 and new_events["start", before["config"]["tag"], str(before["seed"])] == 1
