"""Shared helpers for the harness tests: plans written into a temporary plans folder, the toy
agent registered through the environment, and reproduce.py run as a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASET = "maze2d-umaze"          # generated here at smoke size: real data, real PointMaze evaluation

PLANS = {
    # two toy columns × 2 seeds = 4 runs; sleep_per_step stretches a run to a few seconds so a test
    # can kill the sweep midway (the agent still trains and evaluates for real)
    "table901": {"kind": "table", "title": "Toy sweep", "paper_table": None,
                 "rows": [{"label": "Maze2D U-maze", "dataset": DATASET}],
                 "columns": [{"label": "Toy A", "method": "toy", "overrides": {"tag": "a", "sleep_per_step": 0.01}},
                             {"label": "Toy B", "method": "toy",
                              "overrides": {"tag": "b", "lr": 0.001, "sleep_per_step": 0.01}}]},
    # a column whose loss becomes NaN at step 5
    "table902": {"kind": "table", "title": "Toy NaN", "paper_table": None,
                 "rows": [{"label": "Maze2D U-maze", "dataset": DATASET}],
                 "columns": [{"label": "Toy", "method": "toy", "overrides": {"tag": "ok"}},
                             {"label": "Toy NaN", "method": "toy", "overrides": {"tag": "nan", "nan_at_step": 5}}]},
    # a downloadable dataset that is absent from the test's Minari folder
    "table903": {"kind": "table", "title": "Toy on Adroit", "paper_table": None,
                 "rows": [{"label": "Maze2D U-maze", "dataset": DATASET},
                          {"label": "Pen Human", "dataset": "pen-human"}],
                 "columns": [{"label": "Toy", "method": "toy"}]},
    # MAGE beside the toy: real config dataclasses behind --set checks
    "table904": {"kind": "table", "title": "MAGE and toy", "paper_table": None,
                 "rows": [{"label": "Maze2D U-maze", "dataset": DATASET}],
                 "columns": [{"label": "Toy", "method": "toy"}, {"label": "MAGE", "method": "mage"}]},
}


def write_plans(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, plan in PLANS.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **plan}))
    return folder


def harness_env(plans_dir: Path, fit_log: Path) -> dict[str, str]:
    """Environment variables that register the toy agent, the test plans and the fit log."""
    return {"MAGE_PLANS_DIR": str(plans_dir), "MAGE_HARNESS_EXTRA_METHODS": "toy=tests.toy_agent:ToyAgent",
            "MAGE_TOY_FIT_LOG": str(fit_log)}


def reproduce(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "reproduce.py", "--quiet", *args], cwd=REPO_ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def start_reproduce(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "reproduce.py", "--quiet", *args], cwd=REPO_ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fit_events(fit_log: Path) -> Counter:
    """Counter of (event, tag, seed) over the toy agent's fit log ("start"/"end" lines)."""
    if not fit_log.exists():
        return Counter()
    return Counter(tuple(line.split()[:3]) for line in fit_log.read_text().splitlines() if line.strip())


def fit_start_steps(fit_log: Path) -> dict[tuple[str, str], list[int]]:
    """(tag, seed) -> the step each of its fit calls started from, in order."""
    starts: dict[tuple[str, str], list[int]] = {}
    for line in fit_log.read_text().splitlines() if fit_log.exists() else []:
        event, tag, seed, step = line.split()
        if event == "start":
            starts.setdefault((tag, seed), []).append(int(step))
    return starts


def checkpoint_step(run_dir: Path) -> int:
    """The optimisation step stored in a run's checkpoint.pt (0 without one)."""
    import torch
    path = run_dir / "checkpoint.pt"
    return int(torch.load(path, weights_only=False)["agent"]["step"]) if path.exists() else 0


def results(runs_dir: Path) -> dict[str, dict]:
    """run id -> parsed result.json for every run folder that has one."""
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(runs_dir.glob("*/result.json"))}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of every scalar in the TensorBoard event files of ``folder``, read by the
    event reader TensorBoard's server uses (``--load_fast=false``), which applies the purges of resumed
    runs as TensorBoard shows them; every point kept (no reservoir sampling)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    # Tune's TensorBoard logger also writes text and histogram summaries (e.g. list-valued keys): only
    # the scalars plugin's tags are scalars
    return {tag: [(event.step, float(tensor_util.make_ndarray(event.tensor_proto).item()))
                  for event in accumulator.Tensors(tag)]
            for tag in accumulator.Tags()["tensors"]
            if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"}
