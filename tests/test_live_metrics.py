"""Live metrics (harness/live.py): TensorBoard event files in each run folder, read back with
TensorBoard's own event reader; a resumed run's curve goes on without gap or duplicate; a Ray
sweep reports the same scalars through tune.report to Tune's loggers and to W&B (offline)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from harness.runs import RunSpec, execute_run
from harness.store import RunStore
from tests.harness_support import harness_env, reproduce, results, scalars, write_plans

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch):
    monkeypatch.setenv("MAGE_HARNESS_EXTRA_METHODS", "toy=tests.toy_agent:ToyAgent")


def _spec(**changes) -> RunSpec:
    fields = dict(method="toy", dataset="maze2d-umaze", seed=0, config={}, steps=40, profile="smoke",
                  eval_episodes=2, eval_max_steps=30, checkpoint_every=20, periodic_evals=4, periodic_episodes=2)
    return RunSpec(**{**fields, **changes})


def test_a_run_writes_its_metrics_learning_rate_throughput_and_scores(tmp_path):
    spec, store = _spec(config={"lr": 0.003}), RunStore(tmp_path)
    assert execute_run(spec, store) == "done"
    result, logged = store.result(spec.run_id), scalars(tmp_path / spec.run_id)
    assert {"loss", "lr/optimizer", "perf/steps_per_s", "eval/score", "eval/score_se", "eval/success"} <= set(logged)
    assert [step for step, _ in logged["loss"]] == list(range(1, 41))
    assert [value for _, value in logged["loss"]] == pytest.approx([v for _, v in result["training_curves"]["loss"]],
                                                                   rel=1e-6)
    assert logged["lr/optimizer"] == [(step, pytest.approx(0.003)) for step in range(1, 41)]
    assert [step for step, _ in logged["perf/steps_per_s"]] == list(range(2, 41))   # none before a first interval
    assert all(value > 0 for _, value in logged["perf/steps_per_s"])
    curve = result["eval_curve"]
    assert logged["eval/score"] == [(p["step"], pytest.approx(p["score"], rel=1e-6)) for p in curve]
    assert logged["eval/success"] == [(p["step"], pytest.approx(p["success"])) for p in curve]


def test_mage_logs_codebook_usage_and_each_stages_learning_rate(tmp_path):
    from tests.mage_fixtures import TEST_CONFIG
    spec, store = _spec(method="mage", config={**TEST_CONFIG, "lr": 5e-4}, periodic_evals=0), RunStore(tmp_path)
    assert execute_run(spec, store) == "done"
    logged = scalars(tmp_path / spec.run_id)
    curves = store.result(spec.run_id)["training_curves"]
    assert {"codebook/usage", "loss/ce", "lr/opt1", "lr/opt2"} <= set(logged)
    assert [step for step, _ in logged["codebook/usage"]] == [step for step, _ in curves["codebook/usage"]]
    assert all(0 < value <= 1 for _, value in logged["codebook/usage"])
    assert [value for _, value in logged["lr/opt1"] + logged["lr/opt2"]] == pytest.approx([5e-4] * 80)


def test_a_resumed_run_continues_its_tensorboard_curve(tmp_path):
    spec = _spec()
    whole, resumed = RunStore(tmp_path / "whole"), RunStore(tmp_path / "resumed")
    assert execute_run(spec, whole) == "done"

    def stop_at_25(step, total):   # the checkpoint is at 20: steps 21-25 are trained twice
        if step == 25:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, resumed, stop_at_25)
    assert execute_run(spec, resumed) == "done"
    assert len(list((tmp_path / "resumed" / spec.run_id).glob("events.out.tfevents.*"))) == 2
    uninterrupted, continued = scalars(tmp_path / "whole" / spec.run_id), scalars(tmp_path / "resumed" / spec.run_id)
    for tag in ("loss", "lr/optimizer", "eval/score", "eval/score_se"):
        assert continued[tag] == uninterrupted[tag], tag          # every step once, the same values
    assert [step for step, _ in continued["eval/score"]] == [10, 20, 30, 40]


def test_ray_trials_report_the_metrics_to_tune_and_wandb(tmp_path):
    pytest.importorskip("wandb", reason="the wandb package is not installed (pip install -e '.[test]')")
    env = {**harness_env(write_plans(tmp_path / "plans"), tmp_path / "fit.log"),
           "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb"), "WANDB_SILENT": "true"}
    (tmp_path / "wandb").mkdir()
    results_dir = tmp_path / "results"
    run = reproduce(["--table", "901", "--profile", "smoke", "--seeds", "1", "--results-dir", str(results_dir),
                     "--wandb", "mage-repro-test"], env, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    # Tune's own banner and its hint at Ray's session folder are not in the terminal; ours is
    for noise in ("To visualize your results with TensorBoard", "Configuration for experiment", "View detailed results"):
        assert noise not in run.stdout + run.stderr
    assert f"tensorboard --logdir {results_dir / 'runs'}" in run.stderr
    finished = results(results_dir / "runs")
    assert len(finished) == 2
    for run_id, result in finished.items():
        logged = scalars(results_dir / "runs" / run_id)
        assert {"loss", "lr/optimizer", "perf/steps_per_s", "eval/score"} <= set(logged)
        # Tune's JSON logger: the trial folder is named by the run id and holds every report
        trial_dir, = (results_dir / "ray").glob(f"sweep-*/{run_id}")
        reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        assert reports[-1]["status"] == "done" and reports[-1]["score"] == pytest.approx(result["score"])
        assert reports[-1]["eval/score"] == pytest.approx(result["eval_curve"][-1]["score"])
        assert all("loss" in report and "lr/optimizer" in report for report in reports)
        assert "ray/tune/eval/score" in scalars(trial_dir)               # Tune's TensorBoard logger
    folders = sorted((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    summaries = [_wandb_summary(folder) for folder in folders]
    # a flake seen twice read one run back with the name '' (its log empty: Tune killed the logging actor
    # before wandb-core wrote it out; harness.sweep's FlushedLoggingActor waits for it): should it recur,
    # the message shows which records that run's log holds
    assert sorted(s["name"] for s in summaries) == sorted(finished), [_wandb_records(f) for f in folders]
    for summary in summaries:
        result = finished[summary["name"]]
        assert summary["project"] == "mage-repro-test" and summary["state"] == "finished"
        assert summary["summary"]["score"] == pytest.approx(result["score"])
        assert summary["summary"]["eval/score"] == pytest.approx(result["eval_curve"][-1]["score"])
        assert summary["summary"]["step"] == result["steps"] and "loss" in summary["summary"]
        assert summary["config"]["spec"]["method"] == "toy"


def _leet_inspect(run_folder, *flags: str) -> subprocess.CompletedProcess:
    """wandb's own reader of an offline run's .wandb log: ``wandb leet inspect --json [flags] FOLDER``."""
    return subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(run_folder)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "WANDB_MODE": "offline"})


def _wandb_summary(run_folder) -> dict:
    """An offline W&B run's name, project, state, config and last logged values (``--summary``)."""
    out = _leet_inspect(run_folder, "--summary")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wandb_records(run_folder) -> str:
    """One line per offline W&B run for a failure message: its folder, how many records of each type
    its .wandb log holds, and the run records' display names."""
    out = _leet_inspect(run_folder)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    types = Counter(record.get("type") for record in records)
    names = [record["run"].get("display_name") for record in records if record.get("type") == "run"]
    return f"{run_folder.name}: records {dict(types)}, run names {names}, reader rc {out.returncode} {out.stderr[-300:]}"
