"""Aggregation of a runs frame into the paper's table (harness/aggregate.py) and the plan files."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.aggregate import render
from harness.methods import METHODS
from harness.paper import paper_cell
from harness.plan import available_plans, load_plan, plan_name

SEEDS = (0, 1, 2)


def runs_frame(plan, score_of):
    """Every planned run of ``plan`` as done, with score ``score_of(row, column, seed)``."""
    records = []
    for row in plan.rows:
        if row.dataset is None:
            continue
        for column in plan.run_columns:
            for seed in SEEDS:
                score = float(score_of(row.label, column.label, seed))
                records.append({"run_id": f"{row.dataset}-{column.label}-{seed}", "plan": plan.name, "row": row.label,
                                "column": column.label, "method": column.method, "dataset": row.dataset, "seed": seed,
                                "status": "done", "reason": "", "score": score, "episode_scores": [score],
                                "success_rate": np.nan, "wall_s": 1.0, "device": "cpu"})
    return pd.DataFrame.from_records(records)


def set_status(frame, row, column, status, reason, seeds=SEEDS):
    chosen = (frame["row"] == row) & (frame["column"] == column) & frame["seed"].isin(seeds)
    frame.loc[chosen, ["status", "reason", "score"]] = [status, reason, np.nan]


@pytest.fixture(scope="module")
def table4(tmp_path_factory):
    """Table 4 from synthetic runs: MAGE scores 200 + 10·seed everywhere (best in every row), the
    others 10·seed + 1; IQL on Maze2D Large missing, DT on Multi2D Large failed, CQL on Multi2D
    Medium has seed 2 failed (partial)."""
    plan = load_plan("table4")
    frame = runs_frame(plan, lambda row, column, seed: 200 + 10 * seed if column == "MAGE" else 10 * seed + 1)
    set_status(frame, "Maze2D Large", "IQL", "missing", "D4RL/pointmaze/large-v2 is not downloaded")
    set_status(frame, "Multi2D Large", "DT", "failed", "FloatingPointError: loss is nan at step 7")
    set_status(frame, "Multi2D Medium", "CQL", "failed", "killed", seeds=(2,))
    out = tmp_path_factory.mktemp("results")
    text = render(plan, frame, out)
    tidy = pd.read_csv(out / "table4.csv", keep_default_na=False, na_values=[""])
    return plan, frame, out, text, tidy


def cell(tidy, row, column):
    hit = tidy[(tidy["row"] == row) & (tidy["column"] == column)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_cell_is_mean_and_standard_error_over_seeds(table4):
    _, _, _, _, tidy = table4
    mage = cell(tidy, "Maze2D U-maze", "MAGE")  # seeds score 200, 210, 220
    assert mage["ours_mean"] == pytest.approx(210.0)
    assert mage["ours_pm"] == pytest.approx(10.0 / math.sqrt(3))  # std (ddof 1) 10 over sqrt(3) seeds
    assert mage["n_seeds"] == 3 and mage["status"] == "done"
    assert mage["paper_mean"] == 145.4 and mage["paper_pm"] == 3.2
    assert mage["diff"] == pytest.approx(210.0 - 145.4)
    diffuser = cell(tidy, "Maze2D U-maze", "Diffuser")  # extra column compared with Table 17
    assert diffuser["paper_mean"] == paper_cell(17, "Maze2D U-maze", "Diffuser").mean == 113.9
    partial = cell(tidy, "Multi2D Medium", "CQL")  # seeds 0, 1 only: 1 and 11
    assert partial["status"] == "partial" and partial["n_seeds"] == 2
    assert partial["ours_mean"] == pytest.approx(6.0) and partial["ours_pm"] == pytest.approx(5.0)


def test_average_rows_are_means_of_cells(table4):
    _, _, _, _, tidy = table4
    single = cell(tidy, "Single-task Average", "MAGE")
    assert single["kind"] == "group" and single["ours_mean"] == pytest.approx(210.0)
    assert single["paper_mean"] == 153.3
    assert single["ours_pm"] == pytest.approx(10.0 / math.sqrt(3))
    assert cell(tidy, "Single-task Average", "IQL")["status"] == "missing"  # one of its rows is missing
    assert list(tidy["row"].drop_duplicates()) == [
        "Maze2D U-maze", "Maze2D Medium", "Maze2D Large", "Single-task Average",
        "Multi2D U-maze", "Multi2D Medium", "Multi2D Large", "Multi-task Average"]


def test_missing_and_failed_cells_say_why(table4):
    _, _, out, text, tidy = table4
    missing = cell(tidy, "Maze2D Large", "IQL")
    assert missing["status"] == "missing" and math.isnan(missing["ours_mean"])
    failed = cell(tidy, "Multi2D Large", "DT")
    assert failed["status"] == "failed" and failed["reason"] == "FloatingPointError: loss is nan at step 7"
    for rendered in (text, (out / "table4.md").read_text(), (out / "table4.tex").read_text()):
        assert "missing: D4RL/pointmaze/large-v2 is not downloaded" in rendered
        assert "failed: FloatingPointError: loss is nan at step 7" in rendered
    assert "(n=2/3)" in text


def test_paper_only_columns_show_the_papers_numbers(table4):
    _, _, out, text, tidy = table4
    hd = cell(tidy, "Maze2D Large", "HD")
    assert hd["status"] == "paper_only" and hd["paper_mean"] == 155.8 and math.isnan(hd["ours_mean"])
    assert "(155.8 ± 2.5)" in text and "(155.8 ± 2.5)" in (out / "table4.md").read_text()
    assert "Δ +64.6" in text  # MAGE Maze2D U-maze: 210.0 − 145.4


def test_latex_booktabs_with_best_in_bold(table4):
    _, _, out, _, _ = table4
    tex = (out / "table4.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    umaze = next(line for line in tex.splitlines() if line.startswith("Maze2D U-maze"))
    assert r"\textbf{210.0 $\pm$ 5.8}" in umaze
    assert umaze.count(r"\textbf") == 1


def test_iqm_per_method_with_interval(table4):
    plan, frame, out, text, _ = table4
    iqm = pd.read_csv(out / "table4_iqm.csv").set_index("column")
    assert list(iqm.index) == [c.label for c in plan.run_columns]
    mage = frame[frame["column"] == "MAGE"].pivot(index="seed", columns="row", values="score").to_numpy()
    assert iqm.loc["MAGE", "iqm"] == pytest.approx(stats.trim_mean(mage, 0.25, axis=None))
    assert (iqm["n_tasks"].loc[["MAGE", "IQL", "DT"]] == [6, 5, 5]).all()
    assert iqm.loc["CQL", "n_seeds"] == 2  # seed 2 failed on one task: only seeds complete on all tasks
    for method in iqm.index:
        assert iqm.loc[method, "ci_low"] <= iqm.loc[method, "iqm"] <= iqm.loc[method, "ci_high"]
    assert iqm.loc["MAGE", "ci_low"] < iqm.loc["MAGE", "ci_high"]
    assert "IQM" in text and "## IQM" in (out / "table4.md").read_text()


def test_iqm_intervals_are_the_same_on_every_rebuild_and_leave_numpy_global_rng_alone(table4):
    """rliable resamples with numpy's global RNG: iqm_frame seeds it, so a rebuild gives the same interval, and
    restores it, so the caller's draws do not change."""
    from harness.aggregate import iqm_frame
    plan, frame, _, _, _ = table4
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    first = iqm_frame(plan, frame)
    assert np.random.rand() == expected_draw
    np.random.seed(7)   # another global state before the second build
    pd.testing.assert_frame_equal(first, iqm_frame(plan, frame))


def test_rendering_leaves_no_temporary_files(table4):
    _, _, out, _, _ = table4
    assert sorted(p.name for p in out.iterdir()) == ["table4.csv", "table4.html", "table4.md", "table4.tex",
                                                     "table4_curves.png", "table4_iqm.csv"]


def test_maze_cells_compare_with_the_paper_on_its_scale(tmp_path):
    """Maze runs have two scores: on the paper's scale (returns normalised with D4RL's published refs,
    score_published) and on our re-measured refs (score). Ours, Δ and the averages use the first; the
    second is its own CSV column and shows in brackets; the footers say which is which."""
    from harness.aggregate import SCALES_NOTE
    plan = load_plan("table4")
    frame = runs_frame(plan, lambda row, column, seed: 20.0 + seed)      # re-measured: seeds 20, 21, 22
    frame["score_published"] = 2 * frame["score"] + 5                    # the paper's scale: 45, 47, 49
    text = render(plan, frame, tmp_path)
    tidy = pd.read_csv(tmp_path / "table4.csv", keep_default_na=False, na_values=[""])
    mage = cell(tidy, "Maze2D U-maze", "MAGE")
    assert mage["ours_mean"] == pytest.approx(47.0) and mage["ours_pm"] == pytest.approx(2 / math.sqrt(3))
    assert mage["ours_remeasured_mean"] == pytest.approx(21.0) and mage["ours_remeasured_pm"] == pytest.approx(1 / math.sqrt(3))
    assert mage["diff"] == pytest.approx(47.0 - 145.4)
    average = cell(tidy, "Single-task Average", "MAGE")
    assert average["ours_mean"] == pytest.approx(47.0) and average["ours_remeasured_mean"] == pytest.approx(21.0)
    assert average["diff"] == pytest.approx(47.0 - 153.3)
    markdown = (tmp_path / "table4.md").read_text()
    assert "47.0 ± 1.2 [re-measured refs: 21.0 ± 0.6] (145.4 ± 3.2, Δ -98.4)" in markdown
    assert SCALES_NOTE in markdown and SCALES_NOTE in text and "Δ -98.4" in text
    assert "re-measured on our physics" in (tmp_path / "table4.tex").read_text()
    mage_iqm = pd.read_csv(tmp_path / "table4_iqm.csv").set_index("column").loc["MAGE", "iqm"]
    assert mage_iqm == pytest.approx(47.0)


def test_a_suite_without_published_refs_keeps_one_scale(tmp_path):
    plan = load_plan("table1")
    text = render(plan, runs_frame(plan, lambda row, column, seed: 50.0 + seed), tmp_path)
    tidy = pd.read_csv(tmp_path / "table1.csv", keep_default_na=False, na_values=[""])
    ours = tidy[tidy["column"].isin([c.label for c in plan.run_columns])]
    assert (ours["ours_mean"] == 51.0).all() and ours["ours_remeasured_mean"].isna().all()
    np.testing.assert_allclose(ours["diff"], ours["ours_mean"] - ours["paper_mean"])
    assert "re-measured" not in text and "re-measured" not in (tmp_path / "table1.md").read_text()


def test_ablation_gets_a_png_beside_the_paper(tmp_path):
    plan = load_plan("ablation_inverse_dynamics")
    frame = runs_frame(plan, lambda row, column, seed: 100 + seed)
    set_status(frame, "Door-Cloned", "Explicit", "missing", "D4RL/door/cloned-v2 is not downloaded")
    text = render(plan, frame, tmp_path)
    png = tmp_path / "ablation_inverse_dynamics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"plot: {png}" in text
    tidy = pd.read_csv(tmp_path / "ablation_inverse_dynamics.csv")
    latent = tidy[(tidy["row"] == "Pen-Expert") & (tidy["column"] == "Latent (Ours)")].iloc[0]
    assert latent["paper_mean"] == 147.8 and latent["ours_mean"] == pytest.approx(101.0)
    assert "missing: D4RL/door/cloned-v2 is not downloaded" in text


def test_benchmark_table_bolds_the_fastest(tmp_path):
    plan = load_plan("table8")
    frame = runs_frame(plan, lambda row, column, seed: 3.0 if column == "DT" else 30.0)
    render(plan, frame, tmp_path)
    row = next(line for line in (tmp_path / "table8.tex").read_text().splitlines() if line.startswith("Time (ms)"))
    assert r"\textbf{3.00 $\pm$ 0.00} (6.49 $\pm$ 0.11)" in row  # DT's 3 ms beats the paper's 7.81 ms ADT
    assert row.count(r"\textbf") == 1 and r"12863.07 $\pm$ 19.37" in row


# ---------------------------------------------------------------- plan files

EXPECTED_PLANS = {plan_name(table=t) for t in (1, 2, 3, 4, 8, 15, 16, 17, 18, 24)} | {
    plan_name(ablation=a) for a in ("scales", "schemes", "rtg", "inverse-dynamics", "codebook", "depth", "adapter",
                                    "reweighting", "fixed-config", "scales-cond", "rtg-target", "goal-given")} | {
    plan_name(figure=f) for f in (1, 3, 4)}


def test_every_listed_item_has_a_plan():
    assert set(available_plans()) == EXPECTED_PLANS


@pytest.mark.parametrize("name", sorted(EXPECTED_PLANS))
def test_plan_loads_and_matches_the_paper_csv(name):
    plan = load_plan(name)
    assert plan.name == name and plan.run_columns, name
    assert all(column.method in METHODS for column in plan.run_columns)
    assert len({c.label for c in plan.columns}) == len(plan.columns)
    datasets = set(plan.datasets)
    assert all(set(group.rows) <= datasets for group in plan.groups)
    if plan.kind == "figure":
        assert plan.figure == name and plan.datasets == ("coinmaze",)
    for column in plan.columns:
        table = column.paper_table if column.paper_table is not None else plan.paper_table
        if table is None:
            continue
        for row_label in [r.paper_row for r in plan.rows] + [g.label for g in plan.groups]:
            assert paper_cell(table, row_label, column.paper_column) is not None, (table, row_label, column.paper_column)
    if importlib.util.find_spec("suites.registry") is not None:
        from suites.registry import dataset_spec
        for key in datasets:
            assert dataset_spec(key).key == key


# ---------------------------------------------------------------- figures

def test_figure_draws_trajectories_over_the_maze(tmp_path):
    from harness.figures import coinmaze_layout, make_figure
    from suites.coinmaze import COIN_MAZE

    layout = coinmaze_layout()
    assert layout.walls_HW.shape == COIN_MAZE.walls.shape and layout.extent == (0.0, 9.0, 0.0, 9.0)
    assert layout.silver == tuple(COIN_MAZE.silver_xy) and layout.goal == tuple(COIN_MAZE.goal_xy)
    plan = load_plan("figure3")
    path_T2 = np.linspace(COIN_MAZE.start_xy, COIN_MAZE.goal_xy, 40)  # [T=40, (x, y)]
    obs_T6 = np.hstack([path_T2, np.zeros((40, 2)), np.tile(COIN_MAZE.goal_xy, (40, 1))])
    frame = runs_frame(plan, lambda row, column, seed: 50.0)
    frame["trajectories"] = [[obs_T6.tolist()] * 3] * len(frame)
    set_status(frame, "Coin maze", "DT", "failed", "FloatingPointError: loss is nan at step 3")
    text = render(plan, frame, tmp_path)
    png = tmp_path / "figure3.png"
    assert f"figure: {png}" in text and "failed: FloatingPointError: loss is nan at step 3" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with pytest.raises(ValueError, match="figure maker"):
        make_figure(load_plan("table4"), frame, tmp_path, layout=layout)


def test_success_rate_is_reported_per_cell_where_the_suite_has_one(tmp_path, table4):
    plan = load_plan("figure3")
    frame = runs_frame(plan, lambda row, column, seed: 10.0)
    rates = {"DT": [0.0, 0.5, 1.0], "MAGE": [0.2, 0.4, 0.9]}   # per seed in SEEDS order; Diffuser has none
    for column, per_seed in rates.items():
        for seed, rate in zip(SEEDS, per_seed):
            frame.loc[(frame["column"] == column) & (frame["seed"] == seed), "success_rate"] = rate
    set_status(frame, "Coin maze", "MAGE", "failed", "killed", seeds=(SEEDS[-1],))   # its 0.9 must not count
    text = render(plan, frame, tmp_path)
    success = pd.read_csv(tmp_path / "figure3_success.csv").set_index("column")
    assert list(success.index) == ["DT", "MAGE"]
    assert success.loc["DT", "success_mean"] == pytest.approx(0.5)
    assert success.loc["DT", "success_se"] == pytest.approx(np.std([0.0, 0.5, 1.0], ddof=1) / np.sqrt(3))
    assert success.loc["MAGE", "success_mean"] == pytest.approx(0.3) and success.loc["MAGE", "n_seeds"] == 2
    assert success.loc["MAGE", "per_seed"] == "0.20 0.40"
    assert "Success rate" in text and "0.50 ± 0.29" in text
    assert "0.50 ± 0.29" in (tmp_path / "figure3.md").read_text()
    _, _, out, table_text, _ = table4   # no success rates anywhere: no section, no file
    assert not (out / "table4_success.csv").exists() and "Success rate" not in table_text


def test_a_table_without_runs_says_missing_everywhere(tmp_path):
    plan = load_plan("table2")
    text = render(plan, pd.DataFrame(), tmp_path)
    tidy = pd.read_csv(tmp_path / "table2.csv", keep_default_na=False, na_values=[""])
    run_cells = tidy[tidy["column"].isin([c.label for c in plan.run_columns]) & (tidy["kind"] == "cell")]
    assert len(run_cells) == 6 and (run_cells["status"] == "missing").all() and run_cells["ours_mean"].isna().all()
    assert text.count("missing: no runs planned") == 6
    hdmi = tidy[tidy["column"] == "HDMI"].set_index("row")["paper_raw"]
    assert list(hdmi) == ["-", "69.2±1.8", "-"]  # the paper's own "-" (Partial, Average) kept as printed
    iqm = pd.read_csv(tmp_path / "table2_iqm.csv")
    assert (iqm["n_tasks"] == 0).all() and "missing: no finished runs" in text
