"""The ConvNet of the dataset-condensation literature (DC/DSA/DM/MTT).

Three blocks of conv3x3(128) - InstanceNorm (affine) - ReLU - AvgPool2; the head is a
linear layer on the flattened map, which is therefore the penultimate feature:
128*3*3 = 1152 values at 28x28 and 128*4*4 = 2048 at 32x32 (``width`` scales 128).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, scaled
from .registry import ARCHITECTURES


class ConvNet(Classifier):
    """:param depth: blocks (3); :param image_size: input side in pixels (28 or 32 or 64)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0, depth: int = 3, image_size: int = 32):
        super().__init__()
        c, layers, side, cin = scaled(128, width), [], image_size, in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.GroupNorm(c, c, affine=True), nn.ReLU(inplace=True), nn.AvgPool2d(2)]
            cin, side = c, side // 2
        self.features = nn.Sequential(*layers)
        self.feature_dim = c * side * side
        self.head = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.features(x), 1)


@ARCHITECTURES.register("convnet")
def convnet(**kw) -> ConvNet:
    return ConvNet(**kw)
