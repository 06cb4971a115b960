"""Aggregation: a plan's runs frame -> its table beside the paper's (design §3 "Aggregation").

``render(plan, runs, results_dir)`` writes, atomically, under ``results_dir``:

    <plan>.csv        tidy: one line per (row, column) and per average row (kind=group)
    <plan>.tex        booktabs; best per row in bold; "ours ± spread (paper)"
    <plan>.md         Markdown table + the IQM section
    <plan>_iqm.csv    IQM per run column with a 95% stratified bootstrap interval (>= 2 run rows)
    <plan>.png        ablations: ours beside the paper (harness/plots.py);
                      figures: coin-maze trajectories (harness/figures.py, needs a ``trajectories`` column)
    <plan>_curves.png learning curves: periodic score against steps, per row and column (harness/report/curves.py)
    <plan>.html       all of the above in one self-contained page, with each run's provenance (harness/report/html.py)

and returns the terminal table (tabulate). Per cell: the mean over seeds of each seed's mean
normalised score, ± the standard error over seeds (or the std, as the plan's ``spread`` says),
and the number of seeds. A cell without a number says why ("missing: <reason>", "failed:
<reason>"); it is never blank or zero. Paper-only columns show the paper's numbers.
"""
from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness.paper import PaperCell, paper_cell
from harness.plan import Column, Group, Plan, Row

RUN_COLUMNS = ["run_id", "plan", "row", "column", "method", "dataset", "seed", "status", "reason", "score",
               "eval_curve", "provenance"]
TIDY_COLUMNS = ["kind", "row", "column", "ours_mean", "ours_pm", "n_seeds", "paper_mean", "paper_pm",
                "paper_raw", "diff", "status", "reason"]
IQM_COLUMNS = ["column", "iqm", "ci_low", "ci_high", "n_tasks", "n_seeds"]
BOOTSTRAP_REPS = 2000   # not in paper: rliable's default is 50,000; 2,000 keeps tables fast, CI stable to ~0.1
BOOTSTRAP_SEED = 0      # fixed, so a table rendered twice from the same runs is identical


@dataclass(frozen=True)
class Cell:
    """One (row, column) of the rendered table: our number and the paper's."""
    kind: str                 # cell | group
    row: str
    column: str
    ours_mean: float          # NaN when we have no number
    ours_pm: float            # NaN when undefined (one seed, spread none)
    n_seeds: int
    planned_seeds: int
    paper: PaperCell | None
    status: str               # done | partial | failed | missing | paper_only
    reason: str
    decimals: int = 1         # as the paper prints the table (Table 8's milliseconds: 2)

    @property
    def diff(self) -> float:
        if self.paper is None or not self.paper.reported:
            return math.nan
        return self.ours_mean - self.paper.mean


def render(plan: Plan, runs: pd.DataFrame, results_dir: Path | str) -> str:
    """Write the plan's table files under ``results_dir`` and return the terminal table."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    runs = runs.reindex(columns=list(dict.fromkeys([*RUN_COLUMNS, *runs.columns])))  # an empty frame may lack columns
    cells = table_cells(plan, runs)
    lower_is_better = plan.benchmark is not None
    tidy = pd.DataFrame([_tidy(cell) for cell in cells], columns=TIDY_COLUMNS)
    write_text_atomic(results_dir / f"{plan.name}.csv", tidy.to_csv(index=False))

    iqm = iqm_frame(plan, runs) if len(_run_rows(plan)) >= 2 else None
    terminal = terminal_table(plan, cells)
    markdown = [f"# {plan.title}", "", markdown_table(plan, cells)]
    if iqm is not None:
        write_text_atomic(results_dir / f"{plan.name}_iqm.csv", iqm.to_csv(index=False))
        iqm_text = iqm_table(iqm)
        terminal += "\n\nIQM over tasks and seeds, 95% stratified bootstrap interval (rliable):\n" + iqm_text
        markdown += ["", "## IQM (95% stratified bootstrap interval, rliable)", "",
                     tabulate(iqm, headers="keys", tablefmt="github", showindex=False, floatfmt=".1f")]
    write_text_atomic(results_dir / f"{plan.name}.md", "\n".join(markdown) + "\n")
    write_text_atomic(results_dir / f"{plan.name}.tex", latex_table(plan, cells, lower_is_better))

    from harness.report.curves import plot_curves  # matplotlib only when the tables are written
    from harness.report.html import write_report
    images: list[tuple[str, bytes]] = []   # (caption, PNG) for the HTML report
    files: list[str] = []                  # the terminal's list of the files to look at
    if not plan.benchmark:   # a benchmark plan (Table 8) trains nothing, so it has no learning curves
        images.append(("Learning curves", plot_curves(plan, cells, runs, results_dir)))
        files.append(f"learning curves: {results_dir / f'{plan.name}_curves.png'}")
    if plan.kind == "ablation":
        from harness.plots import plot_ablation
        plot = plot_ablation(plan, cells, results_dir)
        images.append(("Ablation: ours beside the paper", plot.read_bytes()))
        files.append(f"plot: {plot}")
    if plan.kind == "figure":
        from harness.figures import make_figure
        try:
            figure = make_figure(plan, runs, results_dir)
            images.append(("Figure: evaluation trajectories", figure.read_bytes()))
            files.append(f"figure: {figure}")
        except RuntimeError as error:  # the coin maze suite is absent: the scores still print
            files.append(f"figure not drawn: {error}")
    files.append(f"report: {write_report(plan, cells, iqm, runs, results_dir, images)}")
    terminal += "\n\n" + "\n".join(files)
    return f"{plan.title}\n{terminal}"


# ---------------------------------------------------------------- cells

def table_cells(plan: Plan, runs: pd.DataFrame) -> list[Cell]:
    """Every cell in the paper's order: each row's cells, then each group's right after its last row."""
    cells: list[Cell] = []
    placed_groups: set[str] = set()
    for index, row in enumerate(plan.rows):
        cells += [_cell(plan, row, column, runs) for column in plan.columns]
        done_rows = {r.dataset for r in plan.rows[: index + 1]}
        for group in plan.groups:
            if group.label not in placed_groups and set(group.rows) <= done_rows:
                placed_groups.add(group.label)
                cells += [_group_cell(plan, group, column, runs) for column in plan.columns]
    decimals = 2 if plan.benchmark is not None else 1  # Table 8 prints milliseconds to 2 decimals
    return [replace(cell, decimals=decimals) for cell in cells]


def _paper(plan: Plan, row_label: str, column: Column) -> PaperCell | None:
    table = column.paper_table if column.paper_table is not None else plan.paper_table
    return None if table is None else paper_cell(table, row_label, column.paper_column)


def _seed_scores(runs: pd.DataFrame, row: str, column: str) -> tuple[pd.DataFrame, pd.Series]:
    """The cell's runs and the per-seed score of its finished ones (index: seed)."""
    sub = runs[(runs["row"] == row) & (runs["column"] == column)]
    done = sub[sub["status"] == "done"]
    return sub, done.groupby("seed")["score"].mean()


def _spread(values: np.ndarray, spread: str) -> float:
    if spread == "none" or len(values) < 2:
        return math.nan
    std = float(np.std(values, ddof=1))
    return std if spread == "std" else std / math.sqrt(len(values))


def _cell(plan: Plan, row: Row, column: Column, runs: pd.DataFrame) -> Cell:
    paper = _paper(plan, row.paper_row, column)
    base = dict(kind="cell", row=row.label, column=column.label, paper=paper)
    if not column.is_run or row.dataset is None:
        return Cell(**base, ours_mean=math.nan, ours_pm=math.nan, n_seeds=0, planned_seeds=0,
                    status="paper_only", reason="the paper's number")
    sub, per_seed = _seed_scores(runs, row.label, column.label)
    planned = int(sub["seed"].nunique())
    if per_seed.empty:
        status, reason = _why_no_number(sub)
        return Cell(**base, ours_mean=math.nan, ours_pm=math.nan, n_seeds=0, planned_seeds=planned,
                    status=status, reason=reason)
    values = per_seed.to_numpy(dtype=float)
    status = "done" if len(values) == planned else "partial"
    reason = "" if status == "done" else _why_no_number(sub[sub["status"] != "done"])[1]
    return Cell(**base, ours_mean=float(values.mean()), ours_pm=_spread(values, plan.spread),
                n_seeds=len(values), planned_seeds=planned, status=status, reason=reason)


def _why_no_number(sub: pd.DataFrame) -> tuple[str, str]:
    """(failed | missing, the first reason) for runs without a result."""
    if sub.empty:
        return "missing", "no runs planned"
    failed = sub[sub["status"] == "failed"]
    chosen = failed if not failed.empty else sub
    reasons = [str(r) for r in chosen["reason"] if isinstance(r, str) and r]
    return ("failed" if not failed.empty else "missing"), (reasons[0] if reasons else "no reason recorded")


def _group_cell(plan: Plan, group: Group, column: Column, runs: pd.DataFrame) -> Cell:
    """An average row: the mean of its rows' cell means (as the paper computes it); the spread is
    over seeds of each seed's average across the rows, for seeds present in every row."""
    paper = _paper(plan, group.label, column)
    base = dict(kind="group", row=group.label, column=column.label, paper=paper)
    rows = [r for r in plan.rows if r.dataset in group.rows]
    if not column.is_run:
        return Cell(**base, ours_mean=math.nan, ours_pm=math.nan, n_seeds=0, planned_seeds=0,
                    status="paper_only", reason="the paper's number")
    members = [_cell(plan, row, column, runs) for row in rows]
    lacking = [m for m in members if math.isnan(m.ours_mean)]
    if lacking:
        status = "failed" if any(m.status == "failed" for m in lacking) else "missing"
        return Cell(**base, ours_mean=math.nan, ours_pm=math.nan, n_seeds=0, planned_seeds=0, status=status,
                    reason=f"{len(lacking)} of {len(members)} rows without a number ({lacking[0].row}: {lacking[0].reason})")
    per_seed = pd.concat({row.label: _seed_scores(runs, row.label, column.label)[1] for row in rows}, axis=1).dropna()
    values = per_seed.mean(axis=1).to_numpy(dtype=float)
    complete = all(m.status == "done" for m in members)
    return Cell(**base, ours_mean=float(np.mean([m.ours_mean for m in members])),
                ours_pm=_spread(values, plan.spread), n_seeds=len(values),
                planned_seeds=min(m.planned_seeds for m in members),
                status="done" if complete else "partial", reason="" if complete else "some rows partial")


def _run_rows(plan: Plan) -> list[Row]:
    return [row for row in plan.rows if row.dataset is not None]


def _tidy(cell: Cell) -> dict:
    paper = cell.paper
    return {"kind": cell.kind, "row": cell.row, "column": cell.column, "ours_mean": cell.ours_mean,
            "ours_pm": cell.ours_pm, "n_seeds": cell.n_seeds,
            "paper_mean": paper.mean if paper else math.nan, "paper_pm": paper.pm if paper else math.nan,
            "paper_raw": paper.raw if paper else "", "diff": cell.diff, "status": cell.status, "reason": cell.reason}


# ---------------------------------------------------------------- IQM

def iqm_frame(plan: Plan, runs: pd.DataFrame) -> pd.DataFrame:
    """IQM per run column over its [seeds, tasks] matrix of per-seed scores, with a 95% stratified
    bootstrap interval (rliable). Only tasks with a number and seeds finished on all of them count."""
    from rliable import library as rly, metrics  # imported here: scipy/arch load slowly

    records = []
    for column in plan.run_columns:
        per_task = {row.label: _seed_scores(runs, row.label, column.label)[1] for row in _run_rows(plan)}
        per_task = {label: scores for label, scores in per_task.items() if not scores.empty}
        matrix = pd.concat(per_task, axis=1).dropna().to_numpy(dtype=float) if per_task else np.empty((0, 0))
        if matrix.size == 0:
            records.append({"column": column.label, "iqm": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                            "n_tasks": 0, "n_seeds": 0})
            continue
        with warnings.catch_warnings():  # rliable hands arch a RandomState, which arch now deprecates
            warnings.simplefilter("ignore", FutureWarning)
            points, intervals = rly.get_interval_estimates(
                {column.label: matrix}, lambda scores: np.array([metrics.aggregate_iqm(scores)]),
                reps=BOOTSTRAP_REPS, random_state=np.random.RandomState(BOOTSTRAP_SEED))
        records.append({"column": column.label, "iqm": float(points[column.label][0]),
                        "ci_low": float(intervals[column.label][0, 0]), "ci_high": float(intervals[column.label][1, 0]),
                        "n_tasks": matrix.shape[1], "n_seeds": matrix.shape[0]})
    return pd.DataFrame.from_records(records, columns=IQM_COLUMNS)


def iqm_table(iqm: pd.DataFrame) -> str:
    rows = [[r.column, "missing: no finished runs" if math.isnan(r.iqm) else f"{r.iqm:.1f}",
             "" if math.isnan(r.iqm) else f"[{r.ci_low:.1f}, {r.ci_high:.1f}]", r.n_tasks, r.n_seeds]
            for r in iqm.itertuples()]
    return tabulate(rows, headers=["method", "IQM", "95% CI", "tasks", "seeds"], tablefmt="simple")


# ---------------------------------------------------------------- formats

def _number(mean: float, pm: float, decimals: int = 1) -> str:
    return f"{mean:.{decimals}f}" if math.isnan(pm) else f"{mean:.{decimals}f} ± {pm:.{decimals}f}"


def ours_text(cell: Cell) -> str:
    """Our part of a cell: the number (with n when some seeds are lacking), or why there is none."""
    if cell.status in ("failed", "missing"):
        return f"{cell.status}: {cell.reason}"
    if cell.status == "partial":
        return f"{_number(cell.ours_mean, cell.ours_pm, cell.decimals)} (n={cell.n_seeds}/{cell.planned_seeds})"
    return _number(cell.ours_mean, cell.ours_pm, cell.decimals)


def paper_text(cell: Cell) -> str:
    if cell.paper is None:
        return "-"
    return _number(cell.paper.mean, cell.paper.pm, cell.decimals) if cell.paper.reported else cell.paper.raw


def _by_row(plan: Plan, cells: list[Cell]) -> list[tuple[str, list[Cell]]]:
    ordered: dict[str, list[Cell]] = {}
    for cell in cells:
        ordered.setdefault(cell.row, []).append(cell)
    return list(ordered.items())


def terminal_table(plan: Plan, cells: list[Cell]) -> str:
    """Each cell on three lines: ours, (paper), Δ ours − paper; paper-only cells: (paper)."""
    def text(cell: Cell) -> str:
        if cell.status == "paper_only":
            return f"({paper_text(cell)})"
        lines = [ours_text(cell), f"({paper_text(cell)})"]
        if not math.isnan(cell.diff):
            lines.append(f"Δ {cell.diff:+.{cell.decimals}f}")
        return "\n".join(lines)
    body = [[row] + [text(c) for c in row_cells] for row, row_cells in _by_row(plan, cells)]
    headers = ["ours\n(paper)\nΔ"] + [_header(c) for c in plan.columns]
    return tabulate(body, headers=headers, tablefmt="grid", disable_numparse=True)


def _header(column: Column) -> str:
    return f"{column.label}\n[paper]" if not column.is_run else column.label


def markdown_table(plan: Plan, cells: list[Cell]) -> str:
    def text(cell: Cell) -> str:
        if cell.status == "paper_only":
            return f"({paper_text(cell)})"
        diff = "" if math.isnan(cell.diff) else f", Δ {cell.diff:+.{cell.decimals}f}"
        return f"{ours_text(cell)} ({paper_text(cell)}{diff})"
    body = [[row] + [text(c).replace("|", "\\|") for c in row_cells] for row, row_cells in _by_row(plan, cells)]
    headers = ["Scenario"] + [c.label + ("" if c.is_run else " [paper]") for c in plan.columns]
    legend = "Cells: ours (paper, Δ ours − paper); [paper] columns are the paper's numbers only."
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + "\n\n" + legend


def _primary(cell: Cell) -> float:
    """The number a column competes with in its row: ours for run columns, the paper's otherwise."""
    if cell.status == "paper_only":
        return cell.paper.mean if cell.paper is not None and cell.paper.reported else math.nan
    return cell.ours_mean


def latex_table(plan: Plan, cells: list[Cell], lower_is_better: bool = False) -> str:
    lines = [r"% generated by harness/aggregate.py; needs \usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(plan.title)}: ours (paper).}}",
             r"\begin{tabular}{l" + "c" * len(plan.columns) + "}", r"\toprule",
             "Scenario & " + " & ".join(_tex(c.label) + ("" if c.is_run else r"$^\dagger$") for c in plan.columns)
             + r" \\", r"\midrule"]
    for row, row_cells in _by_row(plan, cells):
        if row_cells[0].kind == "group":
            lines.append(r"\midrule")
        numbers = [_primary(c) for c in row_cells]
        finite = [n for n in numbers if not math.isnan(n)]
        best = (min(finite) if lower_is_better else max(finite)) if finite else math.nan
        texts = []
        for cell, number in zip(row_cells, numbers):
            if cell.status == "paper_only":
                core = _tex(paper_text(cell))
            elif cell.status in ("failed", "missing"):
                core = r"\textit{" + _tex(ours_text(cell)) + "}"
            else:
                core = _tex(ours_text(cell))
            if not math.isnan(number) and number == best:
                core = r"\textbf{" + core + "}"
            if cell.status != "paper_only":
                core += " (" + _tex(paper_text(cell)) + ")"
            texts.append(core)
        lines.append(_tex(row) + " & " + " & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\footnotesize $^\dagger$ the paper's numbers.",
              r"\end{table}", ""]
    return "\n".join(lines)


_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "±": r"$\pm$", "Δ": r"$\Delta$"}


def _tex(text: str) -> str:
    """Escape LaTeX specials, leaving $...$ math (e.g. the paper's $m_{k>1}$) as written."""
    out, in_math = [], False
    for char in text:
        if char == "$":
            in_math = not in_math
            out.append(char)
        elif not in_math and char in _TEX_ESCAPES:
            out.append(_TEX_ESCAPES[char])
        else:
            out.append(char)
    return "".join(out)


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one (temp file in the same folder + os.replace)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
