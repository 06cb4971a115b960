"""One run in-process on real generated maze2d-umaze data: figure runs keep the first 3 evaluation
episodes' observation trajectories; a checkpointed run resumes to the same result."""
from __future__ import annotations

import numpy as np
import pytest

from harness.runs import RECORDED_EPISODES, RunSpec, execute_run
from harness.store import RunStore


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch):
    monkeypatch.setenv("MAGE_HARNESS_EXTRA_METHODS", "toy=tests.toy_agent:ToyAgent")


def _spec(**changes) -> RunSpec:
    fields = dict(method="toy", dataset="maze2d-umaze", seed=0, config={}, steps=40, profile="smoke",
                  eval_episodes=4, eval_max_steps=30, checkpoint_every=20)
    return RunSpec(**{**fields, **changes})


def test_figure_runs_record_observation_trajectories(tmp_path):
    store = RunStore(tmp_path)
    spec = _spec(record_trajectories=True)
    assert execute_run(spec, store) == "done"
    result = store.result(spec.run_id)
    trajectories = result["trajectories"]
    assert len(trajectories) == RECORDED_EPISODES
    for episode, observations in enumerate(trajectories):
        observations = np.asarray(observations)
        assert observations.shape[0] == result["lengths"][episode] and observations.ndim == 2
    plain = _spec()
    assert execute_run(plain, store) == "done" and "trajectories" not in store.result(plain.run_id)


def test_a_run_records_the_commit_it_started_from(tmp_path, monkeypatch):
    # HEAD moves once per training step here; the result must name the commit seen before training
    steps_seen: list[int] = []
    monkeypatch.setattr("harness.runs.git_commit", lambda: f"commit-{len(steps_seen)}")
    store = RunStore(tmp_path)
    spec = _spec()
    assert execute_run(spec, store, on_progress=lambda step, total: steps_seen.append(step)) == "done"
    assert len(steps_seen) > 0 and store.result(spec.run_id)["git_commit"] == "commit-0"


def test_run_resumed_from_its_checkpoint_matches_an_uninterrupted_run(tmp_path):
    whole, resumed = RunStore(tmp_path / "whole"), RunStore(tmp_path / "resumed")
    spec = _spec()
    assert execute_run(spec, whole) == "done"
    # stop the run at step 25 (checkpoint at 20) by a failing hook, then run it again
    def stop_at_25(step, total):
        if step == 25:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, resumed, stop_at_25)
    assert (tmp_path / "resumed" / spec.run_id / "checkpoint.pt").exists()
    assert execute_run(spec, resumed) == "done"
    assert resumed.result(spec.run_id)["normalized"] == whole.result(spec.run_id)["normalized"]
    assert resumed.result(spec.run_id)["training_curves"] == whole.result(spec.run_id)["training_curves"]


def _mage_spec(**changes) -> RunSpec:
    from tests.mage_fixtures import TEST_CONFIG
    config = {**TEST_CONFIG, "dropout": 0.1}   # dropout and Gumbel noise draw from torch's RNG while training
    return _spec(method="mage", config=config, steps=40, eval_episodes=3, **changes)


def _diffuser_spec(**changes) -> RunSpec:
    from tests.test_diffuser import TINY        # its act samples noise from the agent's training RNG
    return _spec(method="diffuser", config=TINY, steps=40, eval_episodes=3, **changes)


def _noisy_toy_spec(**changes) -> RunSpec:
    return _spec(config={"act_noise": 0.3}, **changes)


@pytest.mark.parametrize("make_spec", [_mage_spec, _diffuser_spec, _noisy_toy_spec], ids=["mage", "diffuser", "toy"])
def test_periodic_evaluations_leave_training_and_the_final_score_unchanged(tmp_path, make_spec):
    plain, watched = make_spec(), make_spec(periodic_evals=4, periodic_episodes=2)
    assert plain.run_id == watched.run_id        # bookkeeping only: the same run
    store_plain, store_watched = RunStore(tmp_path / "plain"), RunStore(tmp_path / "watched")
    assert execute_run(plain, store_plain) == execute_run(watched, store_watched) == "done"
    a, b = store_plain.result(plain.run_id), store_watched.result(watched.run_id)
    assert a["eval_curve"] == []
    # MAGE (tokenizer_fraction 0.5, no stage 0) trains no part of its policy before step 20: evaluations after it
    expected = [25, 30, 35, 40] if plain.method == "mage" else [10, 20, 30, 40]
    assert [point["step"] for point in b["eval_curve"]] == expected
    assert all(point["episodes"] == 2 and np.isfinite(point["score"]) for point in b["eval_curve"])
    assert b["normalized"] == a["normalized"]
    assert b["training_curves"] == a["training_curves"]


def test_a_resumed_run_continues_its_periodic_curve(tmp_path):
    spec = _mage_spec(periodic_evals=4, periodic_episodes=2)
    whole, resumed = RunStore(tmp_path / "whole"), RunStore(tmp_path / "resumed")
    assert execute_run(spec, whole) == "done"

    def stop_at_30(step, total):   # after the evaluations at 25 and 30; the last checkpoint (20) has neither
        if step == 30:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, resumed, stop_at_30)
    assert execute_run(spec, resumed) == "done"
    curve = resumed.result(spec.run_id)["eval_curve"]
    assert [point["step"] for point in curve] == [25, 30, 35, 40]
    assert curve == whole.result(spec.run_id)["eval_curve"]


def test_periodic_evaluations_start_where_the_policy_starts_learning():
    """Spread over the steps after the method's first_policy_step (MAGE: after stage 0's critic and stage 1's
    tokenizer), the last at the final step; a method without stages starts at 0."""
    from harness.config import first_policy_step
    from harness.runs import periodic_eval_steps
    assert periodic_eval_steps(100, 4) == [25, 50, 75, 100]
    assert periodic_eval_steps(100, 4, first_policy_step=60) == [70, 80, 90, 100]
    assert periodic_eval_steps(100, 10, first_policy_step=97) == [98, 99, 100]      # no more than the steps left
    assert periodic_eval_steps(100, 3, first_policy_step=500) == [100]              # a start past the end
    assert periodic_eval_steps(100, 0, first_policy_step=60) == []
    mage = {"value_steps": 20_000, "target_rule": "td", "tokenizer_fraction": 0.5}
    assert first_policy_step("mage", mage, 26_000) == 23_000                     # 20,000 + 0.5 * 6,000
    assert first_policy_step("mage", {}, 30_000) == 10_000                       # a third to the tokenizer
    assert first_policy_step("iql", {}, 30_000) == 0


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_honour_the_umask(tmp_path, umask):
    """result.json, checkpoint.pt, failure.json, the table files and the plot are as readable as a plain
    open() would make them (0644 under umask 022), not 0600 as a temporary file is created."""
    import os
    import stat

    from harness.aggregate import render
    from harness.plan import Column, Plan, Row
    from harness.store import runs_frame

    plan = Plan(name="ablation_modes", kind="ablation", title="Modes", paper_table=None, spread="se",
                rows=(Row("Maze2D U-maze", "maze2d-umaze", "Maze2D U-maze"),), columns=(Column("Toy", "toy"),))
    store, spec, nan_spec = RunStore(tmp_path / "runs"), _spec(), _spec(config={"nan_at_step": 3})
    previous = os.umask(umask)
    try:
        assert execute_run(spec, store) == "done" and execute_run(nan_spec, store) == "failed"
        render(plan, runs_frame(plan.name, [("Maze2D U-maze", "Toy", spec)], store), tmp_path / "tables")
    finally:
        os.umask(previous)
    written = [store.run_dir(spec.run_id) / "result.json", store.run_dir(spec.run_id) / "checkpoint.pt",
               store.run_dir(nan_spec.run_id) / "failure.json",
               *(tmp_path / "tables" / f"ablation_modes.{suffix}" for suffix in ("csv", "md", "tex", "png"))]
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == \
        {path.name: oct(0o666 & ~umask) for path in written}
    assert not [p for p in tmp_path.rglob(".*.tmp")]   # no temporary file left behind
