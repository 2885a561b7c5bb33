"""Datasets: ``load("fashion_mnist", "train")`` -> :class:`ImageSet` of uint8 images.

See :mod:`cdemi.data.fashion_mnist` for where Fashion-MNIST is looked for.
"""
from __future__ import annotations

import os

from .fashion_mnist import DatasetNotFoundError
from .imageset import ImageSet
from .registry import DATASETS, SPECS
from .spec import DatasetSpec


def load(name: str, split: str = "train", root: str | os.PathLike | None = None) -> ImageSet:
    """Load split ``train`` or ``test`` of the registered dataset ``name``.

    :param root: data folder (default ``$CDEMI_DATA``; Fashion-MNIST also looks in Debian's folder).
    """
    return DATASETS.get(name)(split=split, root=root)


def spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a registered dataset."""
    DATASETS.get(name)  # unknown names fail with the known list
    return SPECS[name]


__all__ = ["DATASETS", "DatasetNotFoundError", "DatasetSpec", "ImageSet", "load", "spec"]
