"""Saving tables reproducibly: one DataFrame as CSV, Markdown and LaTeX side by side, and a
grid table's numeric twin beside it."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..artifacts import atomic_write_bytes


def save_table(table: pd.DataFrame, stem: str | Path, caption: str = "", note: str = "") -> list[Path]:
    """Write ``table`` to ``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex`` atomically.

    The index is written as the first column(s), one per level.  ``note`` (a footnote to the marks in
    the cells; empty: none) follows the Markdown table as a paragraph and ends the LaTeX caption.
    :returns: the three paths written.
    """
    stem = Path(stem)
    caption = " ".join(c for c in (caption, note) if c)
    texts = {
        "csv": table.to_csv(),
        "md": markdown(table) + "\n" + (f"\n{note}\n" if note else ""),
        "tex": table.to_latex(caption=caption or None, escape=True),
    }
    paths = []
    for fmt, text in texts.items():
        path = stem.with_suffix(f".{fmt}")
        atomic_write_bytes(path, text.encode())
        paths.append(path)
    return paths


def as_written(table: pd.DataFrame, places: int) -> pd.DataFrame:
    """``table`` with each number rounded to ``places`` decimals the way ``f"{value:.{places}f}"`` writes it
    (from the exact binary value), so a mean reads the same here as in a cell of T1-T5; NumPy's
    ``DataFrame.round`` scales before it rounds and can land on the other side of a half (89.305 gives
    89.30 there, 89.31 written).  Missing values stay missing."""
    return table.map(lambda v: v if _missing(v) else float(f"{float(v):.{places}f}"))


def _decimals(value: float, most: int = 6) -> int:
    """How many decimals (at most ``most``) ``value`` needs to be written without loss (0 for an infinite one)."""
    if not math.isfinite(value):
        return 0
    text = f"{value:.{most}f}".rstrip("0")
    return len(text) - text.index(".") - 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _missing(value) -> bool:
    """Whether a single cell holds no value (None, NaN, ``pd.NA``, ``NaT``)."""
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def markdown(table: pd.DataFrame) -> str:
    """``table`` (index written as its first column(s)) as a Markdown table whose cells read as they are.

    A float column is written at one precision, the fewest decimals (at most 6, so a magnitude below 5e-7
    reads 0) that write each of its values without loss, so ``75.50`` keeps its zero beside ``76.12``; a missing value is an empty cell;
    text is written verbatim (``"87.40"`` stays ``87.40``, never reparsed as a number).  Numeric columns,
    and text columns whose non-empty cells all read as numbers, are right-aligned.
    """
    shown = table.reset_index()
    if shown.columns.duplicated().any():
        raise ValueError(f"a Markdown table needs distinct column names; repeated: "
                         f"{sorted(set(shown.columns[shown.columns.duplicated()]))}")
    columns, align = {}, []
    for name, column in shown.items():
        if pd.api.types.is_float_dtype(column):
            values = column.dropna()
            places = max((_decimals(v) for v in values), default=0)
            columns[name] = [("" if pd.isna(v) else f"{v:.{places}f}") for v in column]
            align.append("right")
        else:
            cells = ["" if _missing(v) else str(v) for v in column]
            columns[name] = cells
            numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            filled = [c for c in cells if c]
            align.append("right" if numeric or (filled and all(_is_number(c) for c in filled)) else "left")
    return pd.DataFrame(columns).to_markdown(index=False, disable_numparse=True, colalign=align)


def save_table_with_numbers(table: pd.DataFrame, numbers: pd.DataFrame, stem: str | Path,
                            caption: str = "", note: str = "") -> list[Path]:
    """A table of T1-T5 and its numbers: :func:`save_table` of the text ``table`` (with ``note``), and
    the numeric twin ``numbers`` (one row per cell: mean, std, n, converged;
    :func:`cdemi.report.grid.long_cells`) as ``<stem>_numbers.csv``, atomically.  :returns: the four
    paths written."""
    stem = Path(stem)
    paths = save_table(table, stem, caption, note)
    numbers_path = stem.with_name(f"{stem.name}_numbers.csv")
    atomic_write_bytes(numbers_path, numbers.to_csv().encode())
    return [*paths, numbers_path]
