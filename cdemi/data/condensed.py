"""Condensed sets: the one on-disk format, with provenance and a checksum.

A condensed set is a handful of images per class (IPC) made by a condensation
method (DM, DSA, MTT), or a real subset (random real, k-shot) standing in for one.

On disk: ``<name>.pt`` holds ``{"images": float32 (N, C, H, W), "labels": int64 (N,)}``
with images on the *pixel scale*: unnormalised, 0 = black, 1 = white (optimised
images may stray slightly outside [0, 1]); ``<name>.json`` holds the record:
dataset, method, IPC, shape, seed, parameters, cost, and the SHA-256 of the ``.pt``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import ArtifactError, load_with_record, save_with_record
from .registry import SPECS
from .spec import DatasetSpec

PIXEL_SCALE = "pixel scale: unnormalised, 0 = black, 1 = white"


@dataclass
class CondensedSet:
    """Images and labels of a condensed set plus where they came from.

    :param images: float32 (N, C, H, W), pixel scale (see module docstring).
    :param labels: int64 (N,), sorted by class, ``ipc`` per class.
    :param dataset: registered dataset name the set condenses.
    :param method: ``dm``, ``dsa``, ``mtt``, ``random_real``, ``kshot`` or a public source's name.
    :param ipc: images per class.
    :param meta: provenance (seed, parameters, source file, wall time, peak memory, ...).
    """

    images: torch.Tensor
    labels: torch.Tensor
    dataset: str
    method: str
    ipc: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        spec = self.spec
        self.images = self.images.detach().float().cpu().contiguous()
        self.labels = self.labels.detach().long().cpu()
        if self.images.dim() != 4 or tuple(self.images.shape[1:]) != spec.shape:
            raise ValueError(f"condensed images have shape {tuple(self.images.shape)}, {self.dataset} needs (N, {spec.shape})")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.images.shape[0]} condensed images but labels of shape {tuple(self.labels.shape)}")
        counts = torch.bincount(self.labels, minlength=spec.num_classes)
        if len(counts) != spec.num_classes or bool((counts != self.ipc).any()):
            raise ValueError(f"a {self.method} set of {self.dataset} at IPC {self.ipc} needs {self.ipc} images of each of "
                             f"{spec.num_classes} classes; per-class counts are {counts.tolist()}")
        if not torch.isfinite(self.images).all():
            raise ValueError("condensed images contain NaN or infinite values")

    @property
    def spec(self) -> DatasetSpec:
        if self.dataset not in SPECS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(sorted(SPECS))}")
        return SPECS[self.dataset]

    def __len__(self) -> int:
        return self.images.shape[0]

    def normalised(self) -> torch.Tensor:
        """Images normalised with the dataset's mean/std, float32 (N, C, H, W)."""
        return self.spec.normalise(self.images)


def save_condensed(path: str | Path, cs: CondensedSet) -> dict:
    """Write ``cs`` to ``path`` (+ record ``.json``) atomically; :returns: the record."""
    return save_with_record(path, {"images": cs.images, "labels": cs.labels}, {
        "format": "cdemi-condensed-v1", "dataset": cs.dataset, "method": cs.method, "ipc": cs.ipc,
        "num_images": len(cs), "shape": list(cs.images.shape[1:]), "normalisation": PIXEL_SCALE, **cs.meta})


def load_condensed(path: str | Path, dataset: str | None = None, ipc: int | None = None,
                   shape: tuple[int, int, int] | None = None) -> CondensedSet:
    """Load a condensed set, verifying its checksum and what the caller expects.

    :param dataset, ipc, shape: expected dataset name, images per class, (C, H, W).
    :raises ArtifactError: missing, corrupt, or a set of another dataset, IPC or resolution.
    """
    blob, record = load_with_record(path, "condensed set")
    if record.get("format") != "cdemi-condensed-v1":
        raise ArtifactError(f"{path} is not a cdemi condensed set (format {record.get('format')!r}); "
                            "convert public files with cdemi.data.public_formats")
    for key, want, have in (("dataset", dataset, record.get("dataset")), ("IPC", ipc, record.get("ipc")),
                            ("image shape", list(shape) if shape else None, record.get("shape"))):
        if want is not None and want != have:
            raise ArtifactError(f"condensed set {path} has {key} {have!r}, expected {want!r}")
    meta = {k: v for k, v in record.items()
            if k not in ("format", "dataset", "method", "ipc", "num_images", "shape", "normalisation", "sha256")}
    meta["sha256"] = record["sha256"]
    try:
        return CondensedSet(blob["images"], blob["labels"], record["dataset"], record["method"], record["ipc"], meta)
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"condensed set {path} does not hold what its record says: {e}") from e
