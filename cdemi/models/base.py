"""The classifier contract every architecture of :mod:`cdemi.models` follows."""
from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """An image classifier split into a feature extractor and a linear head.

    Subclasses implement :meth:`embed`, returning the *penultimate* features: the
    global-pooled (or flattened, for ConvNet) vector that feeds ``self.head``.  The
    guidance module reads exactly these features.

    Attributes: ``feature_dim`` (int, size of the penultimate vector) and ``head``
    (``nn.Linear(feature_dim, num_classes)``).
    """

    feature_dim: int
    head: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, float (N, feature_dim), of normalised images (N, C, H, W)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits (N, num_classes); with ``return_features`` also the penultimate features."""
        feats = self.embed(x)
        logits = self.head(feats)
        if return_features:
            return logits, feats
        return logits


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """``channels * width`` rounded to an int, at least ``minimum``."""
    return max(minimum, int(round(channels * width)))
