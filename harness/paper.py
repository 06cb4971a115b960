"""The paper's reported numbers: results/paper/table<N>.csv (one tidy row per cell).

Columns: ``table`` (int), ``row``, ``column`` (the paper's labels, equal to plans' paper_row /
paper_column), ``mean`` (float, NaN for a "-" or text cell), ``pm`` (the ± value, NaN when the
paper gives none), ``raw`` (the cell's text as printed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parent.parent / "results" / "paper"
PAPER_TABLES = tuple(range(1, 9)) + tuple(range(15, 28))


@dataclass(frozen=True)
class PaperCell:
    mean: float          # NaN when the paper prints "-" or text
    pm: float            # NaN when the paper prints no ± part
    raw: str

    @property
    def reported(self) -> bool:
        return not math.isnan(self.mean)


@lru_cache(maxsize=None)
def load_paper_table(table: int) -> pd.DataFrame:
    """The tidy frame of one paper table; FileNotFoundError naming the file if absent."""
    path = PAPER_DIR / f"table{table}.csv"
    if not path.exists():
        raise FileNotFoundError(f"no paper numbers for Table {table}: {path} is missing")
    frame = pd.read_csv(path, dtype={"row": str, "column": str, "raw": str}, keep_default_na=False)
    for name in ("mean", "pm"):
        frame[name] = pd.to_numeric(frame[name].mask(frame[name] == ""), errors="raise").astype(float)
    return frame


def paper_cell(table: int, row: str, column: str) -> PaperCell | None:
    """The paper's cell (row, column) of ``table``; None when the table has no such cell."""
    frame = load_paper_table(table)
    hit = frame[(frame["row"] == row) & (frame["column"] == column)]
    if hit.empty:
        return None
    first = hit.iloc[0]
    return PaperCell(mean=float(first["mean"]), pm=float(first["pm"]), raw=str(first["raw"]))
