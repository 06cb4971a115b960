"""How often kept maze2d runs reach the goal from a start outside its reward radius, from their result.json.

    python bench/reach_from_outside.py results/reproduced/maze2d-cpu results/reproduced/maze2d-cpu-awr

An episode that starts in the goal cell (1 start in 7 on umaze) is a success before its first action, so
the plain success rate of an agent that never navigates is about 0.14 there. This replays each run's
evaluation resets (its ``eval_seed`` + episode index, as ``suites.evaluation.evaluate`` plays them; no
agent is run), drops the episodes that start inside the radius, and prints per folder, method and
dataset: runs, the share of the remaining episodes that reached the goal (mean ± SE over runs, and per
run in seed order) beside the plain success rate.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mage_leads import reached_from_outside, starts_inside_goal  # noqa: E402


def run_reach_from_outside(result: dict) -> float | None:
    """Share of the run's episodes that start outside the goal radius and reach the goal; None when the
    environment names no goal, the run kept no per-episode success, or every episode starts inside."""
    success = np.asarray(result.get("success") or [], bool)
    if not success.size:
        return None
    return reached_from_outside(success, starts_inside_goal(result["dataset"], success.size, result["eval_seed"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="results folders with runs/<run id>/result.json")
    args = ap.parse_args()
    cells: dict[tuple, list] = defaultdict(list)
    for folder in args.folders:
        for path in sorted(folder.glob("runs/*/result.json")):
            result = json.loads(path.read_text())
            if not result["dataset"].startswith("maze2d"):
                continue
            reach = run_reach_from_outside(result)
            if reach is not None:
                cells[(str(folder), result["method"], result["dataset"])].append(
                    (result["seed"], reach, float(np.mean(result["success"]))))
    print("| folder | method | dataset | runs | reached from outside, mean ± SE | per seed | plain success |")
    print("|---|---|---|---|---|---|---|")
    for (folder, method, dataset), rows in cells.items():
        rows.sort()
        reach = np.array([r[1] for r in rows])
        se = reach.std(ddof=1) / np.sqrt(len(reach)) if len(reach) > 1 else float("nan")
        print(f"| {folder} | {method} | {dataset} | {len(rows)} | {reach.mean():.2f} ± {se:.2f} | "
              f"{' / '.join(f'{r:.2f}' for r in reach)} | {np.mean([r[2] for r in rows]):.2f} |")


if __name__ == "__main__":
    main()
