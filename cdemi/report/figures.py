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


def image_grid(images, labels, class_names=None, per_class: int = 10, title: str = ""):
    """A figure with up to ``per_class`` images of every class, one row per class.

    :param images: float (N, C, H, W) on the pixel scale (clipped to [0, 1] for display).
    :param labels: int (N,).
    """
    import matplotlib.pyplot as plt
    import torch
    from torchvision.utils import make_grid

    classes = sorted(set(labels.tolist()))
    rows = [images[labels == c][:per_class] for c in classes]
    width = max(len(r) for r in rows)
    padded = [torch.cat([r, torch.ones((width - len(r), *r.shape[1:]))]) if len(r) < width else r for r in rows]
    grid = make_grid(torch.cat(padded).clamp(0, 1), nrow=width, padding=1, pad_value=1.0)
    fig, ax = plt.subplots(figsize=(0.5 * width + 1.5, 0.5 * len(classes) + 0.6))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray" if images.shape[1] == 1 else None, interpolation="nearest")
    side = images.shape[-1] + 1
    ax.set_yticks([side * i + side / 2 for i in range(len(classes))])
    ax.set_yticklabels([class_names[c] if class_names else str(c) for c in classes], fontsize=7)
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    return fig
