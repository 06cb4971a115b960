"""Copy a finished table into results/reproduced/ (tracked) with its provenance.

    python -m harness.export --plan table4 --profile h100-budget --command "python reproduce.py ..."

writes results/reproduced/<plan>-<profile>/: the table (.md, .csv), the IQM file when there is one,
and provenance.json: device, total GPU-seconds and wall time over the plan's runs (summed from
their result.json), run count, git commit, package versions and the command that made it.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from harness.plan import load_plan
from harness.runs import git_commit, package_versions


def export(plan: str, profile: str, command: str, results_dir: Path, out_root: Path) -> Path:
    out = out_root / f"{plan}-{profile}"
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for suffix in (".md", ".csv", "_iqm.csv", ".tex"):
        source = results_dir / f"{plan}{suffix}"
        if source.exists():
            shutil.copyfile(source, out / source.name)
            copied.append(source.name)
    if not copied:
        raise SystemExit(f"export: no table {results_dir / plan}.md: run the plan first")
    # the plan's own runs: its datasets and methods under this profile (a run shared with another
    # plan is the same run, by its id, and belongs to both)
    planned = load_plan(plan)
    runs = [json.loads(p.read_text()) for p in sorted((results_dir / "runs").glob("*/result.json"))]
    runs = [r for r in runs if r.get("profile") == profile and r.get("dataset") in planned.datasets
            and r.get("method") in planned.methods]
    provenance = {
        "plan": plan, "profile": profile, "command": command, "files": copied,
        "runs": len(runs), "devices": sorted({r["device"] for r in runs}),
        "gpu_seconds_total": round(sum(r.get("gpu_seconds", 0.0) for r in runs), 1),
        "run_wall_seconds_total": round(sum(r.get("wall_s", 0.0) for r in runs), 1),
        "git_commit": git_commit(), "versions": package_versions(),
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--command", required=True, help="the command that produced the table")
    ap.add_argument("--results-dir", type=Path, default=Path("results"))
    ap.add_argument("--out-root", type=Path, default=Path("results/reproduced"))
    args = ap.parse_args()
    print(export(args.plan, args.profile, args.command, args.results_dir, args.out_root))


if __name__ == "__main__":
    main()
