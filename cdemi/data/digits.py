"""scikit-learn's digits (1797 grey 8x8 images, 10 classes), upsampled to 16x16 for tests.

Ships with scikit-learn, so tests have real data with no download.  Split: a fixed,
class-stratified 80/20 cut (seed 0).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .imageset import ImageSet
from .spec import DatasetSpec

SPEC = DatasetSpec("digits", 10, 1, 16, mean=(0.305,), std=(0.319,))


def load(split: str = "train", root=None) -> ImageSet:
    """Load a split (``train`` ~1437, ``test`` ~360) as uint8 (N, 1, 16, 16)."""
    from sklearn.datasets import load_digits

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=16, mode="bilinear", align_corners=False).clamp_(0, 1)
    images = (x * 255).round().to(torch.uint8)
    labels = torch.from_numpy(d.target.astype(np.int64))
    rng = np.random.default_rng(0)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(d.target == c)
        test_mask[rng.choice(idx, size=len(idx) // 5, replace=False)] = True
    keep = torch.from_numpy(test_mask if split == "test" else ~test_mask)
    return ImageSet(images[keep], labels[keep], SPEC)
