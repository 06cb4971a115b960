"""The paper's numbers in results/paper/: every table loads, and its stated averages check out."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.paper import PAPER_TABLES, load_paper_table, paper_cell

# Average rows: table -> {average row: which cell rows it averages}.
AVERAGES = {
    1: {"Mean(w/o Expert)": lambda row: "Expert" not in row, "Mean(all settings)": lambda row: True},
    2: {"Average": lambda row: True},
    3: {"Average": lambda row: True},
    4: {"Single-task Average": lambda row: row.startswith("Maze2D"),
        "Multi-task Average": lambda row: row.startswith("Multi2D")},
    15: {"Average(w/o expert)": lambda row: "Expert" not in row, "Average(all settings)": lambda row: True},
    16: {"Average": lambda row: True},
    17: {"Single-task Average": lambda row: row.startswith("Maze2D"),
         "Multi-task Average": lambda row: row.startswith("Multi2D")},
    18: {"Average": lambda row: True},
}
# The paper prints one decimal, so a stated average may differ from the mean of its cells by
# half a unit of the last digit.
ROUNDING = 0.05 + 1e-9
# Where the paper itself disagrees with its own cells: (table, average row, column) -> the mean
# of the printed cells. Table 18, IQL: the nine cells average 756.8 / 9 = 84.09, printed as 84.0
# (truncated rather than rounded).
PAPER_INCONSISTENCIES = {(18, "Average", "IQL"): 756.8 / 9}

# Cell counts (rows x columns, averages included) read off the paper by eye.
SHAPES = {1: (14, 9), 2: (3, 9), 3: (7, 9), 4: (8, 9), 5: (2, 8), 6: (2, 7), 7: (2, 6), 8: (1, 6),
          15: (14, 5), 16: (3, 4), 17: (8, 4), 18: (10, 10), 19: (2, 2), 20: (2, 4), 21: (2, 4),
          22: (2, 2), 23: (2, 3), 24: (4, 4), 25: (6, 4), 26: (4, 7), 27: (8, 5)}


@pytest.mark.parametrize("table", PAPER_TABLES)
def test_table_loads_tidy_and_complete(table):
    frame = load_paper_table(table)
    assert list(frame.columns) == ["table", "row", "column", "mean", "pm", "raw"]
    assert set(frame["table"]) == {table}
    rows, columns = SHAPES[table]
    assert frame["row"].nunique() == rows and frame["column"].nunique() == columns
    assert len(frame) == rows * columns  # one line per cell, none twice
    assert not frame.duplicated(["row", "column"]).any()
    # a number is parsed exactly when the raw text starts with one
    numeric_text = frame["raw"].str.match(r"^-?\d")
    assert (frame["mean"].notna() == numeric_text).all()
    assert (frame["pm"].dropna() >= 0).all()


@pytest.mark.parametrize("table", sorted(AVERAGES))
def test_stated_averages_equal_mean_of_cells(table):
    frame = load_paper_table(table)
    averages = AVERAGES[table]
    cell_rows = [row for row in dict.fromkeys(frame["row"]) if row not in averages]
    checked = 0
    for average_row, selects in averages.items():
        rows = [row for row in cell_rows if selects(row)]
        assert len(rows) >= 2
        for column in dict.fromkeys(frame["column"]):
            stated = paper_cell(table, average_row, column)
            cells = frame[frame["row"].isin(rows) & (frame["column"] == column)]["mean"]
            if not stated.reported:  # the paper prints "-" for an average only over a "-" cell
                assert cells.isna().any(), (average_row, column)
                continue
            computed = cells.mean()
            exception = PAPER_INCONSISTENCIES.get((table, average_row, column))
            if exception is not None:
                assert computed == pytest.approx(exception) and abs(computed - stated.mean) > ROUNDING
            else:
                assert abs(computed - stated.mean) <= ROUNDING, (average_row, column, computed, stated)
            checked += 1
    assert checked >= len(averages) * 2


def test_known_cells_parse_to_numbers():
    assert paper_cell(1, "Pen Expert", "MAGE").mean == 147.8 and paper_cell(1, "Pen Expert", "MAGE").pm == 4.9
    assert paper_cell(3, "Diverse Large", "CQL").pm == 13.2
    assert paper_cell(7, "Pen-Expert", "ADT").mean == 113.3  # printed "113.3 ± 12.1"
    assert paper_cell(8, "Time (ms)", "TT").mean == 12863.07
    assert paper_cell(17, "Maze2D U-maze", "MPPI").mean == 33.2 and math.isnan(paper_cell(17, "Maze2D U-maze", "MPPI").pm)
    assert paper_cell(23, "Door-Cloned", "MAGE (reweight)").pm == 1.8  # printed "6.1 \pm 1.8"
    assert paper_cell(2, "Kitchen Partial", "HDMI").raw == "-" and not paper_cell(2, "Kitchen Partial", "HDMI").reported
    assert paper_cell(27, "Number of Policies", "CARP").mean == 1.0
    assert paper_cell(1, "Pen Expert", "nope") is None


def test_repeated_cells_agree_across_tables():
    """MAGE's headline cells reappear in the appendix and ablation tables with the same numbers."""
    pairs = [((1, "Pen Expert", "MAGE"), (t, "Pen-Expert", c)) for t, c in
             [(5, "8"), (6, "Ours"), (7, "Ours"), (19, "Latent (Ours)"), (20, "512"), (21, "8"),
              (22, "MAGE"), (23, "MAGE"), (26, "K=8")]]
    pairs += [((1, "Door Cloned", "MAGE"), (5, "Door-Cloned", "8")), ((5, "Door-Cloned", "1"), (26, "Door-Cloned", "K=1")),
              ((2, "Kitchen Mixed", "MAGE"), (16, "Kitchen Mixed", "MAGE")), ((4, "Multi-task Average", "MAGE"), (17, "Multi-task Average", "MAGE")),
              ((3, "Play Medium", "ADT"), (25, "Antmaze-Medium-Play", "ADT")), ((1, "Relocate Expert", "MAGE"), (15, "Recolate Expert", "MAGE"))]
    for first, second in pairs:
        a, b = paper_cell(*first), paper_cell(*second)
        assert a.mean == b.mean and (a.pm == b.pm or math.isnan(a.pm) and math.isnan(b.pm)), (first, second)


def test_missing_table_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="Table 99"):
        load_paper_table(99)
    assert isinstance(load_paper_table(1), pd.DataFrame)
