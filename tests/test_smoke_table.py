"""End to end: `reproduce.py --table 4 --profile smoke`, on its Maze2D U-maze row (every method of
the table, real agents, Ray Tune) writes the learning curves and the HTML report, and every run's
TensorBoard files hold its losses, learning rates, throughput and periodic scores (MAGE: codebook
usage too); the report opens in a real browser with every cell shown."""
from __future__ import annotations

import pytest

from harness.plan import load_plan
from tests.browser import need_browser, open_report
from tests.harness_support import reproduce, results, scalars

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results_dir = tmp_path_factory.mktemp("smoke")
    run = reproduce(["--table", "4", "--profile", "smoke", "--datasets", "maze2d-umaze", "--results-dir",
                     str(results_dir)], {}, timeout=900)
    return run, results_dir


def test_smoke_table_writes_curves_report_and_live_metrics(smoke):
    run, results_dir = smoke
    assert run.returncode == 0, run.stderr[-3000:]
    assert (results_dir / "table4_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"report: {results_dir / 'table4.html'}" in run.stdout
    finished = results(results_dir / "runs")
    assert sorted(r["method"] for r in finished.values()) == sorted(load_plan("table4").methods)
    for run_id, result in finished.items():
        logged = scalars(results_dir / "runs" / run_id)
        assert {"perf/steps_per_s", "eval/score"} <= set(logged), (run_id, sorted(logged))
        assert [step for step, _ in logged["eval/score"]] == [p["step"] for p in result["eval_curve"]] != []
        losses = [tag for tag in logged if "loss" in tag]   # "loss", "loss/ce", CQL's "qf_loss", ...
        assert set(losses) == {tag for tag in result["training_curves"] if "loss" in tag} != set(), run_id
        for tag in losses:   # smoke runs are short: TensorBoard has every step, result.json a subsample
            assert {step for step, _ in result["training_curves"][tag]} <= {step for step, _ in logged[tag]}, tag
        assert max(logged[tag][-1][0] for tag in losses) == result["steps"], run_id
        rates = [tag for tag in logged if tag.startswith("lr/")]
        assert rates and all(value > 0 for tag in rates for _, value in logged[tag]), run_id
        if result["method"] == "mage":
            assert "codebook/usage" in logged and "loss/ce" in logged


def test_smoke_report_opens_in_a_browser(smoke):
    need_browser()
    run, results_dir = smoke
    assert run.returncode == 0, run.stderr[-3000:]
    page = open_report(results_dir / "table4.html")
    assert page.errors == [] and [m for m in page.console if m[0] == "error"] == [] and page.failed_requests == []
    plan = load_plan("table4")
    assert len(page.cells) == len(plan.columns) and all(cell["visible"] and cell["text"] for cell in page.cells)
    assert {cell["status"] for cell in page.cells} == {"done", "paper_only"}
    assert [image["alt"] for image in page.images] == ["Learning curves"] and page.images[0]["loaded"]
    assert page.run_rows == len(plan.methods)
