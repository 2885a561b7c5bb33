"""MobileNetV2 (Sandler et al. 2018), CIFAR variant.

The CIFAR variant used by data-free KD code keeps stride 1 in the stem and in the
second stage, so 32x32 inputs end at 4x4 (28x28 at 4x4 too).  ``width`` scales every
layer including the last 1x1 conv (1280 channels at ``width=1``), so that narrow
students stay cheap on a CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier
from .registry import ARCHITECTURES

# (expansion t, channels c, repeats n, stride s) for CIFAR inputs
_CONFIG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_conv_bn(cin, hidden, 1)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2(Classifier):
    """:param width: channel multiplier; :param in_channels: image channels."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        cin = _divisible(32 * width)
        layers = [_conv_bn(in_channels, cin, 3, 1)]
        for t, c, n, s in _CONFIG:
            cout = _divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.feature_dim = _divisible(1280 * width)
        layers.append(_conv_bn(cin, self.feature_dim, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)


@ARCHITECTURES.register("mobilenetv2")
def mobilenetv2(**kw) -> MobileNetV2:
    return MobileNetV2(**kw)
