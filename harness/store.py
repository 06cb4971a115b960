"""The results store: one folder per run under <runs_dir>/<run_id>/ (design §3 "Run").

    result.json      the finished run (written atomically by harness/atomic.py)
    failure.json     why the last attempt failed (removed when the run is retried)
    checkpoint.pt    the agent's latest state_dict during training (atomic too)

A run is ``done`` when result.json parses and passes the schema check, ``failed`` when only
failure.json exists, else ``missing``. A truncated or corrupt result.json counts as missing, so
the run is redone. ``runs_frame`` turns a plan's runs into the frame of docs/interfaces.md "Results".
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.atomic import atomic_path

RESULT_FILE, FAILURE_FILE, CHECKPOINT_FILE = "result.json", "failure.json", "checkpoint.pt"
FRAME_COLUMNS = ["run_id", "plan", "row", "column", "method", "dataset", "seed", "status", "reason",
                 "score", "score_published", "episode_scores", "success_rate", "wall_s", "device", "trajectories",
                 "eval_curve", "provenance"]
PROVENANCE_KEYS = ("git_commit", "device", "hostname", "versions", "wall_s", "train_s", "steps", "profile")

# result.json keys and the types each must have; anything else makes the file corrupt.
RESULT_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "run_id": str, "method": str, "dataset": str, "seed": int, "profile": str, "config": dict,
    "steps": int, "returns": list, "normalized": list, "success": (list, type(None)), "lengths": list,
    "score": (int, float), "training_curves": dict, "wall_s": (int, float), "device": str,
    "gpu_seconds": (int, float), "versions": dict, "git_commit": (str, type(None)),
}


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to ``path`` so that readers see the old file or the whole new one, never a part."""
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        json.dump(payload, out, indent=1, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def valid_result(payload: Any) -> bool:
    """True when ``payload`` (a parsed result.json) has every schema key with its type and
    per-episode lists of one length."""
    if not isinstance(payload, dict):
        return False
    for key, kind in RESULT_SCHEMA.items():
        if key not in payload or not isinstance(payload[key], kind) or isinstance(payload[key], bool) and kind is int:
            return False
    episodes = len(payload["returns"])
    lists = [payload["normalized"], payload["lengths"]] + ([payload["success"]] if payload["success"] is not None else [])
    return episodes > 0 and all(len(values) == episodes for values in lists)


class RunStore:
    """Reads and writes the per-run folders under ``runs_dir``."""

    def __init__(self, runs_dir: Path | str):
        self.runs_dir = Path(runs_dir)

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The run's result when it is complete and valid, else None (missing, truncated, corrupt)."""
        path = self.run_dir(run_id) / RESULT_FILE
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return payload if valid_result(payload) else None

    def failure(self, run_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.run_dir(run_id) / FAILURE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def status(self, run_id: str) -> str:
        """done | failed | missing."""
        if self.result(run_id) is not None:
            return "done"
        return "failed" if self.failure(run_id) is not None else "missing"

    def write_result(self, run_id: str, payload: dict[str, Any]) -> None:
        if not valid_result(json.loads(json.dumps(payload, default=_json_default))):
            raise ValueError(f"run {run_id}: result does not match the result.json schema")
        write_json_atomic(self.run_dir(run_id) / RESULT_FILE, payload)
        (self.run_dir(run_id) / FAILURE_FILE).unlink(missing_ok=True)

    def write_failure(self, run_id: str, reason: str, details: dict[str, Any]) -> None:
        write_json_atomic(self.run_dir(run_id) / FAILURE_FILE, {"run_id": run_id, "reason": reason, **details})

    def prepare_attempt(self, run_id: str) -> None:
        """Before (re)running: forget the last failure and any corrupt result.json."""
        run_dir = self.run_dir(run_id)
        (run_dir / FAILURE_FILE).unlink(missing_ok=True)
        if (run_dir / RESULT_FILE).exists() and self.result(run_id) is None:
            (run_dir / RESULT_FILE).unlink()

    def forget(self, run_id: str) -> None:
        """--fresh: remove everything the run left (result, failure, checkpoint)."""
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)


def runs_frame(plan_name: str, specs_by_cell: list[tuple[str, str, Any]], store: RunStore) -> pd.DataFrame:
    """One row per run of a plan, columns FRAME_COLUMNS (docs/interfaces.md "Results").

    ``specs_by_cell``: (row label, column label, RunSpec) for every planned run. ``score`` is the mean
    normalised score over the run's episodes (the suite's reference scores); ``score_published`` the
    mean of the same returns normalised with the suite's published reference scores (the paper's
    scale), NaN when the suite has none; a failed run's ``reason`` is its failure reason.
    ``eval_curve``: the run's periodic evaluations (list of {step, score, se, success, episodes});
    ``provenance``: {PROVENANCE_KEYS} of its result.json (failed runs: their wall_s only).
    """
    from suites.registry import published_score

    records = []
    for row, column, spec in specs_by_cell:
        record = {"run_id": spec.run_id, "plan": plan_name, "row": row, "column": column,
                  "method": spec.method, "dataset": spec.dataset, "seed": spec.seed, "status": "missing",
                  "reason": "not run yet", "score": np.nan, "score_published": np.nan, "episode_scores": None,
                  "success_rate": np.nan, "wall_s": np.nan, "device": None, "trajectories": None,
                  "eval_curve": None, "provenance": None}
        result = store.result(spec.run_id)
        if result is not None:
            success = result["success"]
            published = published_score(spec.dataset, result["returns"])
            record.update(status="done", reason="", score=float(result["score"]),
                          score_published=float(np.mean(published)) if published is not None else np.nan,
                          episode_scores=list(result["normalized"]),
                          success_rate=float(np.mean(success)) if success is not None else np.nan,
                          wall_s=float(result["wall_s"]), device=result["device"],
                          trajectories=result.get("trajectories"), eval_curve=result.get("eval_curve", []),
                          provenance={key: result.get(key) for key in PROVENANCE_KEYS})
        elif (failure := store.failure(spec.run_id)) is not None:
            record.update(status="failed", reason=str(failure.get("reason", "unknown")),
                          provenance={"wall_s": failure.get("wall_s")})
        records.append(record)
    return pd.DataFrame.from_records(records, columns=FRAME_COLUMNS)
