"""Tiny-ImageNet-200 (64x64 RGB, 200 classes) in its standard folder layout.

``<root>/tiny_imagenet/tiny-imagenet-200/wnids.txt`` (the ``tiny_imagenet`` level may be omitted) lists the class ids (their order defines the
labels); training images are ``train/<wnid>/images/*.JPEG``; validation images are
``val/images/*.JPEG`` with ``val/val_annotations.txt`` (tab-separated: file, wnid, box).
The labelled validation split serves as the test split, as in the DFKD literature.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fashion_mnist import DatasetNotFoundError
from .imageset import ImageSet
from .spec import DatasetSpec

SPEC = DatasetSpec("tiny_imagenet", 200, 3, 64, mean=(0.4802, 0.4481, 0.3975), std=(0.2770, 0.2691, 0.2821))


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if arr.shape != (64, 64, 3):
        raise ValueError(f"{path} is {arr.shape[1]}x{arr.shape[0]}, Tiny-ImageNet images are 64x64")
    return arr


def load(split: str = "train", root: str | os.PathLike | None = None) -> ImageSet:
    """Load a split (``train`` or ``test`` = the labelled ``val`` folder) as uint8 (N, 3, 64, 64)."""
    root = Path(root if root is not None else os.environ.get("CDEMI_DATA", "data"))
    base = root / "tiny_imagenet" / "tiny-imagenet-200"
    if not base.is_dir():
        base = root / "tiny-imagenet-200"
    if not (base / "wnids.txt").is_file():
        raise DatasetNotFoundError(
            f"Tiny-ImageNet not found: {base / 'wnids.txt'} is missing. Download tiny-imagenet-200.zip "
            "(http://cs231n.stanford.edu/tiny-imagenet-200.zip) and unzip it under the data root (root= or $CDEMI_DATA)."
        )
    wnids = [w.strip() for w in (base / "wnids.txt").read_text().split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    files: list[tuple[Path, int]] = []
    if split == "train":
        for w in wnids:
            files += [(p, index[w]) for p in sorted((base / "train" / w / "images").glob("*.JPEG"))]
    elif split == "test":
        ann = base / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DatasetNotFoundError(f"Tiny-ImageNet validation labels missing: {ann}")
        for line in ann.read_text().splitlines():
            if line.strip():
                name, wnid = line.split("\t")[:2]
                if wnid not in index:
                    raise ValueError(f"{ann}: class {wnid!r} is not in wnids.txt")
                files.append((base / "val" / "images" / name, index[wnid]))
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not files:
        raise DatasetNotFoundError(f"Tiny-ImageNet {split} split under {base} holds no images")
    images = np.stack([_read_rgb(p) for p, _ in files]).transpose(0, 3, 1, 2)
    labels = np.array([y for _, y in files], dtype=np.int64)
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), SPEC)
