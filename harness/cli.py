"""The command line of reproduce.py: arguments, the order of work, and exit codes.

Exit codes: 0 every run done; 1 some runs failed (the table is still written, failed cells marked);
2 bad input or missing data — one line on stderr saying what is wrong and what to do, never a
traceback. Missing data stop the command before any work: every dataset of the plan is checked first.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from harness.plan import Column, Plan, PlanError, load_plan, plan_name
from harness.profiles import PROFILE_NAMES, load_profile
from harness.store import RunStore

EXIT_OK, EXIT_RUNS_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # argparse prints usage + message; we want one line
        self.exit(EXIT_BAD_INPUT, f"reproduce.py: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="reproduce.py", description="Reproduce the MAGE paper's tables, ablations and figures.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--list", action="store_true", help="every table, ablation and figure, with its data")
    which.add_argument("--table", type=int, metavar="N", help="a paper table, e.g. 4")
    which.add_argument("--ablation", metavar="NAME", help="an ablation, e.g. scales")
    which.add_argument("--figure", type=int, metavar="N", help="a paper figure, e.g. 3")
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="paper", help="smoke | quick | cpu | paper (default) | h100-budget (see harness/profiles.yaml)")
    parser.add_argument("--methods", help="comma-separated methods to run (default: the plan's); a registered method "
                        "the plan lacks, e.g. bc in Table 4, is added as an extra column")
    parser.add_argument("--datasets", help="comma-separated datasets of the plan to run (default: all)")
    parser.add_argument("--seeds", type=int, metavar="N", help="seeds per cell (default: the profile's)")
    parser.add_argument("--executor", choices=("ray", "local"), default="ray",
                        help="ray: Ray Tune trials (default); local: in this process, one run after another "
                        "(or --workers at once)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="local executor: N runs at once, each in its own process with --cpus-per-run "
                        "threads (default 1: in this process)")
    parser.add_argument("--address", help="join this Ray cluster (e.g. auto or 10.0.0.1:6379) instead of a local one")
    parser.add_argument("--storage", help="shared results path for cluster runs (runs go to STORAGE/runs)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs per run: Ray trial, or --workers process (default 1)")
    parser.add_argument("--gpus-per-run", type=float, default=None,
                        help="GPUs per run, fractions allowed (default: 1 when CUDA is available, else 0)")
    parser.add_argument("--results-dir", default="results", help="where tables and runs go (default results/)")
    parser.add_argument("--dry-run", action="store_true", help="show the plan, missing data and GPU-hours; run nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="write the table from the runs finished so far (others show as missing); run nothing")
    parser.add_argument("--fresh", action="store_true", help="forget the plan's finished runs and start over")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="retrain the finished runs whose recorded config differs from what the code resolves "
                        "now (a default changed since); without it they are reused, with a warning")
    parser.add_argument("--download", action="store_true", help="download missing Minari datasets first")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.KEY=VALUE",
                        help="config override, repeatable, e.g. --set mage.num_scales=4")
    parser.add_argument("--wandb", metavar="PROJECT",
                        help="also log every run to Weights & Biases project PROJECT (Ray executor; "
                        "WANDB_MODE=offline keeps the runs on disk)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:   # --help, or a bad argument already reported in one line
        return int(exit_.code or 0)
    from suites.errors import DataError
    try:
        return _run(args)
    except (DataError, PlanError, ValueError) as error:
        print(f"reproduce.py: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    from harness.config import check_plan_configs, parse_overrides
    from harness.dryrun import list_plans

    if args.list:
        print(list_plans())
        return EXIT_OK
    plan = _select(load_plan(plan_name(args.table, args.ablation, args.figure)), args.methods, args.datasets)
    profile = load_profile(args.profile)
    if plan.benchmark:
        from harness.benchmarks import benchmark_command, run_benchmark_plan
        device = "cuda" if (args.gpus_per_run if args.gpus_per_run is not None else _default_gpus()) > 0 else "cpu"
        if args.dry_run:
            print(f"{plan.title}: measured by a benchmark, no training runs:\n  "
                  + " ".join(benchmark_command(plan, profile.agent_size, Path(args.results_dir), device)))
            return EXIT_OK
        return run_benchmark_plan(plan, profile.agent_size, Path(args.results_dir), device)
    seeds = args.seeds if args.seeds is not None else profile.seeds
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, not {seeds}")
    overrides = parse_overrides(args.overrides)
    check_plan_configs(plan, profile.agent_size, overrides)   # type and range of every config, before any work
    gpus_per_run = args.gpus_per_run if args.gpus_per_run is not None else _default_gpus()
    if args.cpus_per_run <= 0 or gpus_per_run < 0:
        raise ValueError("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    if args.rerun_stale and args.report_only:
        raise ValueError("--rerun-stale retrains runs and --report-only runs nothing: drop one of them")
    if args.workers > 1 and args.executor != "local":
        raise ValueError("--workers runs processes of the local executor; add --executor local "
                         "(Ray schedules its trials by --cpus-per-run / --gpus-per-run)")
    if args.wandb is not None:
        _check_wandb(args)

    # a report needs no data: it reads finished runs only (e.g. a sweep still running elsewhere)
    missing = {} if args.report_only else _missing_data(plan, profile.data_size)
    if missing and not args.dry_run:
        if not args.download:
            first = next(iter(missing.values()))
            more = f" (and {len(missing) - 1} more datasets missing; --dry-run lists them)" if len(missing) > 1 else ""
            raise ValueError(f"{first}{more}")
        _download(missing, profile.data_size)
        missing = {}

    from harness.runs import plan_runs
    from harness.sweep import worker_device
    planned = plan_runs(plan, profile, seeds, overrides, device=worker_device(gpus_per_run))
    results_dir = Path(args.results_dir)
    store = RunStore((Path(args.storage) if args.storage else results_dir) / "runs")
    stale = {} if args.fresh else _stale_runs(planned, store)   # --fresh forgets every run below anyway
    if stale and args.rerun_stale and not args.dry_run:
        print(f"retraining {_stale_summary(stale)}", file=sys.stderr)
        for run_id in stale:
            store.forget(run_id)
    elif stale:
        print(f"reproduce.py: reusing {_stale_summary(stale)}; --rerun-stale retrains them", file=sys.stderr)
    if args.dry_run:
        from harness.dryrun import describe_plan
        from suites.registry import dataset_spec
        horizons = {key: int(dataset_spec(key).horizon) for key in plan.datasets}
        print(describe_plan(plan, planned, store, profile.name, seeds, missing, horizons))
        return EXIT_OK

    if args.fresh and not args.report_only:
        for run in planned:
            store.forget(run.spec.run_id)
    if not args.report_only:
        _sweep(planned, store, args, gpus_per_run, profile.data_size, results_dir, f"{plan.name}-{profile.name}")

    from harness.aggregate import render
    from harness.store import runs_frame
    frame = runs_frame(plan.name, [(run.row, run.column, run.spec) for run in planned], store)
    results_dir.mkdir(parents=True, exist_ok=True)
    print(render(plan, frame, results_dir))
    return EXIT_RUNS_FAILED if (frame["status"] != "done").any() else EXIT_OK


def _select(plan: Plan, methods: str | None, datasets: str | None) -> Plan:
    """``plan`` restricted to the methods / datasets named on the command line.

    A named method that the plan does not run but the harness has (say BC beside Table 4's
    baselines) becomes one more column; it takes over a paper-only column of the same label, so
    the paper's number for it still shows beside ours."""
    if methods:
        from harness.methods import method_label, registered_methods
        others = tuple(m for m in registered_methods() if m not in plan.methods)
        also = f"; the harness also has {', '.join(others)}" if others else ""
        wanted = _names(methods, (*plan.methods, *others), "method",
                        f"plan {plan.name} runs {', '.join(plan.methods) or 'none'}{also}")
        columns = [c for c in plan.columns if not c.is_run or c.method in wanted]
        for method in sorted(wanted - set(plan.methods)):
            label = method_label(method)
            paper_twin = next((i for i, c in enumerate(columns) if c.paper_only and c.label == label), None)
            if paper_twin is None:
                columns.append(Column(label=label, method=method, paper_column=label))
            else:
                columns[paper_twin] = dataclasses.replace(columns[paper_twin], method=method, paper_only=False)
        plan = dataclasses.replace(plan, columns=tuple(columns))
    if datasets:
        wanted = _names(datasets, plan.datasets, "dataset", f"plan {plan.name} has {', '.join(plan.datasets)}")
        plan = dataclasses.replace(plan, rows=tuple(r for r in plan.rows if r.dataset in wanted))
    return plan


def _names(text: str, known: tuple[str, ...], what: str, choices: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}: {choices}")
    return names


def _check_wandb(args: argparse.Namespace) -> None:
    """--wandb works through Ray Tune's W&B callback: it needs the Ray executor and the wandb package."""
    import importlib.util
    if args.executor != "ray":
        raise ValueError("--wandb logs Ray Tune trials (Ray's W&B integration); drop --executor local")
    if not args.wandb.strip():
        raise ValueError("--wandb needs a project name, e.g. --wandb mage-repro")
    if importlib.util.find_spec("wandb") is None:
        raise ValueError("--wandb needs the wandb package: pip install wandb (or pip install -e \".[wandb]\")")


def _default_gpus() -> float:
    import torch
    return 1.0 if torch.cuda.is_available() else 0.0


def _missing_data(plan: Plan, profile: str) -> dict[str, str]:
    """dataset key -> one-line message, for every dataset of the plan that is absent and not generated here."""
    from suites.registry import missing_data
    return {key: message for key in plan.datasets if (message := missing_data(key, profile))}


def _download(missing: dict[str, str], profile: str) -> None:
    from suites.registry import load_offline_dataset
    for key in missing:
        print(f"downloading {key} ...", file=sys.stderr)
        load_offline_dataset(key, profile, download=True)


def _stale_runs(planned, store: RunStore) -> dict[str, tuple[str, dict[str, tuple[Any, Any]]]]:
    """{run_id: (method, config_changes)} of the finished runs whose result.json records an agent_config
    other than the one the code resolves now (results written before configs were recorded cannot tell)."""
    from harness.config import agent_config, config_changes

    stale = {}
    for run in planned:
        result = store.result(run.spec.run_id)
        if result is None or "agent_config" not in result:
            continue
        changes = config_changes(result["agent_config"], agent_config(run.spec.method, run.spec.config))
        if changes:
            stale[run.spec.run_id] = (run.spec.method, changes)
    return stale


def _stale_summary(stale: dict[str, tuple[str, dict[str, tuple[Any, Any]]]]) -> str:
    """"2 finished runs made with other code defaults (mage ema_decay 0.0 -> 0.999)": one line."""
    fields: dict[tuple[str, str], tuple[set[str], str]] = {}
    for method, changes in stale.values():
        for name, (then, now) in changes.items():
            fields.setdefault((method, name), (set(), repr(now)))[0].add(repr(then))
    listed = ", ".join(f"{method} {name} {'|'.join(sorted(then))} -> {now}"
                       for (method, name), (then, now) in sorted(fields.items()))
    runs = "1 finished run" if len(stale) == 1 else f"{len(stale)} finished runs"
    return f"{runs} made with other code defaults ({listed})"


def _sweep(planned, store: RunStore, args: argparse.Namespace, gpus_per_run: float, profile: str,
           results_dir: Path, sweep_name: str) -> None:
    """Run every planned run that is not done yet (failed ones are retried)."""
    from harness.progress import SweepProgress
    from harness.sweep import WandbSettings, run_local, run_ray
    from suites.registry import dataset_spec, load_offline_dataset

    pending = [run.spec for run in planned if store.status(run.spec.run_id) != "done"]
    if not pending:
        return
    # Generated datasets are made here, once, before trials that would otherwise race to make them.
    for key in dict.fromkeys(spec.dataset for spec in pending):
        if dataset_spec(key).generated:
            load_offline_dataset(key, profile, progress=not args.quiet)
    print(f"watch the runs live: tensorboard --logdir {store.runs_dir}", file=sys.stderr)
    progress = SweepProgress(len(planned), len(planned) - len(pending), enabled=not args.quiet)
    try:
        if args.executor == "local":
            run_local(pending, store, progress, gpus_per_run, workers=args.workers, cpus_per_run=args.cpus_per_run)
        else:
            storage = Path(args.storage) if args.storage else results_dir / "ray"
            wandb_folder = Path(args.storage) if args.storage else results_dir   # W&B writes <folder>/wandb/
            wandb = WandbSettings(args.wandb, sweep_name, wandb_folder) if args.wandb is not None else None
            run_ray(pending, store, progress, cpus_per_run=args.cpus_per_run, gpus_per_run=gpus_per_run,
                    address=args.address, storage=storage, wandb=wandb)
    finally:
        progress.close()
