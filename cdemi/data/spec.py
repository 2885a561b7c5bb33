"""What a dataset is: shape, classes, normalisation."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about an image classification dataset.

    :param name: registry name (``fashion_mnist``, ``cifar10``, ...).
    :param num_classes: number of classes.
    :param channels: image channels.
    :param image_size: side of the square images, pixels.
    :param mean: per-channel mean of the training images in [0, 1].
    :param std: per-channel standard deviation in [0, 1].
    """

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (self.channels, self.image_size, self.image_size)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Float images (N, C, H, W) in [0, 1] -> normalised with ``mean``/``std``."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def denormalise(self, images: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalise`."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return images * std + mean
