"""End-to-end sweeps of reproduce.py on real generated maze2d-umaze data with the toy agent:
a Ray sweep killed with SIGKILL midway and resumed, against an uninterrupted local sweep;
the local sweep in worker processes (--workers); a corrupt result.json redone."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from harness.cli import main
from suites.registry import dataset_spec
from tests.harness_support import (checkpoint_step, fit_events, fit_start_steps, harness_env, reproduce, results,
                                   scalars, start_reproduce, write_plans)

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
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _wait_until_orphans_settle(resumed_dir / "runs")
    finished_before_kill = set(results(resumed_dir / "runs"))
    # (tag, seed) -> step of its checkpoint, for every run started but not finished at the kill
    checkpoints_at_kill = {key: checkpoint_step(resumed_dir / "runs" / run_id)
                           for run_id, key in _started_runs(resumed_dir / "runs").items()
                           if run_id not in finished_before_kill}
    events_before_kill = fit_events(root / "ray_fit.log")
    resumed = reproduce([*SWEEP, "--results-dir", str(resumed_dir)], env)

    local_env = harness_env(root / "plans", root / "local_fit.log")
    uninterrupted = reproduce([*SWEEP, "--executor", "local", "--results-dir", str(root / "uninterrupted")], local_env)
    return {"root": root, "env": local_env, "resumed": resumed, "uninterrupted": uninterrupted,
            "finished_before_kill": finished_before_kill, "events_before_kill": events_before_kill,
            "checkpoints_at_kill": checkpoints_at_kill}


def _wait_until_orphans_settle(runs_dir: Path, quiet_s: float = 3.0, limit_s: float = 60.0) -> None:
    """Ray workers outlive a SIGKILLed driver for a moment and may still write a checkpoint or a
    result; wait until nothing under ``runs_dir`` has changed for ``quiet_s`` seconds."""
    def snapshot():
        return sorted((str(p), p.stat().st_mtime_ns) for p in runs_dir.rglob("*") if p.is_file())
    last, quiet_since, deadline = snapshot(), time.time(), time.time() + limit_s
    while time.time() - quiet_since < quiet_s and time.time() < deadline:
        time.sleep(0.5)
        now = snapshot()
        if now != last:
            last, quiet_since = now, time.time()


def _started_runs(runs_dir: Path) -> dict[str, tuple[str, str]]:
    """run id -> (tag, seed) for every run folder with a checkpoint (the toy agent stores both)."""
    import torch
    started = {}
    for path in runs_dir.glob("*/checkpoint.pt"):
        state = torch.load(path, weights_only=False)["agent"]
        started[path.parent.name] = (state["config"]["tag"], str(state["seed"]))
    return started


def test_killed_ray_sweep_resumes_without_recomputing(sweeps):
    root = sweeps["root"]
    assert 1 <= len(sweeps["finished_before_kill"]) < 4, "the driver was not killed midway through the sweep"
    assert sweeps["resumed"].returncode == 0, sweeps["resumed"].stderr[-2000:]
    finished = results(root / "resumed" / "runs")
    assert len(finished) == 4 and len(list((root / "resumed" / "runs").iterdir())) == 4
    events = fit_events(root / "ray_fit.log")
    assert {(tag, seed) for _, tag, seed in events} == RUNS
    # runs finished before the kill were not started again by the second invocation
    for run_id in sweeps["finished_before_kill"]:
        tag, seed = finished[run_id]["config"]["tag"], str(finished[run_id]["seed"])
        assert events["start", tag, seed] == sweeps["events_before_kill"]["start", tag, seed] == 1
    # a run interrupted by the kill was taken up once more, from its own checkpoint, not from scratch
    starts = fit_start_steps(root / "ray_fit.log")
    for key, step in sweeps["checkpoints_at_kill"].items():
        assert starts[key] == [0, step], f"run {key} started at steps {starts[key]}, its checkpoint held {step}"
    for key in RUNS - set(sweeps["checkpoints_at_kill"]):
        assert starts[key][0] == 0 and len(starts[key]) <= 2   # not started, or killed before its first checkpoint


def test_resumed_table_equals_uninterrupted_table(sweeps):
    root = sweeps["root"]
    assert sweeps["uninterrupted"].returncode == 0, sweeps["uninterrupted"].stderr[-2000:]
    resumed, uninterrupted = results(root / "resumed" / "runs"), results(root / "uninterrupted" / "runs")
    assert resumed.keys() == uninterrupted.keys()
    for run_id in resumed:
        assert resumed[run_id]["normalized"] == uninterrupted[run_id]["normalized"]
        assert len(resumed[run_id]["normalized"]) == 4
        assert max(resumed[run_id]["lengths"]) <= dataset_spec("maze2d-umaze").horizon
    # the same table; the lines naming the written files differ by their folder only
    assert (sweeps["resumed"].stdout.replace(str(root / "resumed"), "RESULTS")
            == sweeps["uninterrupted"].stdout.replace(str(root / "uninterrupted"), "RESULTS"))
    assert "Toy A" in sweeps["resumed"].stdout and "Toy B" in sweeps["resumed"].stdout
    assert (root / "resumed" / "table901.csv").read_text() == (root / "uninterrupted" / "table901.csv").read_text()


def test_killed_runs_tensorboard_curves_go_on_from_their_checkpoints(sweeps):
    """Runs killed midway (SIGKILL, no clean-up) and resumed show, in TensorBoard, every step once
    with the uninterrupted run's values: what the killed attempt wrote after its checkpoint is purged."""
    root = sweeps["root"]
    interrupted = {run_id for run_id, key in _started_runs(root / "resumed" / "runs").items()
                   if key in sweeps["checkpoints_at_kill"]}
    for run_id in results(root / "uninterrupted" / "runs"):
        resumed, whole = scalars(root / "resumed" / "runs" / run_id), scalars(root / "uninterrupted" / "runs" / run_id)
        for tag in ("loss", "lr/optimizer", "eval/score"):
            assert [step for step, _ in resumed[tag]] == [step for step, _ in whole[tag]], (run_id, tag)
            assert resumed[tag] == whole[tag], (run_id, tag)
        if run_id in interrupted:   # two attempts: two event files, read as one curve
            assert len(list((root / "resumed" / "runs" / run_id).glob("events.out.tfevents.*"))) == 2


def test_result_json_records_the_run(sweeps):
    result = next(iter(results(sweeps["root"] / "uninterrupted" / "runs").values()))
    assert result["dataset"] == "maze2d-umaze" and result["method"] == "toy" and result["steps"] == 200
    assert result["device"] == "cpu" and result["gpu_seconds"] == 0.0 and result["wall_s"] > 0
    assert result["score"] == pytest.approx(sum(result["normalized"]) / len(result["normalized"]))
    assert [point[0] for point in result["training_curves"]["loss"]][-1] == 200
    assert {"torch", "ray", "minari"} <= result["versions"].keys() and result["git_commit"]


def test_local_workers_give_the_sequential_sweeps_runs(sweeps):
    """--workers 2: every run once, each in a worker process, with the sequential sweep's results."""
    root = sweeps["root"]
    env = harness_env(root / "plans", root / "workers_fit.log")
    run = reproduce([*SWEEP, "--executor", "local", "--workers", "2", "--results-dir", str(root / "workers")], env)
    assert run.returncode == 0, run.stderr[-2000:]
    in_workers, sequential = results(root / "workers" / "runs"), results(root / "uninterrupted" / "runs")
    assert in_workers.keys() == sequential.keys() and len(in_workers) == 4
    for run_id in in_workers:
        assert in_workers[run_id]["normalized"] == sequential[run_id]["normalized"]
    events = fit_events(root / "workers_fit.log")
    assert {(tag, seed) for _, tag, seed in events} == RUNS
    assert all(events["start", tag, seed] == 1 for tag, seed in RUNS)
    assert (root / "workers" / "table901.csv").read_text() == (root / "uninterrupted" / "table901.csv").read_text()
    # run again: nothing is computed twice
    assert reproduce([*SWEEP, "--executor", "local", "--workers", "2", "--results-dir", str(root / "workers")],
                     env).returncode == 0
    assert fit_events(root / "workers_fit.log") == events


def test_corrupt_result_json_is_redone(sweeps, monkeypatch):
    """One result.json cut in half, another with a field of the wrong type: both runs are redone."""
    runs_dir = sweeps["root"] / "uninterrupted" / "runs"
    (truncated_id, truncated), (broken_id, broken) = sorted(results(runs_dir).items())[:2]
    path = runs_dir / truncated_id / "result.json"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    (runs_dir / broken_id / "result.json").write_text(json.dumps({**broken, "normalized": "not a list"}))
    events_before = fit_events(sweeps["root"] / "local_fit.log")
    for key, value in sweeps["env"].items():
        monkeypatch.setenv(key, value)
    assert main([*SWEEP, "--executor", "local", "--quiet", "--results-dir", str(runs_dir.parent)]) == 0
    redone = results(runs_dir)
    assert len(redone) == 4
    assert redone[truncated_id]["normalized"] == truncated["normalized"]
    assert redone[broken_id]["normalized"] == broken["normalized"]
    # each damaged run was taken up again (from its final checkpoint: one fit call that trains no step)
    new_events = fit_events(sweeps["root"] / "local_fit.log") - events_before
    assert sum(new_events.values()) == 4
    for run in (truncated, broken):
        assert new_events["start", run["config"]["tag"], str(run["seed"])] == 1
