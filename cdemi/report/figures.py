"""Saving figures reproducibly (PNG + PDF, no timestamps in the files)."""
from __future__ import annotations

import io
from pathlib import Path

from ..artifacts import atomic_write_bytes


def save_figure(fig, stem: str | Path, dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``<stem>.png`` and ``<stem>.pdf`` atomically, without creation dates.

    :returns: the two paths written.
    """
    stem = Path(stem)
    paths = []
    for fmt, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None, "Creator": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
        path = stem.with_suffix(f".{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths
