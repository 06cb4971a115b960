"""reproduce.py's command-line contract: one-line errors with exit 2, missing data before any work,
--dry-run and --list, a NaN run failing with its reason (exit 1) and retried next time."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.cli import _select, main
from harness.plan import Column, Plan, Row
from tests.harness_support import fit_events, harness_env, reproduce, write_plans


@pytest.fixture()
def env(tmp_path, monkeypatch):
    variables = harness_env(write_plans(tmp_path / "plans"), tmp_path / "fit.log")
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    return variables


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, says", [
    (["--table", "99"], "no plan named 'table99'"),
    (["--ablation", "nope"], "no plan named 'ablation_nope'"),
    (["--table", "901", "--set", "bogus"], "METHOD.KEY=VALUE"),
    (["--table", "901", "--set", "toy.nonexistent=1"], "'nonexistent'"),
    (["--table", "904", "--set", "mage.nonexistent=1"], "mage has no config field 'nonexistent'"),
    (["--table", "901", "--set", "nomethod.lr=1"], "unknown method 'nomethod'"),
    (["--table", "901", "--methods", "nomethod"], "unknown method 'nomethod': plan table901 runs toy"),
    (["--table", "901", "--datasets", "hopper-medium"], "unknown dataset 'hopper-medium': plan table901 has"),
    (["--table", "901", "--profile", "huge"], "invalid choice"),
    (["--table", "901", "--set", "mage.num_scales=4"], "plan table901 does not run mage"),
    (["--table", "901", "--executor", "local", "--wandb", "proj"], "--wandb logs Ray Tune trials"),
    (["--table", "901", "--executor", "local", "--workers", "0"], "--workers must be at least 1, not 0"),
    (["--table", "901", "--workers", "2"], "--workers runs processes of the local executor"),
    (["--table", "901", "--report-only", "--rerun-stale"], "--rerun-stale retrains runs and --report-only"),
])
def test_bad_input_is_one_line_and_exit_2(env, capsys, argv, says):
    assert says in _one_line_error(capsys, argv)


@pytest.mark.parametrize("item, says", [
    ("mage.num_scales=abc", ["num_scales='abc'", "takes an integer"]),
    ("mage.num_scales=true", ["num_scales=True", "takes an integer"]),
    ("mage.num_scales=99", ["num_scales must be in 1..10, got 99", "maze2d-umaze"]),
    ("mage.dropout=1.5", ["dropout must be in [0, 1), got 1.5"]),
    ("mage.scheme=xyz", ["scheme must be one of", "'xyz'"]),
    ("mage.steps=-3", ["steps=-3", "positive integer"]),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_override_values_stop_before_any_work(env, capsys, tmp_path, item, says, dry_run):
    """Type and range of every --set value are checked by building each config of the plan: one line,
    exit 2, and no data generated, no run started (also without --dry-run)."""
    results_dir = tmp_path / "results"
    argv = ["--table", "904", "--profile", "smoke", "--executor", "local", "--results-dir", str(results_dir),
            "--set", item] + (["--dry-run"] if dry_run else [])
    err = _one_line_error(capsys, argv)
    assert all(part in err for part in says), err
    assert not (tmp_path / "fit.log").exists() and not results_dir.exists()


def test_missing_dataset_stops_before_any_work(env, tmp_path):
    run = reproduce(["--table", "903", "--profile", "smoke", "--executor", "local",
                     "--results-dir", str(tmp_path / "results")], env, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
    assert "minari download D4RL/pen/human-v2" in run.stderr
    assert not (tmp_path / "fit.log").exists() and not (tmp_path / "results" / "runs").exists()


def test_dry_run_lists_runs_and_missing_data(env, capsys, tmp_path):
    assert main(["--table", "903", "--profile", "smoke", "--seeds", "2", "--dry-run",
                 "--results-dir", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert out.count("missing ") >= 4   # 2 datasets × 2 seeds, none run yet
    assert "minari download D4RL/pen/human-v2" in out and "GPU-hours" in out
    assert not (tmp_path / "fit.log").exists()


def test_list_names_every_plan_with_its_data(env, capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for flag in ("--table 901", "--table 902", "--table 903"):
        assert flag in out
    assert "pen-human" in out


def test_report_only_writes_the_table_of_finished_runs_and_runs_nothing(env, capsys, tmp_path):
    results_dir = tmp_path / "results"
    argv = ["--table", "902", "--profile", "smoke", "--executor", "local", "--quiet", "--results-dir", str(results_dir)]
    assert main(argv + ["--report-only"]) == 1   # nothing finished yet: every cell missing
    assert "missing" in capsys.readouterr().out and not (tmp_path / "fit.log").exists()
    assert (results_dir / "table902.csv").exists()
    assert main(argv) == 1                        # the real sweep: one run done, one NaN failure
    before = fit_events(tmp_path / "fit.log")
    assert main(argv + ["--report-only"]) == 1    # reports; the failed run is not retried
    assert fit_events(tmp_path / "fit.log") == before
    assert "failed" in capsys.readouterr().out


def test_a_run_finished_under_other_code_defaults_is_reused_with_a_warning_and_retrained_on_request(env, capsys, tmp_path):
    """result.json records the agent's whole config, code defaults included. A finished run whose record
    differs from what the code resolves now (its record rewritten as if batch_size's default had been 32
    when it trained) keeps its run id and is reused with one warning line naming the field; --rerun-stale
    trains it again, and only it."""
    results_dir = tmp_path / "results"
    argv = ["--table", "901", "--profile", "smoke", "--seeds", "1", "--executor", "local", "--quiet",
            "--results-dir", str(results_dir)]
    assert main(argv) == 0
    paths = sorted((results_dir / "runs").glob("*/result.json"))
    records = [json.loads(p.read_text()) for p in paths]
    assert len(records) == 2
    assert all(r["agent_config"]["batch_size"] == 64 and r["agent_config"]["tag"] == r["config"]["tag"] for r in records)
    assert {r["agent_config"]["lr"] for r in records} == {0.01, 0.001}   # the default, and column B's override
    old = records[0]
    old["agent_config"]["batch_size"] = 32
    paths[0].write_text(json.dumps(old))
    capsys.readouterr()
    trained = fit_events(tmp_path / "fit.log")

    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "reusing 1 finished run made with other code defaults (toy batch_size 32 -> 64); --rerun-stale" in err
    assert fit_events(tmp_path / "fit.log") == trained

    assert main(argv + ["--rerun-stale"]) == 0
    events = fit_events(tmp_path / "fit.log")
    tag, other = old["config"]["tag"], records[1]["config"]["tag"]
    assert events["end", tag, "0"] == trained["end", tag, "0"] + 1
    assert events["end", other, "0"] == trained["end", other, "0"]
    assert json.loads(paths[0].read_text())["agent_config"]["batch_size"] == 64
    capsys.readouterr()
    assert main(argv) == 0
    assert "other code defaults" not in capsys.readouterr().err


def test_nan_loss_fails_the_run_and_is_retried(env, capsys, tmp_path):
    argv = ["--table", "902", "--profile", "smoke", "--executor", "local", "--quiet",
            "--results-dir", str(tmp_path / "results")]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "failed" in out
    failures = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*/failure.json")]
    assert len(failures) == 1 and "NaN" in failures[0]["reason"] and "step 5" in failures[0]["reason"]
    assert len(list((tmp_path / "results" / "runs").glob("*/result.json"))) == 1
    assert main(argv) == 1   # retried: the NaN run is started again, the finished one is not
    events = fit_events(tmp_path / "fit.log")
    assert events["start", "nan", "0"] == 2 and events["end", "nan", "0"] == 0
    assert events["start", "ok", "0"] == 1 and events["end", "ok", "0"] == 1


def test_methods_adds_a_registered_method_the_plan_lacks_as_a_column(env, tmp_path):
    """--methods toy,bc on a toy-only plan: BC is trained, evaluated and tabled beside the toy."""
    results_dir = tmp_path / "results"
    assert main(["--table", "903", "--datasets", "maze2d-umaze", "--methods", "toy,bc", "--profile", "smoke",
                 "--executor", "local", "--quiet", "--results-dir", str(results_dir)]) == 0
    bc_results = [json.loads(p.read_text()) for p in (results_dir / "runs").glob("bc-*/result.json")]
    assert len(bc_results) == 1 and bc_results[0]["dataset"] == "maze2d-umaze"
    table = pd.read_csv(results_dir / "table903.csv")
    bc_cell = table[(table["kind"] == "cell") & (table["column"] == "BC")]
    assert len(bc_cell) == 1 and bc_cell["ours_remeasured_mean"].iloc[0] == pytest.approx(bc_results[0]["score"])
    from suites.registry import published_score    # the maze cell on the paper's scale: D4RL's published refs
    assert bc_cell["ours_mean"].iloc[0] == pytest.approx(published_score("maze2d-umaze", bc_results[0]["returns"]).mean())


def test_an_added_method_takes_over_its_paper_only_column():
    """A plan that shows BC from the paper runs it under --methods bc, keeping the paper's number."""
    plan = Plan(name="t", kind="table", title="t", paper_table=3, spread="se",
                rows=(Row("Hopper Medium", "hopper-medium", "Hopper Medium"),),
                columns=(Column("BC", None, paper_only=True, paper_column="BC"),
                         Column("MAGE", "mage", paper_column="MAGE")))
    selected = _select(plan, "bc", None)
    assert [(c.label, c.method, c.is_run, c.paper_column) for c in selected.columns] == [("BC", "bc", True, "BC")]


def test_quiet_draws_no_bar_while_it_generates_a_dataset(env, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))   # empty: maze2d-umaze is generated here
    assert main(["--table", "903", "--datasets", "maze2d-umaze", "--profile", "smoke", "--executor", "local", "--quiet",
                 "--results-dir", str(tmp_path / "results")]) == 0
    err = capsys.readouterr().err
    assert (tmp_path / "datasets" / "mage").is_dir()          # the data were generated in this command
    assert "%|" not in err and "step/s" not in err, err
    from suites.mazes import maze2d_stream
    list(maze2d_stream("umaze", 300, seed=0, progress=True))   # the bar the assertion above looks for
    assert "%|" in capsys.readouterr().err
