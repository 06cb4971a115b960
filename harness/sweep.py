"""Run a plan's pending runs: Ray Tune (one trial per run) or sequentially in this process.

Ray: ``ray.init(address="local")`` starts a private instance on this machine (a plain ``ray.init()``
would join any cluster recorded on it); ``--address`` joins an existing cluster. Each trial calls
``execute_run``, which skips a finished run and resumes from the run's own checkpoint, so trials
are idempotent: an interrupted sweep is resumed by running the command again (a fresh Tuner over the
runs still missing), not by ``Tuner.restore``, whose state snapshot can be stale.
Results go to ``<results>/runs`` — with ``--storage``, to ``<storage>/runs``, a path every node sees.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path

from harness.progress import SweepProgress
from harness.runs import REPO_ROOT, RunSpec, execute_run
from harness.store import RunStore

# Environment variables Ray workers need from the driver: data location, plan folder, extra methods.
FORWARDED_ENV_PREFIXES = ("MAGE_", "MINARI_", "MUJOCO_GL")
PROGRESS_REPORT_S = 1.0   # seconds between a trial's step reports to the driver


def worker_device(gpus_per_run: float) -> str:
    """``cuda`` when this process sees a GPU and runs are given one (or a fraction), else ``cpu``."""
    import torch
    return "cuda" if gpus_per_run > 0 and torch.cuda.is_available() else "cpu"


def run_local(specs: list[RunSpec], store: RunStore, progress: SweepProgress, gpus_per_run: float) -> None:
    """Run ``specs`` one after another in this process."""
    device = worker_device(gpus_per_run)
    for spec in specs:
        status = execute_run(dataclasses.replace(spec, device=device), store,
                             lambda step, total, run_id=spec.run_id: progress.step(run_id, step, total))
        progress.run_finished(spec.run_id, status)


def run_ray(specs: list[RunSpec], store: RunStore, progress: SweepProgress, *, cpus_per_run: float,
            gpus_per_run: float, address: str | None, storage: Path) -> None:
    """Run ``specs`` as Ray Tune trials, ``cpus_per_run`` / ``gpus_per_run`` (fractions allowed) each."""
    import ray
    from ray import tune

    ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", runtime_env={"env_vars": _worker_env()})
    try:
        _check_resources(ray.cluster_resources(), cpus_per_run, gpus_per_run)
        trainable = tune.with_resources(_trial, {"cpu": cpus_per_run, "gpu": gpus_per_run})
        tuner = tune.Tuner(
            trainable,
            param_space={"spec": tune.grid_search([spec.to_dict() for spec in specs]),
                         "runs_dir": str(store.runs_dir.resolve()), "gpus_per_run": gpus_per_run,
                         "cpus_per_run": cpus_per_run},
            tune_config=tune.TuneConfig(reuse_actors=False),
            run_config=tune.RunConfig(name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                                      storage_path=str(storage.resolve()), verbose=0,
                                      callbacks=[_progress_callback(progress, store)],
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        with contextlib.redirect_stdout(sys.stderr):   # Tune's banners would mix with the table on stdout
            tuner.fit()
    finally:
        ray.shutdown()


def _check_resources(available: dict[str, float], cpus_per_run: float, gpus_per_run: float) -> None:
    """ValueError (one line) when no trial could ever start: Tune would wait forever."""
    for name, wanted in (("CPU", cpus_per_run), ("GPU", gpus_per_run)):
        if wanted > available.get(name, 0.0):
            flag = f"--{name.lower()}s-per-run"
            raise ValueError(f"{flag} {wanted:g} exceeds the Ray cluster's {available.get(name, 0.0):g} {name}s; "
                             f"lower {flag} or join a cluster with more (--address)")


def _worker_env() -> dict[str, str]:
    """Driver environment that trials need; PYTHONPATH gets the repository (tests' agents live there)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    return env


def _trial(config: dict) -> None:
    """One Tune trial = one run; reports step progress and, at the end, the run's status."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, int(config["cpus_per_run"])))
    spec = dataclasses.replace(RunSpec.from_dict(config["spec"]), device=worker_device(config["gpus_per_run"]))
    last_report = [0.0]

    def on_progress(step: int, total: int) -> None:
        if time.time() - last_report[0] >= PROGRESS_REPORT_S:
            last_report[0] = time.time()
            tune.report({"run_id": spec.run_id, "step": step, "total": total, "status": "running"})

    status = execute_run(spec, RunStore(config["runs_dir"]), on_progress)
    tune.report({"run_id": spec.run_id, "step": spec.steps, "total": spec.steps, "status": status})


def _progress_callback(progress: SweepProgress, store: RunStore):
    """A Tune callback feeding trial reports into the driver's progress bars (Ray imported lazily)."""
    from ray.tune import Callback

    class ProgressCallback(Callback):
        def __init__(self):
            self.finished: set[str] = set()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result.get("status") == "running":
                self.progress_step(result)
            elif "run_id" in result:
                self.finish(result["run_id"], result["status"])

        def progress_step(self, result):
            progress.step(result["run_id"], int(result["step"]), int(result["total"]))

        def on_trial_error(self, iteration, trials, trial, **info):
            # execute_run records every Python error itself; this is a trial whose worker died.
            run_id = RunSpec.from_dict(trial.config["spec"]).run_id
            if store.status(run_id) != "done":
                store.write_failure(run_id, "the Ray trial crashed (worker died); see its Ray log", {})
            self.finish(run_id, store.status(run_id))

        def finish(self, run_id: str, status: str) -> None:
            if run_id not in self.finished:
                self.finished.add(run_id)
                progress.run_finished(run_id, status)

    return ProgressCallback()
