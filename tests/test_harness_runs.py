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
