"""Ablation plots: one panel per scenario, a bar per column, ours beside the paper's (PNG)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, never a window (CI and clusters have no display)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.atomic import atomic_path  # noqa: E402

if TYPE_CHECKING:
    from harness.aggregate import Cell
    from harness.plan import Plan

OURS_COLOR, PAPER_COLOR = "#1f77b4", "#bbbbbb"


def plot_ablation(plan: "Plan", cells: list["Cell"], results_dir: Path) -> Path:
    """Write results_dir/<plan>.png: per row, bars of ours (± spread) and the paper's (± its spread).

    Cells without our number (paper-only, missing, failed) draw only the paper's bar; a missing or
    failed cell is marked with its status above the axis so it is not read as zero.
    """
    row_labels = list(dict.fromkeys(c.row for c in cells if c.kind == "cell"))
    columns = [c.label for c in plan.columns]
    figure, axes = plt.subplots(1, len(row_labels), figsize=(max(4.0, 0.8 * len(columns) + 1.5) * len(row_labels), 3.8),
                                squeeze=False)
    x = np.arange(len(columns))
    width = 0.4
    for axis, row in zip(axes[0], row_labels):
        by_column = {c.column: c for c in cells if c.kind == "cell" and c.row == row}
        ours = [by_column[label] for label in columns]
        ours_mean = [c.ours_mean for c in ours]
        ours_err = [c.ours_pm for c in ours]  # NaN draws no bar / no error bar
        paper_mean = [c.paper.mean if c.paper is not None and c.paper.reported else math.nan for c in ours]
        paper_err = [math.nan if c.paper is None else c.paper.pm for c in ours]
        axis.bar(x - width / 2, ours_mean, width, yerr=ours_err, color=OURS_COLOR,
                 label="ours", capsize=3)
        axis.bar(x + width / 2, paper_mean, width, yerr=paper_err, color=PAPER_COLOR,
                 label="paper", capsize=3)
        for position, cell in zip(x, ours):
            if cell.status in ("missing", "failed"):
                axis.annotate(cell.status, (position - width / 2, 0), rotation=90, ha="center", va="bottom",
                              fontsize=7, color="red")
        axis.set_xticks(x, columns, rotation=30, ha="right", fontsize=8)
        axis.set_title(row)
        axis.set_ylabel("normalised score")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(plan.title, fontsize=10)
    figure.tight_layout()
    path = Path(results_dir) / f"{plan.name}.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return path
