"""One self-contained HTML report per plan (results/<plan>.html): a single file, its images embedded
as base64 PNG data URIs, its style inline, no script and no external resource, so it opens from a
cluster's shared folder, a mail attachment or a laptop without a network.

Sections: the table (per cell ours ± spread with n, the paper's number and Δ ours − paper; a
missing, failed or partial cell says so with its reason; the best number per row in bold), the IQM
block, the images (learning curves, the ablation plot, a figure plan's figure), and per run its
provenance (status, score, wall time, device, host, git commit, package versions).
"""
from __future__ import annotations

import base64
import html
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from harness.aggregate import _primary, ours_text, paper_text, write_text_atomic

if TYPE_CHECKING:
    from harness.aggregate import Cell
    from harness.plan import Plan

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 80rem;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
p.meta, p.legend { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; vertical-align: top; text-align: left; }
thead th { background: #f0f0f0; }
tr.group th, tr.group td { border-top: 2px solid #888; background: #fafafa; }
td.cell .ours { font-weight: 500; } td.cell .paper, td.cell .delta { color: #555; font-size: 0.8rem; }
td.best .ours, td.best.status-paper_only .paper { font-weight: 700; }
td.status-failed { background: #fde8e8; } td.status-missing { background: #fff6db; }
td.status-partial { background: #eef4ff; } td.status-paper_only { background: #f6f6f6; }
td.status-failed .ours, td.status-missing .ours { font-weight: 400; font-style: italic; }
table.runs td { font-size: 0.78rem; } td.versions { max-width: 28rem; color: #555; }
td.cell { min-width: 6rem; max-width: 16rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
"""
SPREAD_WORDS = {"se": "standard error over seeds", "std": "standard deviation over seeds", "none": "no spread"}


def write_report(plan: "Plan", cells: list["Cell"], iqm: pd.DataFrame | None, runs: pd.DataFrame,
                 results_dir: Path, images: list[tuple[str, bytes]]) -> Path:
    """Write results_dir/<plan>.html atomically and return its path. ``images``: (caption, PNG bytes)
    in the order they appear."""
    body = [f"<h1>{_e(plan.title)}</h1>", _meta(plan, runs)]
    if plan.description:
        body.append(f"<p>{_e(plan.description)}</p>")
    body += ["<h2>Table</h2>", results_table(plan, cells),
             f'<p class="legend">Each cell: ours ± {SPREAD_WORDS.get(plan.spread, plan.spread)} (n = seeds when '
             "some are lacking), the paper's number, and Δ = ours − paper. Columns marked [paper] are the paper's "
             "numbers only; the best number of a row is in bold.</p>"]
    if iqm is not None:
        body += ["<h2>IQM over tasks and seeds</h2>", _iqm_table(iqm),
                 '<p class="legend">Interquartile mean with a 95% stratified bootstrap interval (rliable).</p>']
    for caption, png in images:
        body += [f"<h2>{_e(caption)}</h2>",
                 f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                 "</figure>"]
    body += ["<h2>Runs</h2>", runs_table(runs)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(plan.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
    path = Path(results_dir) / f"{plan.name}.html"
    write_text_atomic(path, page)
    return path


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _meta(plan: "Plan", runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts() if len(runs) else pd.Series(dtype=int)
    status = ", ".join(f"{int(counts.get(name, 0))} {name}" for name in ("done", "failed", "missing"))
    profiles = sorted({p["profile"] for p in runs.get("provenance", []) if isinstance(p, dict) and p.get("profile")})
    commits = sorted({p["git_commit"] for p in runs.get("provenance", []) if isinstance(p, dict) and p.get("git_commit")})
    parts = [f"plan <code>{_e(plan.name)}</code>", f"{len(runs)} runs: {status}"]
    if profiles:
        parts.append("profile " + ", ".join(_e(p) for p in profiles))
    if commits:
        parts.append("commit " + ", ".join(f"<code>{_e(c)}</code>" for c in commits))
    parts.append(f"written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    return f'<p class="meta">{" · ".join(parts)}</p>'


def results_table(plan: "Plan", cells: list["Cell"]) -> str:
    """The plan's table: one <tr> per row (average rows class "group"), one <td class="cell"> per column."""
    header = "".join(f"<th>{_e(c.label)}{'' if c.is_run else ' [paper]'}</th>" for c in plan.columns)
    lines = [f'<table class="results"><thead><tr><th>Scenario</th>{header}</tr></thead><tbody>']
    rows: dict[str, list["Cell"]] = {}
    for cell in cells:
        rows.setdefault(cell.row, []).append(cell)
    for row, row_cells in rows.items():
        best = _best(row_cells, lower_is_better=plan.benchmark is not None)
        tds = "".join(_cell_html(cell, index in best) for index, cell in enumerate(row_cells))
        lines.append(f'<tr class="{row_cells[0].kind}"><th scope="row">{_e(row)}</th>{tds}</tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _best(row_cells: list["Cell"], lower_is_better: bool) -> set[int]:
    """Indices of the cells holding the row's best number (ours for run columns, the paper's otherwise)."""
    numbers = [_primary(cell) for cell in row_cells]
    finite = [n for n in numbers if not math.isnan(n)]
    if not finite:
        return set()
    best = min(finite) if lower_is_better else max(finite)
    return {index for index, number in enumerate(numbers) if number == best}


def _cell_html(cell: "Cell", best: bool) -> str:
    classes = f"cell status-{cell.status}" + (" best" if best else "")
    parts = []
    if cell.status != "paper_only":
        parts.append(f'<div class="ours">{_e(ours_text(cell))}</div>')
    parts.append(f'<div class="paper">paper {_e(paper_text(cell))}</div>')
    if not math.isnan(cell.diff):
        parts.append(f'<div class="delta">Δ {cell.diff:+.{cell.decimals}f}</div>')
    return f'<td class="{classes}" data-status="{cell.status}">{"".join(parts)}</td>'


def _iqm_table(iqm: pd.DataFrame) -> str:
    lines = ['<table class="iqm"><thead><tr><th>method</th><th>IQM</th><th>95% CI</th><th>tasks</th><th>seeds</th>'
             "</tr></thead><tbody>"]
    for r in iqm.itertuples():
        value = "missing: no finished runs" if math.isnan(r.iqm) else f"{r.iqm:.1f}"
        interval = "" if math.isnan(r.iqm) else f"[{r.ci_low:.1f}, {r.ci_high:.1f}]"
        lines.append(f"<tr><th>{_e(r.column)}</th><td>{_e(value)}</td><td>{interval}</td>"
                     f"<td>{r.n_tasks}</td><td>{r.n_seeds}</td></tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _run_score(run) -> str:
    """The run's score on the table's scale, with the re-measured one in brackets for two-scale suites."""
    if pd.isna(run.score):
        return ""
    published = getattr(run, "score_published", float("nan"))
    return f"{run.score:.1f}" if pd.isna(published) else f"{published:.1f} [{run.score:.1f}]"


def runs_table(runs: pd.DataFrame) -> str:
    """Per run: id, cell, seed, status (or why not done), score, wall time, device, host, commit, versions."""
    lines = ['<table class="runs"><thead><tr><th>run</th><th>row</th><th>column</th><th>seed</th><th>status</th>'
             "<th>score [re-measured refs]</th><th>wall time</th><th>device</th><th>host</th><th>commit</th><th>versions</th>"
             "</tr></thead><tbody>"]
    for run in runs.itertuples():
        provenance = run.provenance if isinstance(getattr(run, "provenance", None), dict) else {}
        status = run.status if run.status == "done" else f"{run.status}: {run.reason}"
        score = _run_score(run)
        versions = ", ".join(f"{name} {version}" for name, version in (provenance.get("versions") or {}).items())
        lines.append(
            f"<tr><td><code>{_e(run.run_id)}</code></td><td>{_e(run.row)}</td><td>{_e(run.column)}</td>"
            f"<td>{_e(run.seed)}</td><td>{_e(status)}</td><td>{score}</td><td>{_duration(provenance.get('wall_s'))}</td>"
            f"<td>{_e(provenance.get('device') or '')}</td><td>{_e(provenance.get('hostname') or '')}</td>"
            f"<td><code>{_e(provenance.get('git_commit') or '')}</code></td>"
            f'<td class="versions">{_e(versions)}</td></tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)) or math.isnan(seconds):
        return ""
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
