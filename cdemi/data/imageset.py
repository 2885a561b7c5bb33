"""An in-memory labelled image set: the one container every loader returns."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .spec import DatasetSpec


@dataclass
class ImageSet:
    """Images and labels held in memory.

    :param images: uint8 tensor (N, C, H, W), pixel values 0..255.
    :param labels: int64 tensor (N,), values in ``[0, spec.num_classes)``.
    :param spec: the dataset these images belong to.
    """

    images: torch.Tensor
    labels: torch.Tensor
    spec: DatasetSpec

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if tuple(self.images.shape[1:]) != self.spec.shape:
            raise ValueError(f"images have shape {tuple(self.images.shape[1:])}, {self.spec.name} expects {self.spec.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")
        self.labels = self.labels.long()
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= self.spec.num_classes):
            raise ValueError(f"labels must lie in [0, {self.spec.num_classes}) for {self.spec.name}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, indices: torch.Tensor) -> "ImageSet":
        """The images at ``indices`` (int64 tensor), in that order."""
        return ImageSet(self.images[indices], self.labels[indices], self.spec)

    def float_images(self) -> torch.Tensor:
        """Images as float32 in [0, 1], (N, C, H, W)."""
        return self.images.float().div_(255.0)
