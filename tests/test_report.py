"""Learning curves (harness/report/curves.py) and the HTML report (harness/report/html.py) from
synthetic runs frames; the report is loaded in a real headless chromium (tests/browser.py)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.aggregate import render, table_cells
from harness.plan import load_plan
from harness.report.curves import curve_frame, draw_curves
from suites.registry import dataset_spec, published_from_normalized
from tests.browser import need_browser, open_report
from tests.test_aggregate import runs_frame, set_status

STEPS = (100, 200, 300)


def with_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run gets a periodic curve: score = step / 10 + 10 * seed (so the mean over seeds 0-2 is
    step / 10 + 10 and the SE 10 / sqrt(3)) and a provenance record."""
    frame = frame.copy()
    frame["eval_curve"] = [[{"step": s, "score": s / 10 + 10 * seed, "se": 1.0, "success": None, "episodes": 2}
                            for s in STEPS] for seed in frame["seed"]]
    frame["provenance"] = [{"git_commit": "0123abc", "device": "cpu", "hostname": "node7", "wall_s": 75.0,
                            "train_s": 60.0, "steps": 300, "profile": "smoke",
                            "versions": {"torch": "2.13.0", "ray": "2.60.0"}}] * len(frame)
    return frame


@pytest.fixture(scope="module")
def table4_report(tmp_path_factory):
    """Table 4 with curves; IQL on Maze2D Large missing, DT on Multi2D Large failed, CQL on Multi2D
    Medium partial (seed 2 failed)."""
    plan = load_plan("table4")
    frame = with_curves(runs_frame(plan, lambda row, column, seed: 10.0 * seed + 1))
    set_status(frame, "Maze2D Large", "IQL", "missing", "D4RL/pointmaze/large-v2 is not downloaded")
    set_status(frame, "Multi2D Large", "DT", "failed", "FloatingPointError: loss is nan at step 7")
    set_status(frame, "Multi2D Medium", "CQL", "failed", "killed", seeds=(2,))
    out = tmp_path_factory.mktemp("report")
    text = render(plan, frame, out)
    return plan, frame, out, text


def _paper_units_per_point(key: str) -> float:
    """How many points on the published refs' scale one point on the suite's own refs is."""
    spec = dataset_spec(key)
    return (spec.ref_max - spec.ref_min) / (spec.ref_published["max"] - spec.ref_published["min"])


def test_curves_are_mean_and_standard_error_over_seeds_on_the_papers_scale(table4_report):
    plan, frame, _, _ = table4_report
    curves = curve_frame(plan, frame).set_index(["row", "column", "step"])
    point = curves.loc[("Maze2D U-maze", "MAGE", 200)]
    # the mazes' periodic scores are on re-measured refs; the table (and its curves) on the paper's
    assert point["mean"] == pytest.approx(published_from_normalized("maze2d-umaze", 20.0 + 10.0))
    assert point["mean"] != pytest.approx(30.0) and point["n_seeds"] == 3
    assert point["se"] == pytest.approx(10.0 / math.sqrt(3) * _paper_units_per_point("maze2d-umaze"))
    partial = curves.loc[("Multi2D Medium", "CQL", 100)]     # seed 2 failed: seeds 0 and 1 count
    assert partial["n_seeds"] == 2 and partial["mean"] == pytest.approx(published_from_normalized("multi2d-medium", 15.0))
    assert ("Maze2D Large", "IQL", 100) not in curves.index and ("Multi2D Large", "DT", 100) not in curves.index


def test_curves_panel_per_dataset_with_the_papers_number_dashed(table4_report):
    plan, frame, out, text = table4_report
    cells = table_cells(plan, frame)
    figure = draw_curves(plan, cells, curve_frame(plan, frame))
    panels = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title() for axis in panels] == [row.label for row in plan.rows]
    umaze = panels[0]
    solid = {line.get_label(): line for line in umaze.get_lines() if line.get_linestyle() == "-"}
    assert set(solid) == {c.label for c in plan.run_columns}
    assert list(solid["MAGE"].get_xdata()) == list(STEPS)
    np.testing.assert_allclose(solid["MAGE"].get_ydata(),
                               [published_from_normalized("maze2d-umaze", s / 10 + 10) for s in STEPS])
    dashed = sorted(line.get_ydata()[0] for line in umaze.get_lines() if line.get_linestyle() == "--")
    # the paper's Maze2D U-maze numbers of CQL, IQL, DT, MAGE (Table 4) and Diffuser (Table 17)
    assert dashed == sorted([-8.9, 42.1, 31.0, 145.4, 113.9])
    large = panels[2]
    assert any("IQL: missing: D4RL/pointmaze/large-v2 is not downloaded" in t.get_text() for t in large.texts)
    png = (out / "table4_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and f"learning curves: {out / 'table4_curves.png'}" in text


def test_report_opens_in_a_browser_and_shows_every_cell(table4_report):
    need_browser()
    plan, frame, out, text = table4_report
    assert f"report: {out / 'table4.html'}" in text
    page = open_report(out / "table4.html")
    assert page.errors == [] and [m for m in page.console if m[0] in ("error", "warning")] == []
    assert page.failed_requests == [] and page.requested == [(out / "table4.html").resolve().as_uri()]
    tidy = pd.read_csv(out / "table4.csv", keep_default_na=False, na_values=[""])
    shown = {(c["row"], c["column"].removesuffix(" [paper]")): c for c in page.cells}
    assert len(page.cells) == len(tidy) and set(shown) == set(zip(tidy["row"], tidy["column"]))
    assert all(cell["visible"] and cell["text"] for cell in page.cells)
    for record in tidy.itertuples():
        cell = shown[(record.row, record.column)]
        assert cell["status"] == record.status
        assert f"paper {_paper_text(record)}" in cell["text"]
        if record.status in ("failed", "missing"):
            assert f"{record.status}: {record.reason}" in cell["text"]
        if record.status in ("done", "partial"):
            assert f"{record.ours_mean:.1f}" in cell["text"]
        if not pd.isna(record.diff):
            assert f"Δ {record.diff:+.1f}" in cell["text"]
    assert shown[("Maze2D Large", "IQL")]["text"].startswith("missing: D4RL/pointmaze/large-v2 is not downloaded")
    assert "(n=2/3)" in shown[("Multi2D Medium", "CQL")]["text"]
    assert [image["alt"] for image in page.images] == ["Learning curves"] and all(i["loaded"] for i in page.images)
    assert page.run_rows == len(frame)


def _paper_text(record) -> str:
    """The paper's part of a cell as the tidy CSV has it: "mean ± pm", "mean", the raw text, or "-"."""
    if pd.isna(record.paper_mean):
        return record.paper_raw or "-"
    return f"{record.paper_mean:.1f}" + ("" if pd.isna(record.paper_pm) else f" ± {record.paper_pm:.1f}")


@pytest.mark.parametrize("name, images", [
    ("ablation_inverse_dynamics", ["Learning curves", "Ablation: ours beside the paper"]),
    ("figure3", ["Learning curves", "Figure: evaluation trajectories"]),
])
def test_ablation_and_figure_reports_embed_their_images(tmp_path, name, images):
    need_browser()
    plan = load_plan(name)
    frame = with_curves(runs_frame(plan, lambda row, column, seed: 50.0 + seed))
    frame["trajectories"] = [[[[1.0, 1.0, 0.0, 0.0], [2.0, 1.5, 0.0, 0.0], [3.0, 2.0, 0.0, 0.0]]]] * len(frame)
    render(plan, frame, tmp_path)
    page = open_report(tmp_path / f"{name}.html")
    assert page.errors == [] and page.failed_requests == []
    assert [image["alt"] for image in page.images] == images
    assert all(image["loaded"] and image["width"] > 300 for image in page.images)
    assert all(cell["visible"] for cell in page.cells) and len(page.cells) == len(plan.rows) * len(plan.columns)
