"""Aggregation: a plan's runs frame -> its table beside the paper's (design §3 "Aggregation").

``render(plan, runs, results_dir)`` writes, atomically, under ``results_dir``:

    <plan>.csv        tidy: one line per (row, column) and per average row (kind=group)
    <plan>.tex        booktabs; best per row in bold; "ours ± spread (paper)"
    <plan>.md         Markdown table + the IQM section
    <plan>_iqm.csv    IQM per run column with a 95% stratified bootstrap interval (>= 2 run rows)
    <plan>_success.csv success rate per (row, column), mean ± SE over seeds, where the suite has one
                      (mazes, coin maze); also a section of the .md and of the terminal table
    <plan>.png        ablations: ours beside the paper (harness/plots.py);
                      figures: coin-maze trajectories (harness/figures.py, needs a ``trajectories`` column)
    <plan>_curves.png learning curves: periodic score against steps, per row and column (harness/report/curves.py)
    <plan>.html       all of the above in one self-contained page, with each run's provenance (harness/report/html.py)

and returns the terminal table (tabulate). Per cell: the mean over seeds of each seed's mean
normalised score, ± the standard error over seeds (or the std, as the plan's ``spread`` says),
and the number of seeds. A cell without a number says why ("missing: <reason>", "failed:
<reason>"); it is never blank or zero. Paper-only columns show the paper's numbers.

Scales: our numbers (cells, Δ, bold, IQM, plots) are on the paper's scale: where a suite keeps the
published reference scores apart from its own (the mazes: ``ref_published`` are D4RL's, ``ref_min``/
``ref_max`` re-measured on our physics), each run's returns are normalised with the published ones,
as the paper's numbers are; the score on the re-measured ones is shown beside it in brackets and
kept in the CSV's ``ours_remeasured_*`` columns. Suites without published references have one scale.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness.atomic import write_text_atomic
from harness.paper import PaperCell, paper_cell
from harness.plan import Column, Group, Plan, Row

RUN_COLUMNS = ["run_id", "plan", "row", "column", "method", "dataset", "seed", "status", "reason", "score",
               "score_published", "eval_curve", "provenance"]
TIDY_COLUMNS = ["kind", "row", "column", "ours_mean", "ours_pm", "n_seeds", "paper_mean", "paper_pm",
                "paper_raw", "diff", "status", "reason", "ours_remeasured_mean", "ours_remeasured_pm"]
# The footers of tables with two-scale (maze) cells: which number is which.
SCALES_NOTE = ("Maze cells: ours on the paper's scale (D4RL's published reference scores, as the paper normalises), "
               "[in brackets: on reference scores re-measured on our physics]; Δ on the paper's scale.")
TEX_SCALES_NOTE = (" Maze cells: ours on the paper's scale (D4RL's published reference scores); the CSV also has "
                   "them on reference scores re-measured on our physics (ours_remeasured_mean).")
IQM_COLUMNS = ["column", "iqm", "ci_low", "ci_high", "n_tasks", "n_seeds"]
SUCCESS_COLUMNS = ["row", "column", "success_mean", "success_se", "n_seeds", "per_seed"]
BOOTSTRAP_REPS = 2000   # not in paper: rliable's default is 50,000; 2,000 keeps tables fast, CI stable to ~0.1
BOOTSTRAP_SEED = 0      # fixed, so a table rendered twice from the same runs is identical


@dataclass(frozen=True)
class Cell:
    """One (row, column) of the rendered table: our number and the paper's."""
    kind: str                 # cell | group
    row: str
    column: str
    ours_mean: float          # on the paper's scale (module docstring); NaN when we have no number
    ours_pm: float            # NaN when undefined (one seed, spread none)
    n_seeds: int
    planned_seeds: int
    paper: PaperCell | None
    status: str               # done | partial | failed | missing | paper_only
    reason: str
    decimals: int = 1         # as the paper prints the table (Table 8's milliseconds: 2)
    remeasured_mean: float = math.nan   # on the suite's re-measured reference scores; NaN: one scale only
    remeasured_pm: float = math.nan

    @property
    def two_scales(self) -> bool:
        return not math.isnan(self.remeasured_mean)

    @property
    def diff(self) -> float:
        if self.paper is None or not self.paper.reported:
            return math.nan
        return self.ours_mean - self.paper.mean


def render(plan: Plan, runs: pd.DataFrame, results_dir: Path | str) -> str:
    """Write the plan's table files under ``results_dir`` and return the terminal table."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    runs = _with_run_columns(runs)
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
    success = success_frame(plan, runs)
    if not success.empty:
        write_text_atomic(results_dir / f"{plan.name}_success.csv", success.to_csv(index=False))
        terminal += f"\n\n{SUCCESS_TITLE}:\n" + success_table(success, "simple")
        markdown += ["", f"## {SUCCESS_TITLE}", "", success_table(success, "github")]
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

def _with_run_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with every RUN_COLUMNS column (an empty frame, or one without published scores, lacks some)."""
    return runs.reindex(columns=list(dict.fromkeys([*RUN_COLUMNS, *runs.columns])))


def table_cells(plan: Plan, runs: pd.DataFrame) -> list[Cell]:
    """Every cell in the paper's order: each row's cells, then each group's right after its last row."""
    runs = _with_run_columns(runs)
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


def _seed_scores(runs: pd.DataFrame, row: str, column: str, scale: str = "paper") -> tuple[pd.DataFrame, pd.Series]:
    """The cell's runs and the per-seed score of its finished ones (index: seed), on the paper's scale
    (``score_published`` where the suite has published references, else ``score``) or, with
    ``scale="suite"``, on the suite's own reference scores (``score``)."""
    sub = runs[(runs["row"] == row) & (runs["column"] == column)]
    done = sub[sub["status"] == "done"]
    scores = done["score"] if scale == "suite" else done["score_published"].fillna(done["score"])
    return sub, scores.groupby(done["seed"]).mean()


def _has_two_scales(runs: pd.DataFrame, row: str, column: str) -> bool:
    """True when the cell's finished runs have a published-scale score beside their own."""
    sub = runs[(runs["row"] == row) & (runs["column"] == column) & (runs["status"] == "done")]
    return bool(sub["score_published"].notna().any())


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
    remeasured = math.nan, math.nan
    if _has_two_scales(runs, row.label, column.label):
        own = _seed_scores(runs, row.label, column.label, "suite")[1].to_numpy(dtype=float)
        remeasured = float(own.mean()), _spread(own, plan.spread)
    return Cell(**base, ours_mean=float(values.mean()), ours_pm=_spread(values, plan.spread),
                n_seeds=len(values), planned_seeds=planned, status=status, reason=reason,
                remeasured_mean=remeasured[0], remeasured_pm=remeasured[1])


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
    def seed_means(scale: str) -> np.ndarray:   # each seed's average over the rows, seeds in every row
        per_seed = pd.concat({row.label: _seed_scores(runs, row.label, column.label, scale)[1] for row in rows}, axis=1)
        return per_seed.dropna().mean(axis=1).to_numpy(dtype=float)

    values = seed_means("paper")
    remeasured = math.nan, math.nan
    if any(m.two_scales for m in members):   # a one-scale member's own score is its paper-scale score
        own = [m.remeasured_mean if m.two_scales else m.ours_mean for m in members]
        remeasured = float(np.mean(own)), _spread(seed_means("suite"), plan.spread)
    complete = all(m.status == "done" for m in members)
    return Cell(**base, ours_mean=float(np.mean([m.ours_mean for m in members])),
                ours_pm=_spread(values, plan.spread), n_seeds=len(values),
                planned_seeds=min(m.planned_seeds for m in members),
                status="done" if complete else "partial", reason="" if complete else "some rows partial",
                remeasured_mean=remeasured[0], remeasured_pm=remeasured[1])


def _run_rows(plan: Plan) -> list[Row]:
    return [row for row in plan.rows if row.dataset is not None]


def _tidy(cell: Cell) -> dict:
    paper = cell.paper
    return {"kind": cell.kind, "row": cell.row, "column": cell.column, "ours_mean": cell.ours_mean,
            "ours_pm": cell.ours_pm, "n_seeds": cell.n_seeds,
            "paper_mean": paper.mean if paper else math.nan, "paper_pm": paper.pm if paper else math.nan,
            "paper_raw": paper.raw if paper else "", "diff": cell.diff, "status": cell.status, "reason": cell.reason,
            "ours_remeasured_mean": cell.remeasured_mean, "ours_remeasured_pm": cell.remeasured_pm}


# ---------------------------------------------------------------- IQM

def iqm_frame(plan: Plan, runs: pd.DataFrame) -> pd.DataFrame:
    """IQM per run column over its [seeds, tasks] matrix of per-seed scores (on the paper's scale, as the
    cells), with a 95% stratified bootstrap interval (rliable). Only tasks with a number and seeds
    finished on all of them count."""
    from rliable import library as rly, metrics  # imported here: scipy/arch load slowly

    runs = _with_run_columns(runs)
    records = []
    for column in plan.run_columns:
        per_task = {row.label: _seed_scores(runs, row.label, column.label)[1] for row in _run_rows(plan)}
        per_task = {label: scores for label, scores in per_task.items() if not scores.empty}
        matrix = pd.concat(per_task, axis=1).dropna().to_numpy(dtype=float) if per_task else np.empty((0, 0))
        if matrix.size == 0:
            records.append({"column": column.label, "iqm": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                            "n_tasks": 0, "n_seeds": 0})
            continue
        # rliable's StratifiedBootstrap draws its resamples from numpy's global RNG (np.random.choice), not from
        # random_state, so the global RNG is seeded here (and put back after) for a table that --report-only
        # rebuilds to the last digit
        global_rng = np.random.get_state()
        np.random.seed(BOOTSTRAP_SEED)
        try:
            with warnings.catch_warnings():  # rliable hands arch a RandomState, which arch now deprecates
                warnings.simplefilter("ignore", FutureWarning)
                points, intervals = rly.get_interval_estimates(
                    {column.label: matrix}, lambda scores: np.array([metrics.aggregate_iqm(scores)]),
                    reps=BOOTSTRAP_REPS, random_state=np.random.RandomState(BOOTSTRAP_SEED))
        finally:
            np.random.set_state(global_rng)
        records.append({"column": column.label, "iqm": float(points[column.label][0]),
                        "ci_low": float(intervals[column.label][0, 0]), "ci_high": float(intervals[column.label][1, 0]),
                        "n_tasks": matrix.shape[1], "n_seeds": matrix.shape[0]})
    return pd.DataFrame.from_records(records, columns=IQM_COLUMNS)


def iqm_table(iqm: pd.DataFrame) -> str:
    rows = [[r.column, "missing: no finished runs" if math.isnan(r.iqm) else f"{r.iqm:.1f}",
             "" if math.isnan(r.iqm) else f"[{r.ci_low:.1f}, {r.ci_high:.1f}]", r.n_tasks, r.n_seeds]
            for r in iqm.itertuples()]
    return tabulate(rows, headers=["method", "IQM", "95% CI", "tasks", "seeds"], tablefmt="simple")


# ---------------------------------------------------------------- success rate

SUCCESS_TITLE = (  # what counts as solved is the suite's rule (suites/registry.py), stated so the reader knows
    "Success rate (share of evaluation episodes the suite counts as solved: mazes the goal reached, "
    "coin maze both coins then the goal; mean ± SE over seeds)")


def success_frame(plan: Plan, runs: pd.DataFrame) -> pd.DataFrame:
    """Per (run row, run column) with a success rate: the mean over seeds of each finished run's
    success rate, ± the SE over seeds (NaN for one seed), the seeds, and each seed's rate in seed
    order. Empty when no finished run's suite reports success (e.g. MuJoCo locomotion)."""
    runs = _with_run_columns(runs)
    if "success_rate" not in runs:
        return pd.DataFrame(columns=SUCCESS_COLUMNS)
    done = runs[(runs["status"] == "done") & runs["success_rate"].notna()]
    records = []
    for row in _run_rows(plan):
        for column in plan.run_columns:
            cell = done[(done["row"] == row.label) & (done["column"] == column.label)]
            if cell.empty:
                continue
            per_seed = cell.groupby("seed")["success_rate"].mean().sort_index().to_numpy(dtype=float)
            records.append({"row": row.label, "column": column.label, "success_mean": float(per_seed.mean()),
                            "success_se": _spread(per_seed, "se"), "n_seeds": len(per_seed),
                            "per_seed": " ".join(f"{rate:.2f}" for rate in per_seed)})
    return pd.DataFrame.from_records(records, columns=SUCCESS_COLUMNS)


def success_table(success: pd.DataFrame, fmt: str) -> str:
    rows = [[r.row, r.column, _number(r.success_mean, r.success_se, 2), r.n_seeds, r.per_seed]
            for r in success.itertuples()]
    return tabulate(rows, headers=["dataset", "method", "success", "seeds", "per seed"], tablefmt=fmt)


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


def remeasured_text(cell: Cell) -> str:
    """"[re-measured refs: 21.2 ± 5.9]" for a cell with two scales, else ""."""
    if not cell.two_scales:
        return ""
    return f"[re-measured refs: {_number(cell.remeasured_mean, cell.remeasured_pm, cell.decimals)}]"


def _scales_note(cells: list[Cell]) -> str:
    """SCALES_NOTE when some cell has two scales, else ""."""
    return SCALES_NOTE if any(cell.two_scales for cell in cells) else ""


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
        lines = [line for line in (ours_text(cell), remeasured_text(cell), f"({paper_text(cell)})") if line]
        if not math.isnan(cell.diff):
            lines.append(f"Δ {cell.diff:+.{cell.decimals}f}")
        return "\n".join(lines)
    body = [[row] + [text(c) for c in row_cells] for row, row_cells in _by_row(plan, cells)]
    headers = ["ours\n(paper)\nΔ"] + [_header(c) for c in plan.columns]
    table = tabulate(body, headers=headers, tablefmt="grid", disable_numparse=True)
    note = _scales_note(cells)
    return f"{table}\n{note}" if note else table


def _header(column: Column) -> str:
    return f"{column.label}\n[paper]" if not column.is_run else column.label


def markdown_table(plan: Plan, cells: list[Cell]) -> str:
    def text(cell: Cell) -> str:
        if cell.status == "paper_only":
            return f"({paper_text(cell)})"
        diff = "" if math.isnan(cell.diff) else f", Δ {cell.diff:+.{cell.decimals}f}"
        ours = " ".join(filter(None, (ours_text(cell), remeasured_text(cell))))
        return f"{ours} ({paper_text(cell)}{diff})"
    body = [[row] + [text(c).replace("|", "\\|") for c in row_cells] for row, row_cells in _by_row(plan, cells)]
    headers = ["Scenario"] + [c.label + ("" if c.is_run else " [paper]") for c in plan.columns]
    legend = " ".join(filter(None, ["Cells: ours (paper, Δ ours − paper); [paper] columns are the paper's numbers only.",
                                    _scales_note(cells)]))
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
    note = _tex(TEX_SCALES_NOTE) if _scales_note(cells) else ""
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\footnotesize $^\dagger$ the paper's numbers." + note,
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
