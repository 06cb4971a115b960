"""One run: (method, dataset, seed, resolved config, profile, evaluation settings) → result.json.

``execute_run`` loads the data, builds the agent, resumes it from ``checkpoint.pt`` when one exists,
trains with ``on_step`` doing progress, training curves, NaN detection, live metrics (TensorBoard files
in the run folder and a sink such as ``tune.report``, harness/live.py), periodic evaluations and
periodic checkpoints, evaluates with ``suites.evaluation.evaluate`` and writes ``result.json`` atomically.
A periodic evaluation plays a copy of the agent (rebuilt from its state_dict) under forked torch and
numpy RNGs, so the training trajectory, and with it the final score, is the same with or without it. Any failure is
written to ``failure.json`` with a one-line reason; the next invocation retries the run.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import subprocess
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.atomic import atomic_path
from harness.live import LiveMetrics, Sink
from harness.store import CHECKPOINT_FILE, RunStore

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONED_PACKAGES = ("mage-repro", "torch", "numpy", "minari", "gymnasium", "gymnasium-robotics", "mujoco",
                      "ogbench", "ray", "pandas")
RECORDED_EPISODES = 3   # figure plans keep the observation trajectories of the first 3 evaluation episodes


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's outcome. ``run_id`` hashes all of it except where it runs
    (``device``) and how it is bookkept (``checkpoint_every``, ``curve_points``, the periodic
    evaluations), so a run is found again from any machine and any profile file edit that does not
    change its result."""
    method: str
    dataset: str                      # suites dataset key, e.g. "maze2d-umaze"
    seed: int
    config: dict[str, Any]            # resolved overrides handed to Agent.fit (see harness.config)
    steps: int                        # optimisation steps
    profile: str                      # smoke | quick | paper | h100-budget
    eval_episodes: int
    eval_max_steps: int | None        # None: the suite's horizon
    record_trajectories: bool = False
    checkpoint_every: int = 1000
    curve_points: int = 200
    periodic_evals: int = 0           # evaluations spread over training (the last at the final step)
    periodic_episodes: int = 0        # episodes of each
    data_profile: str = ""            # size of generated datasets when not the profile's own name
    device: str = field(default="cpu", compare=False)

    @property
    def run_id(self) -> str:
        identity = {k: v for k, v in asdict(self).items() if k not in BOOKKEEPING_FIELDS}
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.method}-{self.dataset}-s{self.seed}-{digest[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunSpec":
        return cls(**raw)


BOOKKEEPING_FIELDS = ("device", "checkpoint_every", "curve_points", "periodic_evals", "periodic_episodes")


def eval_seed(seed: int) -> int:
    """Evaluation seed of training seed ``seed``: distinct from it so environments and training RNGs differ."""
    return 10_000 + seed


def periodic_eval_seed(seed: int) -> int:
    """First episode seed of every periodic evaluation of training seed ``seed``: the same episodes at
    every point of the curve (less noise between points), apart from the final evaluation's."""
    return 50_000 + 1_000 * seed


def periodic_eval_steps(steps: int, evaluations: int, first_policy_step: int = 0) -> list[int]:
    """Training steps after which a periodic evaluation runs: ``evaluations`` evenly spaced over the steps after
    ``first_policy_step`` (harness.config.first_policy_step: before it the method trains no part of its policy,
    so a score there says nothing), the last at ``steps``."""
    if evaluations <= 0 or steps <= 0:
        return []
    first = min(max(first_policy_step, 0), steps - 1)
    span = steps - first
    count = min(evaluations, span)   # at most one per step
    return [first + round(span * (i + 1) / count) for i in range(count)]


@dataclass(frozen=True)
class PlannedRun:
    """A run of a plan: the table cell (row label, column label) it belongs to, and its spec."""
    row: str
    column: str
    spec: RunSpec


def plan_runs(plan, profile, seeds: int, cli_overrides: dict[str, dict[str, Any]], device: str) -> list[PlannedRun]:
    """Every run of ``plan`` (a harness.plan.Plan) under ``profile`` (a harness.profiles.Profile).

    Raises suites.errors.DataError for an unknown dataset key and ValueError for a bad config.
    """
    from harness.config import resolve_config
    from suites.registry import dataset_spec

    planned = []
    for row in plan.rows:
        if row.dataset is None:
            continue
        data_spec = dataset_spec(row.dataset)
        for column in plan.run_columns:
            config, steps = resolve_config(column.method, data_spec, profile.agent_size, column.overrides,
                                           cli_overrides.get(column.method, {}))
            steps = max(1, round(steps * profile.steps_scale))
            for seed in range(seeds):
                planned.append(PlannedRun(row.label, column.label, RunSpec(
                    method=column.method, dataset=row.dataset, seed=seed, config=config, steps=steps,
                    profile=profile.name, data_profile="" if profile.data_size == profile.name else profile.data_size,
                    eval_episodes=profile.eval_episodes or int(data_spec.eval_episodes),
                    eval_max_steps=profile.eval_max_steps, record_trajectories=plan.kind == "figure",
                    checkpoint_every=profile.checkpoint_every, curve_points=profile.curve_points,
                    periodic_evals=profile.periodic_evals, periodic_episodes=profile.periodic_episodes, device=device)))
    return planned


OnProgress = Callable[[int, int], None]   # (step, total steps)


def execute_run(spec: RunSpec, store: RunStore, on_progress: OnProgress | None = None,
                on_metrics: Sink | None = None) -> str:
    """Run ``spec`` unless its result exists; returns the final status ("done" | "failed").

    ``on_metrics(step, scalars)`` receives every point of the run's live metrics (harness/live.py)."""
    if store.result(spec.run_id) is not None:
        return "done"
    store.prepare_attempt(spec.run_id)
    started = time.time()
    try:
        result = _train_and_evaluate(spec, store, on_progress, on_metrics, started)
    except Exception as error:  # noqa: BLE001 - every failure is recorded and retried next time
        reason = _one_line(error)
        store.write_failure(spec.run_id, reason, {"spec": spec.to_dict(), "traceback": traceback.format_exc(),
                                                  "wall_s": time.time() - started})
        return "failed"
    store.write_result(spec.run_id, result)
    return "done"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    prefix = "NaN/inf loss" if isinstance(error, FloatingPointError) else type(error).__name__
    return f"{prefix}: {text}"[:300]


def _train_and_evaluate(spec: RunSpec, store: RunStore, on_progress: OnProgress | None, on_metrics: Sink | None,
                        started: float) -> dict:
    import torch
    from harness.config import agent_config, first_policy_step
    from harness.methods import build_agent
    from suites.evaluation import evaluate
    from suites.registry import load_offline_dataset

    commit = git_commit()   # the code this run starts with: HEAD may move while it trains (seen: hours-long CPU runs)
    data = load_offline_dataset(spec.dataset, spec.data_profile or spec.profile)
    agent = build_agent(spec.method, seed=spec.seed, device=spec.device)
    checkpoint_path = store.run_dir(spec.run_id) / CHECKPOINT_FILE
    curves: dict[str, list[list[float]]] = {}
    eval_curve: list[dict[str, float]] = []   # periodic evaluations, in step order
    trained_before = 0.0   # wall seconds spent in earlier, interrupted attempts
    resumed_at = 0         # the step the checkpoint was saved at
    if checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=spec.device, weights_only=False)
        agent.load_state_dict(saved["agent"])
        curves, trained_before = saved["curves"], saved["wall_s"]
        eval_curve = saved.get("eval_curve", [])
        resumed_at = saved.get("step", 0)   # checkpoints from before live metrics lack it: TensorBoard restarts
    curve_every = max(1, spec.steps // max(1, spec.curve_points))
    eval_at = set(periodic_eval_steps(spec.steps, spec.periodic_evals if spec.periodic_episodes > 0 else 0,
                                      first_policy_step(spec.method, spec.config, spec.steps)))
    live = LiveMetrics(store.run_dir(spec.run_id), spec.steps, resumed_at, on_metrics)

    def save_checkpoint(step: int) -> None:
        live.flush()   # every point up to this step is on disk before the checkpoint that resumes after it
        _save_atomic({"agent": agent.state_dict(), "curves": curves, "eval_curve": eval_curve, "step": step,
                      "wall_s": trained_before + time.time() - started}, checkpoint_path)

    def on_step(step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise FloatingPointError(f"{name} is {value} at step {step}")
        if step % curve_every == 0 or step == spec.steps:
            for name, value in metrics.items():
                curves.setdefault(name, []).append([step, float(value)])
        live.on_step(step, metrics, agent)
        if step in eval_at and not any(point["step"] == step for point in eval_curve):
            with live.paused():
                eval_curve.append(periodic_evaluation(agent, spec, step))
            live.on_eval(eval_curve[-1])
        if step % spec.checkpoint_every == 0 or step == spec.steps:
            with live.paused():
                save_checkpoint(step)
        if on_progress is not None:
            on_progress(step, spec.steps)

    try:
        agent.fit(data, dict(spec.config), spec.steps, on_step)
    finally:
        live.close()
    trained_s = time.time() - started

    episodes = _evaluate(agent, spec, evaluate)
    wall_s = trained_before + time.time() - started
    normalized = np.asarray(episodes["result"].normalized, np.float64)
    success = episodes["result"].success
    result = {
        "run_id": spec.run_id, "method": spec.method, "dataset": spec.dataset, "seed": spec.seed,
        "profile": spec.profile, "data_profile": spec.data_profile or spec.profile, "config": spec.config,
        "agent_config": agent_config(spec.method, spec.config),
        "steps": spec.steps, "eval_episodes": spec.eval_episodes, "eval_max_steps": spec.eval_max_steps, "eval_seed": eval_seed(spec.seed),
        "returns": np.asarray(episodes["result"].returns, np.float64).tolist(), "normalized": normalized.tolist(),
        "success": None if success is None else [bool(s) for s in success],
        "lengths": [int(n) for n in episodes["result"].lengths],
        "score": float(normalized.mean()), "training_curves": curves, "eval_curve": eval_curve,
        "wall_s": wall_s, "train_s": trained_before + trained_s, "device": spec.device,
        "gpu_seconds": wall_s if spec.device.startswith("cuda") else 0.0,
        "versions": package_versions(), "git_commit": commit, "hostname": os.uname().nodename,
    }
    if episodes["trajectories"] is not None:
        result["trajectories"] = episodes["trajectories"]
    return result


def periodic_evaluation(agent, spec: RunSpec, step: int) -> dict[str, float]:
    """One point of the score-against-steps curve: a copy of ``agent`` (from its state_dict) plays
    ``spec.periodic_episodes`` episodes; torch's and numpy's global RNGs are restored afterwards, so
    training goes on exactly as without it. Returns {step, score, se, success, episodes}."""
    import torch
    from harness.methods import build_agent
    from suites.evaluation import evaluate

    numpy_state = np.random.get_state()
    cuda = [torch.device(spec.device)] if spec.device.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda):
        copy = build_agent(spec.method, seed=spec.seed, device=spec.device)
        copy.load_state_dict(agent.state_dict())
        result = evaluate(copy, spec.dataset, episodes=spec.periodic_episodes, seed=periodic_eval_seed(spec.seed),
                          max_steps=spec.eval_max_steps)
    np.random.set_state(numpy_state)
    scores = np.asarray(result.normalized, np.float64)
    se = float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0
    return {"step": int(step), "score": float(scores.mean()), "se": se,
            "success": None if result.success is None else float(np.mean(result.success)),
            "episodes": int(len(scores))}


def _evaluate(agent, spec: RunSpec, evaluate) -> dict[str, Any]:
    """Evaluate; for figure plans also keep the first RECORDED_EPISODES episodes' observations,
    taken from the agent's ``act`` calls, which see every observation of every episode."""
    kwargs = dict(episodes=spec.eval_episodes, seed=eval_seed(spec.seed), max_steps=spec.eval_max_steps)
    if not spec.record_trajectories:
        return {"result": evaluate(agent, spec.dataset, **kwargs), "trajectories": None}
    recorder = _RecordingAgent(agent, RECORDED_EPISODES)
    result = evaluate(recorder, spec.dataset, **kwargs)
    return {"result": result, "trajectories": recorder.trajectories(result.lengths)}


class _RecordingAgent:
    """Wraps an agent and keeps the observations of the first ``count`` episodes it acts in."""

    def __init__(self, agent, count: int):
        self.agent, self.count = agent, count
        self.steps: list[np.ndarray] | None = None

    def reset(self, num_envs: int) -> None:
        if self.steps is None:          # only the first chunk holds episodes 0..count-1
            self.steps = []
        else:
            self.count = 0
        self.agent.reset(num_envs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.count and self.steps is not None:
            self.steps.append(np.array(obs[: self.count], np.float32))
        return self.agent.act(obs)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        self.agent.observe(rewards, dones)

    def __getattr__(self, name: str):
        return getattr(self.agent, name)

    def trajectories(self, lengths) -> list[list[list[float]]]:
        """[episode][t][obs_dim] observation lists, each cut at its episode's length."""
        if not self.steps:
            return []
        stacked = np.stack(self.steps, axis=1)   # [count, T, obs_dim]
        return [stacked[i, : int(lengths[i])].tolist() for i in range(min(len(stacked), len(lengths)))]


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    import torch
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


_GIT_COMMIT: list[str | None] = []


def git_commit() -> str | None:
    """HEAD of the repository the harness runs from, with "+dirty" when the tree has changes."""
    if not _GIT_COMMIT:
        try:
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            _GIT_COMMIT.append((head + ("+dirty" if dirty else "")) or None)
        except (OSError, subprocess.SubprocessError):
            _GIT_COMMIT.append(None)
    return _GIT_COMMIT[0]
