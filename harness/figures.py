"""Figures 1, 3 and 4: coin-maze trajectories of each method drawn over the maze (PNG).

``make_figure(plan, runs, results_dir) -> Path`` draws one panel per run column of a figure plan:
the maze's walls, the silver and gold coins, the goal, and the first evaluation episodes'
trajectories (the runs frame's ``trajectories`` column: per run a list of [T, obs_dim] arrays,
the agent's (x, y) position in obs[:, 0:2]), earlier timesteps lighter, as in the paper's Figure 3.
A method without trajectories gets a panel saying why ("missing: <reason>", "failed: <reason>").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from harness.atomic import atomic_path  # noqa: E402
from harness.plan import Plan  # noqa: E402

EPISODES_DRAWN = 3   # the paper draws a few; result.json records the first 3 evaluation episodes
# Figure makers by the name plans give in ``figure:``. All three draw trajectories on the coin maze;
# they differ in the runs the plan puts in its columns (DT / Diffuser / MAGE for Figures 1 and 3,
# MAGE with and without L_cond for Figure 4).
FIGURES = ("figure1", "figure3", "figure4")


@dataclass(frozen=True)
class MazeLayout:
    """The maze in world coordinates.

    walls_HW: bool [H, W], True = wall; row 0 is the top (largest y) of the maze.
    extent: (x_min, x_max, y_min, y_max) of the whole grid in the environment's units.
    silver, gold, goal, start: (x, y) positions; goal / start None when they vary per episode.
    """
    walls_HW: np.ndarray
    extent: tuple[float, float, float, float]
    silver: tuple[float, float]
    gold: tuple[float, float]
    goal: tuple[float, float] | None = None
    start: tuple[float, float] | None = None


def coinmaze_layout() -> MazeLayout:
    """The evaluation coin maze of suites/coinmaze.py (cells of width 1, origin bottom-left, fixed S and G)."""
    try:
        from suites.coinmaze import COIN_MAZE
    except ImportError as error:
        raise RuntimeError(f"the coin maze suite is not available ({error}); figures need suites/coinmaze.py") from None
    height, width = COIN_MAZE.walls.shape
    xy = lambda point: (float(point[0]), float(point[1]))  # noqa: E731
    return MazeLayout(walls_HW=COIN_MAZE.walls, extent=(0.0, float(width), 0.0, float(height)),
                      silver=xy(COIN_MAZE.silver_xy), gold=xy(COIN_MAZE.gold_xy), goal=xy(COIN_MAZE.goal_xy),
                      start=xy(COIN_MAZE.start_xy))


def make_figure(plan: Plan, runs: pd.DataFrame, results_dir: Path | str, layout: MazeLayout | None = None) -> Path:
    """Write results_dir/<plan>.png with one panel per run column of ``plan`` and return its path."""
    if plan.figure not in FIGURES:
        raise ValueError(f"plan {plan.name} names no known figure maker: {plan.figure!r} (known: {', '.join(FIGURES)})")
    layout = layout if layout is not None else coinmaze_layout()
    columns = plan.run_columns
    figure, axes = plt.subplots(1, len(columns), figsize=(3.6 * len(columns), 3.9), squeeze=False)
    for axis, column in zip(axes[0], columns):
        _draw_maze(axis, layout)
        sub = runs[runs["column"] == column.label]
        trajectories, note = _first_trajectories(sub)
        for trajectory in trajectories:
            _draw_trajectory(axis, np.asarray(trajectory, dtype=float)[:, :2])
        if note:
            axis.text(0.5, 0.5, note, transform=axis.transAxes, ha="center", va="center", fontsize=8, color="red",
                      wrap=True, bbox={"facecolor": "white", "alpha": 0.8})
        axis.set_title(_panel_title(column.label, sub), fontsize=10)
    figure.suptitle(plan.title, fontsize=10)
    figure.tight_layout()
    path = Path(results_dir) / f"{plan.name}.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return path


def _first_trajectories(sub: pd.DataFrame) -> tuple[list, str]:
    """The lowest seed's recorded trajectories (up to EPISODES_DRAWN) or why there are none."""
    done = sub[sub["status"] == "done"].sort_values("seed")
    if "trajectories" in done:
        for recorded in done["trajectories"]:
            if isinstance(recorded, (list, tuple)) and len(recorded) > 0:
                return list(recorded)[:EPISODES_DRAWN], ""
    if not done.empty:
        return [], "missing: no trajectories recorded"
    if sub.empty:
        return [], "missing: no runs planned"
    failed = sub[sub["status"] == "failed"]
    chosen = failed if not failed.empty else sub
    return [], f"{'failed' if not failed.empty else 'missing'}: {chosen['reason'].iloc[0]}"


def _panel_title(label: str, sub: pd.DataFrame) -> str:
    """``label (score S, success P, n=N)``: the means over the column's finished runs (success where recorded)."""
    done = sub[sub["status"] == "done"]
    scores = done["score"].dropna()
    if scores.empty:
        return label
    rates = done["success_rate"].dropna() if "success_rate" in done else pd.Series(dtype=float)
    success = "" if rates.empty else f", success {rates.mean():.2f}"
    return f"{label} (score {scores.mean():.1f}{success}, n={len(scores)})"


def _draw_maze(axis, layout: MazeLayout) -> None:
    axis.imshow(layout.walls_HW, cmap="Greys", vmin=0, vmax=1.6, extent=layout.extent, origin="upper",
                interpolation="nearest")
    axis.scatter(*layout.silver, s=160, c="silver", edgecolors="black", zorder=3, label="silver coin")
    axis.scatter(*layout.gold, s=160, c="gold", edgecolors="black", zorder=3, label="gold coin")
    if layout.start is not None:
        axis.scatter(*layout.start, s=110, marker="s", c="tab:blue", edgecolors="black", zorder=3, label="start")
    if layout.goal is not None:
        axis.scatter(*layout.goal, s=220, marker="*", c="limegreen", edgecolors="black", zorder=3, label="goal")
    axis.set_xlim(layout.extent[0], layout.extent[1])
    axis.set_ylim(layout.extent[2], layout.extent[3])
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_aspect("equal")


def _draw_trajectory(axis, xy_T2: np.ndarray) -> None:
    """A red path, lighter at earlier timesteps; its start a hollow circle, its end a filled one."""
    if len(xy_T2) < 2 or not np.isfinite(xy_T2).all():
        return
    segments = np.stack([xy_T2[:-1], xy_T2[1:]], axis=1)
    lines = LineCollection(segments, cmap="Reds", norm=plt.Normalize(-0.3 * len(segments), len(segments)),
                           linewidths=2, zorder=4)
    lines.set_array(np.arange(len(segments)))
    axis.add_collection(lines)
    axis.scatter(*xy_T2[0], s=40, facecolors="none", edgecolors="darkred", zorder=5)
    axis.scatter(*xy_T2[-1], s=40, c="darkred", zorder=5)


