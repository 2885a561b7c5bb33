"""Standard training augmentation on whole batches (no per-sample Python loop)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, per sample.

    :param images: float (N, C, H, W).
    :param padding: pixels of zero padding on each side; the crop offset is uniform in
        ``[0, 2 * padding]`` per axis (the usual ``RandomCrop(size, padding)``).
    :param generator: CPU generator, the only source of randomness (reproducible resume).
    :returns: float (N, C, H, W).
    """
    n, c, h, w = images.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    do_flip = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    dev = images.device
    padded = F.pad(images, (padding,) * 4)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(dev)  # (N, H)
    cols = dx.view(n, 1) + torch.arange(w).view(1, w)  # (N, W)
    cols = torch.where(do_flip.view(n, 1), cols.flip(1), cols).to(dev)
    idx_rows = rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * padding)
    out = padded.gather(2, idx_rows)
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
