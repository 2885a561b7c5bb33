"""The growing pool of synthetic images, stored as uint8 (1 byte per pixel value)."""
from __future__ import annotations

import torch


class SyntheticPool:
    """Synthetic images and their target labels, appended batch by batch.

    Storage grows by doubling, so an append costs O(batch) amortised rather than a copy of the
    whole pool; :attr:`images` and :attr:`targets` are views of the filled part.

    :param shape: (C, H, W) of one image.
    :param max_images: keep at most this many (the oldest leave first); None = unbounded.
    """

    def __init__(self, shape: tuple[int, int, int], max_images: int | None = None):
        self.shape = tuple(shape)
        self.max_images = max_images
        self._images = torch.empty((0, *self.shape), dtype=torch.uint8)
        self._targets = torch.empty(0, dtype=torch.long)
        self._start = self._end = 0  # the filled part is [_start, _end) of the buffers

    @property
    def images(self) -> torch.Tensor:
        """uint8 (N, C, H, W), oldest first (a view: copy it to keep it)."""
        return self._images[self._start:self._end]

    @property
    def targets(self) -> torch.Tensor:
        """int64 (N,), aligned with :attr:`images`."""
        return self._targets[self._start:self._end]

    def __len__(self) -> int:
        return self._end - self._start

    def _reserve(self, extra: int) -> None:
        """Room for ``extra`` more images after the filled part: compact to the front, then double."""
        n = len(self)
        if self._end + extra <= self._images.shape[0]:
            return
        capacity = max(2 * (n + extra), 64)
        images = torch.empty((capacity, *self.shape), dtype=torch.uint8)
        targets = torch.empty(capacity, dtype=torch.long)
        images[:n], targets[:n] = self.images, self.targets
        self._images, self._targets, self._start, self._end = images, targets, 0, n

    def add(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        """Append float images (N, C, H, W) in [0, 1] (rounded to 1/255) with their int targets (N,)."""
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"pool holds images of shape {self.shape}, got {tuple(images.shape[1:])}")
        q = images.detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
        self._reserve(len(q))
        self._images[self._end:self._end + len(q)] = q
        self._targets[self._end:self._end + len(q)] = targets.detach().cpu().long()
        self._end += len(q)
        if self.max_images is not None and len(self) > self.max_images:
            self._start = self._end - self.max_images

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random images (with replacement when ``n`` exceeds the pool) as float [0, 1], and targets."""
        if len(self) == 0:
            raise RuntimeError("the synthetic pool is empty")
        idx = torch.randint(0, len(self), (n,), generator=generator) + self._start
        return self._images[idx].float().div_(255), self._targets[idx]

    def nbytes(self) -> int:
        """Bytes held by the filled part (1 per pixel value, 8 per target)."""
        return self.images.numel() + self.targets.numel() * 8

    def state_dict(self) -> dict:
        return {"images": self.images.clone(), "targets": self.targets.clone()}

    def load_state_dict(self, state: dict) -> None:
        self._images, self._targets = state["images"].clone(), state["targets"].clone()
        self._start, self._end = 0, len(self._targets)
