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


def validation_split(train: ImageSet, per_class: int, seed: int = 0) -> tuple[ImageSet, dict]:
    """A fixed, class-balanced validation split of the training set: ``per_class`` images of every
    class drawn with ``seed`` (:func:`per_class_indices`), the only data choices may be made on.

    In data-free KD the student never trains on real images, so the split is carved from the
    training set without being removed from it; the teacher is unchanged.

    :returns: the images (an :class:`ImageSet`) and their record: ``per_class``, ``seed``, ``images``
        and ``indices_sha256`` (SHA-256 of the int64 indices' bytes), the same in every run that
        draws the same split.
    """
    import hashlib

    idx = per_class_indices(train, per_class, seed)
    record = {"per_class": per_class, "seed": seed, "images": len(idx),
              "indices_sha256": hashlib.sha256(idx.to(torch.int64).numpy().tobytes()).hexdigest()}
    return train.subset(idx), record
