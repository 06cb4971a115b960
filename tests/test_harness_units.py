"""Harness pieces on their own: override parsing, config precedence, run ids, the results store."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from harness.config import check_plan_configs, check_types, parse_overrides, resolve_config
from harness.runs import RunSpec
from harness.store import RunStore, runs_frame, valid_result


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch):
    monkeypatch.setenv("MAGE_HARNESS_EXTRA_METHODS", "toy=tests.toy_agent:ToyAgent")


def test_overrides_are_yaml_typed():
    parsed = parse_overrides(["toy.lr=1e-3", "toy.batch_size=32", "toy.tag=x", "toy.nan_at_step=null",
                              "mage.scales=[1, 2, 4]", "mage.rtg_in_decoder=false"])
    assert parsed == {"toy": {"lr": 1e-3, "batch_size": 32, "tag": "x", "nan_at_step": None},
                      "mage": {"scales": [1, 2, 4], "rtg_in_decoder": False}}
    for bad in ["bogus", "toy=1", ".lr=1", "toy.=1", "toy.lr=[1,"]:
        with pytest.raises(ValueError):
            parse_overrides([bad])


def test_config_precedence_last_wins():
    spec = SimpleNamespace(suite="maze2d", hparams={"toy": {"lr": 0.1, "batch_size": 8, "tag": "suite"}})
    config, steps = resolve_config("toy", spec, "smoke", {"batch_size": 16, "tag": "column"}, {"tag": "cli"})
    assert config == {"lr": 0.1, "batch_size": 16, "tag": "cli"} and steps == 200
    config, steps = resolve_config("toy", spec, "quick", {}, {"steps": 7})
    assert steps == 7 and "steps" not in config


def test_override_types_follow_the_config_annotations():
    from baselines.diffuser import DiffuserConfig
    from mage.config import MageConfig
    check_types(MageConfig, {"num_scales": 4, "lr": 1, "rtg_discount": None, "scale_schedule": [1, 2, 8],
                             "rtg_in_decoder": False, "scheme": "rs"})
    check_types(DiffuserConfig, {"goal_xy": [-1, 1.5], "dim_mults": [1, 2], "goal_obs_slice": None})
    for config_type, key, value, allowed in [
            (MageConfig, "num_scales", "abc", "an integer"), (MageConfig, "num_scales", True, "an integer"),
            (MageConfig, "num_scales", 4.5, "an integer"), (MageConfig, "lr", "fast", "a number"),
            (MageConfig, "rtg_in_decoder", 1, "true or false"), (MageConfig, "rtg_discount", "x", "a number or null"),
            (MageConfig, "scale_schedule", [1, "a"], "a list of integers or null"),
            (DiffuserConfig, "goal_xy", 3.0, "a list of numbers or null")]:
        with pytest.raises(ValueError, match="^" + re.escape(f"{key}={value!r}: {key} takes {allowed}") + "$"):
            check_types(config_type, {key: value})


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_every_shipped_plan_builds_its_configs(profile):
    """Every (method, dataset) config of every plan passes the type and range checks the command line
    runs before any work. (quick and cpu, which use quick's models, are left out: Table 18's Diffuser gets
    the quick horizon 64, which its value function cannot take; the command says so and
    --set diffuser.horizon=32 runs it.)"""
    from harness.plan import available_plans, load_plan
    from harness.profiles import load_profile
    for name in available_plans():
        check_plan_configs(load_plan(name), load_profile(profile).agent_size, {})


def _spec(**changes) -> RunSpec:
    fields = dict(method="toy", dataset="maze2d-umaze", seed=0, config={"lr": 0.01}, steps=200, profile="smoke",
                  eval_episodes=4, eval_max_steps=100)
    return RunSpec(**{**fields, **changes})


def test_run_id_is_stable_and_covers_what_decides_the_outcome():
    assert _spec().run_id == _spec(device="cuda", checkpoint_every=5).run_id == RunSpec.from_dict(_spec().to_dict()).run_id
    others = [_spec(seed=1), _spec(config={"lr": 0.02}), _spec(steps=201), _spec(profile="quick"),
              _spec(eval_episodes=5), _spec(eval_max_steps=None), _spec(dataset="maze2d-large"),
              _spec(record_trajectories=True)]
    assert len({spec.run_id for spec in [_spec(), *others]}) == 1 + len(others)


def _result(run_id: str) -> dict:
    return {"run_id": run_id, "method": "toy", "dataset": "maze2d-umaze", "seed": 0, "profile": "smoke",
            "config": {}, "steps": 200, "returns": [1.0, 2.0], "normalized": [10.0, 30.0], "success": [True, False],
            "lengths": [100, 50], "score": 20.0, "training_curves": {}, "wall_s": 1.5, "device": "cpu",
            "gpu_seconds": 0.0, "versions": {}, "git_commit": None}


def test_store_statuses_and_frame(tmp_path):
    store = RunStore(tmp_path)
    done, failed, corrupt, missing = (_spec(seed=s) for s in range(4))
    store.write_result(done.run_id, _result(done.run_id))
    store.write_failure(failed.run_id, "NaN/inf loss: loss is nan at step 5", {})
    (tmp_path / corrupt.run_id).mkdir()
    (tmp_path / corrupt.run_id / "result.json").write_text(json.dumps(_result(corrupt.run_id))[:-20])
    assert [store.status(s.run_id) for s in (done, failed, corrupt, missing)] == ["done", "failed", "missing", "missing"]
    frame = runs_frame("t", [("r", "c", s) for s in (done, failed, corrupt, missing)], store)
    assert list(frame["status"]) == ["done", "failed", "missing", "missing"]
    assert frame.loc[0, "score"] == 20.0 and frame.loc[0, "success_rate"] == 0.5
    assert frame.loc[0, "episode_scores"] == [10.0, 30.0]
    # returns [1, 2] on D4RL's published maze2d-umaze refs (min 23.85, max 161.86): the paper's scale
    assert frame.loc[0, "score_published"] == pytest.approx(100 * (1.5 - 23.85) / (161.86 - 23.85))
    assert frame["score_published"].iloc[1:].isna().all()
    pen = _spec(dataset="pen-human", seed=9)
    store.write_result(pen.run_id, {**_result(pen.run_id), "dataset": "pen-human"})
    assert runs_frame("t", [("r", "c", pen)], store)["score_published"].isna().all()   # Adroit: one scale
    assert frame.loc[1, "reason"].startswith("NaN")
    store.prepare_attempt(corrupt.run_id)
    assert not (tmp_path / corrupt.run_id / "result.json").exists()


def test_schema_check_rejects_inconsistent_results():
    good = _result("x")
    assert valid_result(good)
    assert not valid_result({**good, "normalized": [1.0]})            # episodes disagree
    assert not valid_result({**good, "seed": "0"})
    assert not valid_result({k: v for k, v in good.items() if k != "score"})
    assert not valid_result({**good, "returns": [], "normalized": [], "lengths": [], "success": None})
    with pytest.raises(ValueError):
        RunStore("/tmp").write_result("x", {**good, "score": "high"})
