"""Learning curves of a plan (results/<plan>_curves.png): per table row (dataset) a panel, per run
column (method) the periodic evaluation score against training steps, mean ± standard error over
seeds (a band; one seed draws the line alone), and the paper's final number for that cell as a
dashed line in the column's colour where the paper reports one. Columns without a curve say why in
their panel ("missing: ...", "failed: ...", "no periodic evaluations"), so no absent line is read as
a flat one. Only finished runs count: result.json is the only source of truth.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, never a window (CI and clusters have no display)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.atomic import atomic_path  # noqa: E402
from suites.registry import published_from_normalized  # noqa: E402

if TYPE_CHECKING:
    from harness.aggregate import Cell
    from harness.plan import Plan

CURVE_COLUMNS = ["row", "column", "step", "mean", "se", "n_seeds"]
PANELS_PER_LINE = 3


def curve_frame(plan: "Plan", runs: pd.DataFrame) -> pd.DataFrame:
    """One line per (row, column, step) with a periodic evaluation: ``mean`` and ``se`` (standard
    error over seeds, NaN for one seed) of the seeds' scores at that step, and ``n_seeds``. Scores are on
    the table's scale: the paper's (published reference scores) where the row's suite has them."""
    records = []
    done = runs[runs["status"] == "done"]
    for row in plan.rows:
        for column in plan.run_columns:
            sub = done[(done["row"] == row.label) & (done["column"] == column.label)]
            points = [(seed, point["step"], _on_table_scale(row.dataset, point["score"])) for seed, curve in zip(sub["seed"], sub["eval_curve"])
                      if isinstance(curve, list) for point in curve]
            if not points:
                continue
            per_seed = pd.DataFrame(points, columns=["seed", "step", "score"]).groupby(["step", "seed"])["score"].mean()
            for step, scores in per_seed.groupby(level="step"):
                values = scores.to_numpy(dtype=float)
                se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
                records.append({"row": row.label, "column": column.label, "step": int(step),
                                "mean": float(values.mean()), "se": se, "n_seeds": len(values)})
    return pd.DataFrame.from_records(records, columns=CURVE_COLUMNS)


def _on_table_scale(dataset: str, score: float) -> float:
    """A score on the suite's own refs as the table shows it: on its published refs where it has them."""
    published = published_from_normalized(dataset, score)
    return float(score if published is None else published)


def draw_curves(plan: "Plan", cells: list["Cell"], curves: pd.DataFrame):
    """The matplotlib Figure: one panel per run row, in the plan's order."""
    rows = [row.label for row in plan.rows if row.dataset is not None]
    columns = plan.run_columns
    colours = {column.label: plt.get_cmap("tab10")(index % 10) for index, column in enumerate(columns)}
    cell_of = {(cell.row, cell.column): cell for cell in cells if cell.kind == "cell"}
    per_line = min(PANELS_PER_LINE, max(1, len(rows)))
    lines = max(1, math.ceil(len(rows) / per_line))
    figure, axes = plt.subplots(lines, per_line, figsize=(4.6 * per_line, 3.4 * lines + 0.8), squeeze=False)
    for axis in axes.flat[len(rows):]:
        axis.set_visible(False)
    for axis, row in zip(axes.flat, rows):
        notes = []
        for column in columns:
            cell, colour = cell_of.get((row, column.label)), colours[column.label]
            curve = curves[(curves["row"] == row) & (curves["column"] == column.label)].sort_values("step")
            if curve.empty:
                notes.append(f"{column.label}: {_why_no_curve(cell)}")
            else:
                steps, mean = curve["step"].to_numpy(), curve["mean"].to_numpy()
                axis.plot(steps, mean, marker="o", markersize=3, color=colour, label=column.label)
                se = curve["se"].to_numpy()
                if np.isfinite(se).any():
                    axis.fill_between(steps, mean - se, mean + se, color=colour, alpha=0.2, linewidth=0)
            if cell is not None and cell.paper is not None and cell.paper.reported:
                axis.axhline(cell.paper.mean, color=colour, linestyle="--", linewidth=1)
        if notes:
            axis.text(0.02, 0.98, "\n".join(notes), transform=axis.transAxes, ha="left", va="top", fontsize=7,
                      color="firebrick")
        axis.set_title(row, fontsize=10)
        axis.set_xlabel("training step")
        axis.set_ylabel("normalised score (table's scale)")
    handles = [plt.Line2D([], [], color=colours[c.label], marker="o", markersize=3, label=c.label) for c in columns]
    handles.append(plt.Line2D([], [], color="grey", linestyle="--", label="paper (final)"))
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    figure.suptitle(f"{plan.title}: periodic evaluation score, mean ± SE over seeds", fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


def _why_no_curve(cell: "Cell | None") -> str:
    if cell is None or cell.status in ("done", "partial"):
        return "no periodic evaluations"
    return f"{cell.status}: {cell.reason}"[:80]


def plot_curves(plan: "Plan", cells: list["Cell"], runs: pd.DataFrame, results_dir: Path) -> bytes:
    """Write results_dir/<plan>_curves.png and return its PNG bytes."""
    figure = draw_curves(plan, cells, curve_frame(plan, runs))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    png = buffer.getvalue()
    with atomic_path(Path(results_dir) / f"{plan.name}_curves.png") as tmp:
        tmp.write_bytes(png)
    return png
