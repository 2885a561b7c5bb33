"""Saving tables reproducibly: one DataFrame as CSV, Markdown and LaTeX side by side, and a
grid table's numeric twin beside it."""
from __future__ import annotations

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
        "md": table.reset_index().to_markdown(index=False) + "\n" + (f"\n{note}\n" if note else ""),
        "tex": table.to_latex(caption=caption or None, escape=True),
    }
    paths = []
    for fmt, text in texts.items():
        path = stem.with_suffix(f".{fmt}")
        atomic_write_bytes(path, text.encode())
        paths.append(path)
    return paths


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
