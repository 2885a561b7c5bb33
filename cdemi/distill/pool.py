"""The growing pool of synthetic images, stored as uint8 (1 byte per pixel value)."""
from __future__ import annotations

import torch


class SyntheticPool:
    """Synthetic images and their target labels, appended batch by batch.

    :param shape: (C, H, W) of one image.
    :param max_images: keep at most this many (the oldest leave first); None = unbounded.
    """

    def __init__(self, shape: tuple[int, int, int], max_images: int | None = None):
        self.shape = tuple(shape)
        self.max_images = max_images
        self.images = torch.empty((0, *self.shape), dtype=torch.uint8)
        self.targets = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return self.images.shape[0]

    def add(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        """Append float images (N, C, H, W) in [0, 1] (rounded to 1/255) with their int targets (N,)."""
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"pool holds images of shape {self.shape}, got {tuple(images.shape[1:])}")
        q = images.detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
        self.images = torch.cat([self.images, q])
        self.targets = torch.cat([self.targets, targets.detach().cpu().long()])
        if self.max_images is not None and len(self) > self.max_images:
            self.images, self.targets = self.images[-self.max_images:], self.targets[-self.max_images:]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random images (with replacement when ``n`` exceeds the pool) as float [0, 1], and targets."""
        if len(self) == 0:
            raise RuntimeError("the synthetic pool is empty")
        idx = torch.randint(0, len(self), (n,), generator=generator)
        return self.images[idx].float().div_(255), self.targets[idx]

    def nbytes(self) -> int:
        return self.images.numel() + self.targets.numel() * 8

    def state_dict(self) -> dict:
        return {"images": self.images, "targets": self.targets}

    def load_state_dict(self, state: dict) -> None:
        self.images, self.targets = state["images"], state["targets"]
