"""Real-image stand-ins for a condensed set: random real subsets and k-shot subsets.

Both draw ``k`` images per class, class-balanced, with a seeded generator, and
return a :class:`CondensedSet` so that every consumer treats them like condensed data.
"""
from __future__ import annotations

import torch

from .condensed import CondensedSet
from .imageset import ImageSet


def per_class_indices(data: ImageSet, k: int, seed: int) -> torch.Tensor:
    """Indices of ``k`` distinct images of every class, drawn with ``seed``, sorted by class.

    :raises ValueError: a class holds fewer than ``k`` images.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(data.spec.num_classes):
        pool = torch.nonzero(data.labels == c).flatten()
        if len(pool) < k:
            raise ValueError(f"class {c} of {data.spec.name} has {len(pool)} images, fewer than k = {k}")
        chosen.append(pool[torch.randperm(len(pool), generator=gen)[:k]])
    return torch.cat(chosen)


def real_subset(data: ImageSet, k: int, seed: int, method: str = "random_real") -> CondensedSet:
    """``k`` real images per class as a :class:`CondensedSet` (``method`` ``random_real`` or ``kshot``)."""
    idx = per_class_indices(data, k, seed)
    return CondensedSet(data.images[idx].float() / 255, data.labels[idx], data.spec.name, method, k,
                        {"seed": seed, "source_indices": idx.tolist()})
