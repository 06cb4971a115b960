"""Plans: a paper table, ablation or figure as data (design §3 "Plan").

A plan is a YAML file in harness/plans/<name>.yaml:

    name: table4                     # what --table 4 / --ablation scales / --figure 3 resolves to
    kind: table                      # table | ablation | figure
    title: "Table 4: The Average Scores for the Maze2D and Multi2D Scenarios"
    paper_table: 4                   # results/paper/table4.csv holds its reported numbers (null: none)
    spread: se                       # what ± means in the paper's cells: se | std | none
    rows:                            # one per table row, in the paper's order
      - {label: "Maze2D U-maze", dataset: maze2d-umaze, paper_row: "Maze2D U-maze"}
    columns:                         # one per table column, in the paper's order
      - {label: MAGE, method: mage}                                  # run here
      - {label: "K=1", method: mage, overrides: {num_scales: 1}}    # an ablation variant
      - {label: ADT, paper_only: true}                               # the paper's numbers only
      - {label: Diffuser, method: diffuser, paper_table: 17}         # paper numbers from another table
    groups:                          # optional averages under the table, as the paper prints them
      - {label: "Single-task Average", rows: [maze2d-umaze, maze2d-medium, maze2d-large]}
    figure: null                     # for kind=figure: the name of a figure maker in harness/figures.py
    benchmark: null                  # optional: a script measuring the cells instead of runs (lower is better)

Each column's ``paper_column`` defaults to its label; each row's ``paper_row`` to its label.
A cell = (row, column); a run = (cell, seed). Columns with a ``method`` are run; paper-only
columns are read from results/paper/.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PLANS_DIR = Path(__file__).parent / "plans"
# Tests (and users with their own plans) point MAGE_PLANS_DIR at another folder of plan YAMLs.
PLANS_DIR_ENV = "MAGE_PLANS_DIR"


def plans_dir() -> Path:
    """The folder plans are read from: $MAGE_PLANS_DIR when set, else harness/plans/."""
    return Path(os.environ[PLANS_DIR_ENV]) if os.environ.get(PLANS_DIR_ENV) else PLANS_DIR


class PlanError(ValueError):
    """A plan name or plan file that cannot be used (one line, for the user)."""


@dataclass(frozen=True)
class Row:
    label: str
    dataset: str | None          # suites dataset key; None for a paper-only row
    paper_row: str


@dataclass(frozen=True)
class Column:
    label: str
    method: str | None           # harness.methods key; None when paper_only
    overrides: dict[str, Any] = field(default_factory=dict)
    paper_only: bool = False
    paper_column: str = ""
    paper_table: int | None = None   # where this column's paper numbers are, when not the plan's table

    @property
    def is_run(self) -> bool:
        return not self.paper_only and self.method is not None


@dataclass(frozen=True)
class Group:
    label: str
    rows: tuple[str, ...]        # dataset keys


@dataclass(frozen=True)
class Plan:
    name: str
    kind: str
    title: str
    paper_table: int | None
    spread: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    groups: tuple[Group, ...] = ()
    figure: str | None = None
    description: str = ""
    benchmark: str | None = None     # a script that measures the cells (Table 8: bench/latency.py); lower is better

    @property
    def run_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.is_run)

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(r.dataset for r in self.rows if r.dataset)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.method for c in self.run_columns))


def available_plans() -> list[str]:
    return sorted(p.stem for p in plans_dir().glob("*.yaml"))


def plan_name(table: int | None = None, ablation: str | None = None, figure: int | None = None) -> str:
    """The plan file name for a --table / --ablation / --figure argument."""
    if table is not None:
        return f"table{table}"
    if ablation is not None:
        return f"ablation_{ablation.replace('-', '_')}"
    if figure is not None:
        return f"figure{figure}"
    raise PlanError("say which plan: --table N, --ablation NAME or --figure N (see --list)")


def load_plan(name: str) -> Plan:
    path = plans_dir() / f"{name}.yaml"
    if not path.exists():
        raise PlanError(f"no plan named {name!r}; run `python reproduce.py --list` for the tables, ablations and figures")
    try:
        raw = yaml.safe_load(path.read_text())
        return _parse(raw, name)
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise PlanError(f"plan file {path} is malformed: {error}") from None


def _parse(raw: dict[str, Any], name: str) -> Plan:
    rows = tuple(
        Row(label=r["label"], dataset=r.get("dataset"), paper_row=r.get("paper_row", r["label"]))
        for r in raw["rows"]
    )
    columns = tuple(
        Column(
            label=c["label"],
            method=c.get("method"),
            overrides=dict(c.get("overrides") or {}),
            paper_only=bool(c.get("paper_only", False)),
            paper_column=c.get("paper_column", c["label"]),
            paper_table=c.get("paper_table"),
        )
        for c in raw["columns"]
    )
    groups = tuple(Group(label=g["label"], rows=tuple(g["rows"])) for g in raw.get("groups") or ())
    if raw.get("kind") not in {"table", "ablation", "figure"}:
        raise KeyError(f"kind must be table, ablation or figure, not {raw.get('kind')!r}")
    return Plan(
        name=raw.get("name", name),
        kind=raw["kind"],
        title=raw["title"],
        paper_table=raw.get("paper_table"),
        spread=raw.get("spread", "se"),
        rows=rows,
        columns=columns,
        groups=groups,
        figure=raw.get("figure"),
        description=raw.get("description", ""),
        benchmark=raw.get("benchmark"),
    )
