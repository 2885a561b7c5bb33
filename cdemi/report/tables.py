"""Saving tables reproducibly: one DataFrame as CSV, Markdown and LaTeX side by side."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..artifacts import atomic_write_bytes


def save_table(table: pd.DataFrame, stem: str | Path, caption: str = "") -> list[Path]:
    """Write ``table`` to ``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex`` atomically.

    The index is written as the first column(s), one per level.  :returns: the three paths written.
    """
    stem = Path(stem)
    texts = {
        "csv": table.to_csv(),
        "md": table.reset_index().to_markdown(index=False) + "\n",  # one column per index level
        "tex": table.to_latex(caption=caption or None, escape=True),
    }
    paths = []
    for fmt, text in texts.items():
        path = stem.with_suffix(f".{fmt}")
        atomic_write_bytes(path, text.encode())
        paths.append(path)
    return paths
