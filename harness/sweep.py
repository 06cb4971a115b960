"""Run a plan's pending runs: Ray Tune (one trial per run), or locally: one after another in this
process, or ``--workers N`` at once, each in a process of its own (a machine without Ray, e.g. a lent
GPU machine whose package index lacks it, can still share its GPU and cores between runs).

Ray: ``ray.init(address="local")`` starts a private instance on this machine (a plain ``ray.init()``
would join any cluster recorded on it); ``--address`` joins an existing cluster. Each trial calls
``execute_run``, which skips a finished run and resumes from the run's own checkpoint, so trials
are idempotent: an interrupted sweep is resumed by running the command again (a fresh Tuner over the
runs still missing), not by ``Tuner.restore``, whose state snapshot can be stale.
Results go to ``<results>/runs`` — with ``--storage``, to ``<storage>/runs``, a path every node sees.

Trials report the runs' live metrics (harness/live.py) through ``tune.report``, so Tune's own loggers
(CSV, JSON, TensorBoard in each trial folder, named by run id) and callbacks see them, W&B included
(``--wandb PROJECT``: Ray's WandbLoggerCallback, one W&B run per trial, grouped by plan and profile).
Tune's console output (its configuration box and a TensorBoard hint pointing at Ray's temporary
session folder, which holds no run's metrics) goes to ``tune-output.log`` in the sweep's folder
instead of the terminal, where our progress bars are.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from harness.progress import SweepProgress
from harness.runs import REPO_ROOT, RunSpec, execute_run
from harness.store import RunStore

# Environment variables Ray workers need from the driver: data location, plan folder, extra methods,
# and W&B's settings for the logging actors of WandbLoggerCallback (mode, folder; Ray itself hands
# them the API key, which goes to no trial).
FORWARDED_ENV_PREFIXES = ("MAGE_", "MINARI_", "MUJOCO_GL", "WANDB_")
UNFORWARDED_ENV = ("WANDB_API_KEY",)
PROGRESS_REPORT_S = 1.0   # seconds between a trial's step reports to the driver
TUNE_OUTPUT_LOG = "tune-output.log"


@dataclasses.dataclass(frozen=True)
class WandbSettings:
    """``--wandb PROJECT``: W&B runs in ``project``, grouped as ``group``, files under ``folder``
    (unless $WANDB_DIR says otherwise; offline runs stay there for ``wandb sync``)."""
    project: str
    group: str
    folder: Path


def worker_device(gpus_per_run: float) -> str:
    """``cuda`` when this process sees a GPU and runs are given one (or a fraction), else ``cpu``."""
    import torch
    return "cuda" if gpus_per_run > 0 and torch.cuda.is_available() else "cpu"


def run_local(specs: list[RunSpec], store: RunStore, progress: SweepProgress, gpus_per_run: float,
              workers: int = 1, cpus_per_run: float = 1.0) -> None:
    """Run ``specs`` one after another in this process, or ``workers`` at once in worker processes
    (``cpus_per_run`` torch threads each; progress then moves when a run finishes, not per step)."""
    device = worker_device(gpus_per_run)
    if workers <= 1:
        for spec in specs:
            status = execute_run(dataclasses.replace(spec, device=device), store,
                                 lambda step, total, run_id=spec.run_id: progress.step(run_id, step, total))
            progress.run_finished(spec.run_id, status)
        return
    # spawn, not fork: a forked child would inherit this process's torch/CUDA state and threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_local_worker, spec.to_dict(), str(store.runs_dir), device, cpus_per_run): spec.run_id
                   for spec in specs}
        for future in as_completed(futures):
            run_id = futures[future]
            if future.exception() is not None and store.status(run_id) != "done":
                # execute_run records every Python error itself: this is a worker process that died
                store.write_failure(run_id, f"the worker process died: {future.exception()!r}", {})
            progress.run_finished(run_id, store.status(run_id))


def _local_worker(spec: dict, runs_dir: str, device: str, cpus_per_run: float) -> str:
    """One run in a ``--workers`` process; returns its status ("done" | "failed")."""
    import torch

    torch.set_num_threads(max(1, int(cpus_per_run)))
    return execute_run(dataclasses.replace(RunSpec.from_dict(spec), device=device), RunStore(runs_dir))


def run_ray(specs: list[RunSpec], store: RunStore, progress: SweepProgress, *, cpus_per_run: float,
            gpus_per_run: float, address: str | None, storage: Path, wandb: WandbSettings | None = None) -> None:
    """Run ``specs`` as Ray Tune trials, ``cpus_per_run`` / ``gpus_per_run`` (fractions allowed) each."""
    import ray
    from ray import tune

    ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", runtime_env={"env_vars": _worker_env()})
    try:
        _check_resources(ray.cluster_resources(), cpus_per_run, gpus_per_run)
        trainable = tune.with_resources(_trial, {"cpu": cpus_per_run, "gpu": gpus_per_run})
        name = f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        callbacks = [_progress_callback(progress, store)] + ([_wandb_callback(wandb)] if wandb else [])
        tuner = tune.Tuner(
            trainable,
            param_space={"spec": tune.grid_search([spec.to_dict() for spec in specs]),
                         "runs_dir": str(store.runs_dir.resolve()), "gpus_per_run": gpus_per_run,
                         "cpus_per_run": cpus_per_run},
            tune_config=tune.TuneConfig(reuse_actors=False, trial_name_creator=_trial_run_id,
                                        trial_dirname_creator=_trial_run_id),
            run_config=tune.RunConfig(name=name, storage_path=str(storage.resolve()), verbose=0,
                                      callbacks=callbacks, failure_config=tune.FailureConfig(max_failures=0)),
        )
        sweep_dir = storage / name
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / TUNE_OUTPUT_LOG, "a") as log, contextlib.redirect_stdout(log):
            tuner.fit()
    finally:
        ray.shutdown()


def _trial_run_id(trial) -> str:
    """A Tune trial's name and folder: its run's id (as in results/runs/), not Tune's counter."""
    return RunSpec.from_dict(trial.config["spec"]).run_id


def _wandb_callback(settings: WandbSettings):
    from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

    class FlushedLoggingActor(_WandbLoggingActor):
        """Ray's per-trial W&B logging actor, which also waits for W&B to write the run out before it returns.

        Tune ray.kill()s a trial's logging actor as soon as its run() returns, and with it the wandb-core child
        process. wandb.finish() can return before wandb-core has flushed the run's .wandb log, which wandb's own
        atexit teardown would wait for, but a killed process runs no atexit. Seen twice in the W&B test: one
        offline run's log held 7 bytes, its actor killed 50 ms into finish() (Ray's worker log: "killed by
        `ray.kill`"), wandb-core never told to close the stream. wandb.teardown() is that wait, called here."""

        def run(self):
            super().run()
            self._wandb.teardown()

    class FlushedWandbLoggerCallback(WandbLoggerCallback):
        _logger_actor_cls = FlushedLoggingActor

    folder = {} if os.environ.get("WANDB_DIR") else {"dir": str(settings.folder.resolve())}
    if folder:
        settings.folder.mkdir(parents=True, exist_ok=True)
    # run_id and status are strings (the run's name says the one, the summary's score the other)
    return FlushedWandbLoggerCallback(project=settings.project, group=settings.group, excludes=["run_id", "status"],
                                      **folder)


def _check_resources(available: dict[str, float], cpus_per_run: float, gpus_per_run: float) -> None:
    """ValueError (one line) when no trial could ever start: Tune would wait forever."""
    for name, wanted in (("CPU", cpus_per_run), ("GPU", gpus_per_run)):
        if wanted > available.get(name, 0.0):
            flag = f"--{name.lower()}s-per-run"
            raise ValueError(f"{flag} {wanted:g} exceeds the Ray cluster's {available.get(name, 0.0):g} {name}s; "
                             f"lower {flag} or join a cluster with more (--address)")


def _worker_env() -> dict[str, str]:
    """Driver environment that trials need; PYTHONPATH gets the repository (tests' agents live there)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES) and k not in UNFORWARDED_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    return env


def _trial(config: dict) -> None:
    """One Tune trial = one run. Reports, at most every PROGRESS_REPORT_S and after each periodic
    evaluation, the step and the latest value of every live metric (harness/live.py); at the end the
    run's status and, when done, its final ``score``. ``timesteps_total`` is the optimisation step,
    the x-axis of Tune's TensorBoard logger."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, int(config["cpus_per_run"])))
    spec = dataclasses.replace(RunSpec.from_dict(config["spec"]), device=worker_device(config["gpus_per_run"]))
    store = RunStore(config["runs_dir"])
    latest: dict[str, float] = {}
    last_report = [0.0]

    def report(step: int, status: str, **extra) -> None:
        last_report[0] = time.time()
        tune.report({**latest, **extra, "run_id": spec.run_id, "step": step, "total": spec.steps,
                     "timesteps_total": step, "status": status})

    def on_metrics(step: int, scalars: dict[str, float]) -> None:
        latest.update(scalars)
        if any(tag.startswith("eval/") for tag in scalars):
            report(step, "running")

    def on_progress(step: int, total: int) -> None:
        if time.time() - last_report[0] >= PROGRESS_REPORT_S:
            report(step, "running")

    status = execute_run(spec, store, on_progress, on_metrics)
    result = store.result(spec.run_id)
    report(spec.steps, status, **({"score": result["score"]} if result is not None else {}))


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
